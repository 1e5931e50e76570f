# tern_embed(TARGET OUT HEADER TABLE COUNT COMMENT FILES...): build OUT, a C file defining TABLE[]
# (struct tern_embedded_file, scheduler/embedded.h) and COUNT from FILES with cmake/embed.cmake, and
# add it to tern_core. OUT's rule belongs to the calling directory, so TARGET, a target of that
# directory, runs it; the top directory (tern_core's) is told the file is generated.
function(tern_embed target out header table count comment)
  string(REPLACE ";" "|" inputs "${ARGN}") # embed.cmake splits at |
  add_custom_command(
    OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} "-DINPUTS=${inputs}" -DHEADER=${header} -DTABLE=${table}
            -DCOUNT=${count} -P ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
    DEPENDS ${ARGN} ${PROJECT_SOURCE_DIR}/cmake/embed.cmake
    COMMENT "${comment}"
    VERBATIM)
  add_custom_target(${target} DEPENDS ${out})
  set_source_files_properties(${out} DIRECTORY ${PROJECT_SOURCE_DIR} PROPERTIES GENERATED TRUE)
  add_dependencies(tern_core ${target})
  target_sources(tern_core PRIVATE ${out})
endfunction()
