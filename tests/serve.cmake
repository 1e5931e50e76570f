# tern serve end to end (tests/serve/openai_test.mjs): the official OpenAI client library (npm
# `openai`, pinned, installed once into <build>/npm-openai) for chat, completions, streaming, stop
# strings and usage; llama-server's top_k, and the sampling flags as a request's defaults; the
# prompt cache (a continued prompt and a chat's next turn reuse a slot's tokens, with the reply of
# the whole prompt evaluated); 8 concurrent clients against --parallel 4 and 8, each equal to the
# request sent alone and to `tern run`, and the same on the OpenCL device (cl:0, PoCL in CI; without
# a platform it fails unless TERN_CL_OPTIONAL=1) with the full and the certified head; a corpus of
# bad requests after which the server still answers; queueing (503 when full), the API key, a client
# leaving mid-stream, and SIGTERM.
find_program(TERN_NODE node)
find_program(TERN_NPM npm)
if(TARGET tern)
  add_test(NAME serve_openai
           COMMAND ${CMAKE_COMMAND}
                   -DNODE=${TERN_NODE} -DNPM=${TERN_NPM}
                   -DNPM_PREFIX=${PROJECT_BINARY_DIR}/npm-openai
                   -DSCRIPT=${CMAKE_CURRENT_SOURCE_DIR}/serve/openai_test.mjs
                   -DTERN=$<TARGET_FILE:tern>
                   -DMODEL=${CMAKE_CURRENT_SOURCE_DIR}/data/vectors/mini-b158-i2s.gguf
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/tmp/serve
                   -P ${CMAKE_CURRENT_SOURCE_DIR}/serve/run_openai.cmake)
  set_tests_properties(serve_openai PROPERTIES TIMEOUT 900
                       ENVIRONMENT "TERN_CACHE_DIR=${CMAKE_CURRENT_BINARY_DIR}/cl-cache")
endif()
