# Fuzzing (docs/fuzzing.md). With -DTERN_FUZZ=ON:
#  - make_malformed: the generator of the checked-in malformed corpus (any compiler);
#  - fuzz_gguf: the libFuzzer target for the GGUF reader (clang only: configure with CC=clang);
#  - fuzz_tokenizer: the libFuzzer target for the tokenizer (vocabulary load, tokenize, decode);
#  - fuzz_convert: the libFuzzer target for `tern convert` (a Hugging Face folder to a GGUF);
#  - fuzz_api_request: the libFuzzer target for tern serve's request parsing (request bodies);
#  - fuzz_json_mode: the libFuzzer target for JSON mode's recognizer (texts, against jansson).
# The fuzz targets compile the sources under test themselves, instrumented, instead of linking
# tern_core, so only that code carries the fuzzer's coverage hooks. Each has a regression test
# that runs every file of its corpus through it once (-runs=0 only replays the inputs).

# tern_fuzz_target(NAME CORPUS_DIR SOURCES... [LIBS libs...])
function(tern_fuzz_target name corpus)
  cmake_parse_arguments(F "" "" "LIBS" ${ARGN})
  add_executable(${name} ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/${name}.c ${F_UNPARSED_ARGUMENTS}
                 ${PROJECT_SOURCE_DIR}/scheduler/log.c ${PROJECT_SOURCE_DIR}/scheduler/status.c
                 ${PROJECT_SOURCE_DIR}/scheduler/types.c)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
                         -fno-omit-frame-pointer)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${F_LIBS} m)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR})
  add_test(NAME ${name}_corpus COMMAND ${name} -runs=0 ${CMAKE_CURRENT_SOURCE_DIR}/data/${corpus})
endfunction()

if(TERN_FUZZ)
  add_executable(make_malformed ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/make_malformed.c)
  if(CMAKE_C_COMPILER_ID MATCHES "Clang")
    tern_fuzz_target(fuzz_gguf malformed ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c)
    file(GLOB TOKENIZER_SOURCES ${PROJECT_SOURCE_DIR}/host/tokenizer/*.c)
    tern_fuzz_target(fuzz_tokenizer tokenizer_fuzz ${TOKENIZER_SOURCES} ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c
                     ${PROJECT_SOURCE_DIR}/host/gguf/gguf_write.c LIBS PkgConfig::PCRE2)
    file(GLOB CONVERT_SOURCES ${PROJECT_SOURCE_DIR}/host/convert/*.c)
    tern_fuzz_target(fuzz_convert convert_fuzz ${CONVERT_SOURCES} ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c
                     ${PROJECT_SOURCE_DIR}/host/gguf/gguf_write.c ${PROJECT_SOURCE_DIR}/host/gguf/quantize.c
                     ${PROJECT_SOURCE_DIR}/host/model/ternary.c LIBS PkgConfig::JANSSON)
    set(JSON_MODE_SOURCES ${PROJECT_SOURCE_DIR}/host/generate/json_mode.c
                          ${PROJECT_SOURCE_DIR}/host/generate/json_schema.c
                          ${PROJECT_SOURCE_DIR}/host/generate/json_pattern.c)
    tern_fuzz_target(fuzz_api_request api_fuzz ${PROJECT_SOURCE_DIR}/host/serve/api_request.c
                     ${PROJECT_SOURCE_DIR}/host/serve/api_tools.c
                     ${PROJECT_SOURCE_DIR}/host/generate/chat.c ${JSON_MODE_SOURCES} ${TOKENIZER_SOURCES}
                     ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c LIBS PkgConfig::PCRE2 PkgConfig::JANSSON)
    target_compile_definitions(fuzz_api_request PRIVATE
                               TERN_FUZZ_MODEL="${CMAKE_CURRENT_SOURCE_DIR}/data/vectors/mini-b158-i2s.gguf")
    tern_fuzz_target(fuzz_json_mode json_fuzz ${JSON_MODE_SOURCES} ${TOKENIZER_SOURCES}
                     ${PROJECT_SOURCE_DIR}/host/gguf/gguf.c LIBS PkgConfig::PCRE2 PkgConfig::JANSSON)
  else()
    message(STATUS "TERN_FUZZ: fuzz targets need clang (configure with CC=clang); skipping fuzz_gguf, fuzz_tokenizer, fuzz_convert, fuzz_api_request and fuzz_json_mode")
  endif()
endif()
