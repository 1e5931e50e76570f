# Fuzzing (docs/fuzzing.md). With -DTERN_FUZZ=ON:
#  - make_malformed: the generator of the checked-in malformed corpus (any compiler);
#  - fuzz_gguf: the libFuzzer target for the GGUF reader (clang only: configure with CC=clang);
#  - fuzz_tokenizer: the libFuzzer target for the tokenizer (vocabulary load, tokenize, decode).
# The fuzz targets compile the sources under test themselves, instrumented, instead of linking
# tern_core, so only that code carries the fuzzer's coverage hooks.
if(TERN_FUZZ)
  add_executable(make_malformed ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/make_malformed.c)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    set(FUZZ_GGUF_SOURCES
        ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_gguf.c
        ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c
        ${PROJECT_SOURCE_DIR}/scheduler/log.c
        ${PROJECT_SOURCE_DIR}/scheduler/status.c
        ${PROJECT_SOURCE_DIR}/scheduler/types.c)
    add_executable(fuzz_gguf ${FUZZ_GGUF_SOURCES})
    target_include_directories(fuzz_gguf PRIVATE ${PROJECT_SOURCE_DIR})
    target_compile_options(fuzz_gguf PRIVATE -g -O1 -fsanitize=fuzzer,address,undefined
                           -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(fuzz_gguf PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_gguf PRIVATE m)
    set_target_properties(fuzz_gguf PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
    # Regression: run every corpus file through the target once (-runs=0 only replays the inputs).
    add_test(NAME fuzz_gguf_corpus COMMAND fuzz_gguf -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/data/malformed)

    file(GLOB FUZZ_TOKENIZER_SOURCES ${PROJECT_SOURCE_DIR}/host/tokenizer/*.c)
    add_executable(fuzz_tokenizer ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_tokenizer.c ${FUZZ_TOKENIZER_SOURCES}
                   ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c ${PROJECT_SOURCE_DIR}/host/gguf/gguf_write.c
                   ${PROJECT_SOURCE_DIR}/scheduler/log.c ${PROJECT_SOURCE_DIR}/scheduler/status.c
                   ${PROJECT_SOURCE_DIR}/scheduler/types.c)
    target_include_directories(fuzz_tokenizer PRIVATE ${PROJECT_SOURCE_DIR})
    target_compile_options(fuzz_tokenizer PRIVATE -g -O1 -fsanitize=fuzzer,address,undefined
                           -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(fuzz_tokenizer PRIVATE -fsanitize=fuzzer,address,undefined)
    target_link_libraries(fuzz_tokenizer PRIVATE PkgConfig::PCRE2 m)
    set_target_properties(fuzz_tokenizer PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
    add_test(NAME fuzz_tokenizer_corpus COMMAND fuzz_tokenizer -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/data/tokenizer_fuzz)
  else()
    message(STATUS "TERN_FUZZ: fuzz targets need clang (configure with CC=clang); skipping fuzz_gguf")
  endif()
endif()
