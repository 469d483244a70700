# es_embed_assets(TARGET name HEADER header.h [BASE dir] FILES file...)
#
# Compiles files into the program: a static library `name` whose generated
# source defines
#     const es_http_asset name_assets[];  const size_t name_assets_count;
# (es_http_asset from common/http.h), one row per file, its path "/" + the
# file's path under BASE (default: the calling folder) and its content type
# from the extension. The source is written at build time by
# EsEmbedGen.cmake and again whenever one of the files changes; nothing is
# read from disk at run time. HEADER, in the caller's folder (the library's
# public include folder), declares the two symbols; the source includes it.
set(ES_EMBED_GEN ${CMAKE_CURRENT_LIST_DIR}/EsEmbedGen.cmake)

function(es_embed_assets)
  cmake_parse_arguments(E "" "TARGET;HEADER;BASE" "FILES" ${ARGN})
  if(NOT E_TARGET OR NOT E_HEADER OR NOT E_FILES)
    message(FATAL_ERROR "es_embed_assets: TARGET, HEADER and FILES are required")
  endif()
  if(NOT E_BASE)
    set(E_BASE ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set(abs "")
  foreach(f IN LISTS E_FILES)
    get_filename_component(p ${f} ABSOLUTE BASE_DIR ${E_BASE})
    list(APPEND abs ${p})
  endforeach()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${E_TARGET}_assets.c)
  # A list cannot cross the command line as one argument: ';' becomes '|'.
  string(REPLACE ";" "|" files_arg "${abs}")
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out} -DSYMBOL=${E_TARGET}_assets
            -DBASE=${E_BASE} -DHEADER=${E_HEADER} "-DFILES=${files_arg}" -P ${ES_EMBED_GEN}
    DEPENDS ${abs} ${ES_EMBED_GEN}
    COMMENT "Embedding ${E_TARGET} assets"
    VERBATIM)
  add_library(${E_TARGET} STATIC ${out})
  target_include_directories(${E_TARGET} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})
  es_target_defaults(${E_TARGET})
  target_link_libraries(${E_TARGET} PUBLIC es_common)
endfunction()
