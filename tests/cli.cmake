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
