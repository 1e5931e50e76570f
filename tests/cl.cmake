# OpenCL suites (included by tests/CMakeLists.txt): the kernel binary cache lives in the build tree
# so PoCL compiles the kernels once per build, and "no platform" runs with an empty ICD vendor folder.
# test_cl_kernels covers both kernel designs itself; the whole-model test runs once more with the
# design the device would not pick (on PoCL: the GPU design) forced through TERN_CL_KERNELS.
# test_head_cert runs its device cases on the first OpenCL device too, so it shares the cache.
set(TERN_CL_TEST_CACHE ${CMAKE_CURRENT_BINARY_DIR}/cl-cache)
file(MAKE_DIRECTORY ${TERN_CL_TEST_CACHE} ${CMAKE_CURRENT_BINARY_DIR}/cl-no-vendors
     ${CMAKE_CURRENT_BINARY_DIR}/tmp-cl-gpu)
if(TARGET test_cl_model)
  # its own TERN_BUILD_TMP (the later entry wins): it writes the same model files as test_cl_model
  add_test(NAME test_cl_model_gpu_design COMMAND test_cl_model)
  set_tests_properties(test_cl_model_gpu_design PROPERTIES
                       ENVIRONMENT "${TERN_TEST_ENV};TERN_BUILD_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp-cl-gpu;TERN_CL_KERNELS=gpu"
                       TIMEOUT 900)
endif()
if(TARGET test_head_cert)
  # the certified head's candidate list through the GPU design's matvec too (its own tmp folder)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/tmp-head-gpu)
  add_test(NAME test_head_cert_gpu_design COMMAND test_head_cert)
  set_tests_properties(test_head_cert_gpu_design PROPERTIES
                       ENVIRONMENT "${TERN_TEST_ENV};TERN_BUILD_TMP=${CMAKE_CURRENT_BINARY_DIR}/tmp-head-gpu;TERN_CL_KERNELS=gpu"
                       TIMEOUT 900)
endif()
foreach(t test_cl_kernels test_cl_model test_cl_model_gpu_design test_scheduler test_head_cert
          test_head_cert_gpu_design)
  if(TEST ${t})
    set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT
                 TERN_CACHE_DIR=${TERN_CL_TEST_CACHE}
                 LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/cl_lsan.supp:print_suppressions=0)
  endif()
endforeach()
# TERN_OPENCL_LIB names the loader to open first: a library without the OpenCL symbols is refused
# with one line saying so (and the real loader is not tried behind its back)
if(TARGET tern)
  add_test(NAME test_cl_cli_wrong_loader
           COMMAND tern run -m ${CMAKE_CURRENT_SOURCE_DIR}/data/vectors/mini-b158-i2s.gguf -p "Hi" -n 1
                   --device cl:0)
  set_tests_properties(test_cl_cli_wrong_loader PROPERTIES
                       ENVIRONMENT "TERN_OPENCL_LIB=libm.so.6"
                       PASS_REGULAR_EXPRESSION "the OpenCL ICD loader lacks clGetPlatformIDs"
                       TIMEOUT 60)
endif()
# test_cl_tune stores tunings: its own cache folder, so no other suite runs with them
if(TEST test_cl_tune)
  file(MAKE_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/cl-tune-cache)
  set_property(TEST test_cl_tune APPEND PROPERTY ENVIRONMENT
               TERN_CACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/cl-tune-cache
               LSAN_OPTIONS=suppressions=${CMAKE_CURRENT_SOURCE_DIR}/cl_lsan.supp:print_suppressions=0)
endif()
if(TARGET test_cl_kernels)
  add_test(NAME test_cl_no_platform COMMAND test_cl_kernels --no-platform)
  set_tests_properties(test_cl_no_platform PROPERTIES ENVIRONMENT
                       "${TERN_TEST_ENV};OCL_ICD_VENDORS=${CMAKE_CURRENT_BINARY_DIR}/cl-no-vendors;OPENCL_VENDOR_PATH=${CMAKE_CURRENT_BINARY_DIR}/cl-no-vendors"
                       TIMEOUT 60)
endif()
# `tern run --device cl:0` with no OpenCL platform: one clear line, no crash.
if(TARGET tern)
  add_test(NAME test_cl_cli_no_platform
           COMMAND tern run -m ${CMAKE_CURRENT_SOURCE_DIR}/data/vectors/mini-b158-i2s.gguf -p "Hi" -n 1
                   --device cl:0)
  set_tests_properties(test_cl_cli_no_platform PROPERTIES
                       ENVIRONMENT "OCL_ICD_VENDORS=${CMAKE_CURRENT_BINARY_DIR}/cl-no-vendors"
                       PASS_REGULAR_EXPRESSION "device '0' unavailable: the OpenCL loader found no platform"
                       TIMEOUT 60)
endif()
