# The tern command line end to end: generation, info, tokenize, and bad input (bad flags, missing
# or malformed models, overlong prompts, unwritable outputs) giving one error line and the right
# exit code.
add_test(NAME cli
         COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/cli/test_cli.sh ${PROJECT_BINARY_DIR}
                 ${CMAKE_CURRENT_SOURCE_DIR}/data ${CMAKE_CURRENT_BINARY_DIR}/tmp/cli)
set_tests_properties(cli PROPERTIES TIMEOUT 600)
