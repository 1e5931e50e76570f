# The tern command line end to end: generation, info, tokenize, and bad input (bad flags, missing
# or malformed models, overlong prompts, unwritable outputs) giving one error line and the right
# exit code.
add_test(NAME cli
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.sh ${PROJECT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
# the kernel and probe cache in the build tree: `tern run` defaults to auto, which opens PoCL
set_tests_properties(cli PROPERTIES TIMEOUT 600 ENVIRONMENT TERN_CACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/cl-cache)

# Device selection, the probe cache, splits and failover through the CLI (needs an OpenCL device:
# PoCL in CI).
add_test(NAME cli_devices
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_devices.sh ${PROJECT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli-devices)
set_tests_properties(cli_devices PROPERTIES TIMEOUT 600)

# cmake --install: the installed tern and tern-make-model run on their own (the OpenCL kernels are
# built into tern), away from the build tree. A shared core (tools/mutate.sh) is not installed.
if(NOT TERN_SHARED_CORE)
  set(TERN_INSTALL_DIR ${CMAKE_CURRENT_BINARY_DIR}/tmp/install)
  add_test(NAME cli_install
           COMMAND bash -c "rm -rf \"$1\" && \"$2\" --install \"$3\" --prefix \"$1\" >/dev/null && cd / && \
\"$1\"/bin/tern-make-model --preset tiny -o \"$1\"/tiny.gguf && \
\"$1\"/bin/tern run -m \"$1\"/tiny.gguf -p hi -n 4 --temp 0 --device cpu >/dev/null"
                   _ ${TERN_INSTALL_DIR} ${CMAKE_COMMAND} ${PROJECT_BINARY_DIR})
endif()
