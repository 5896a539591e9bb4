# phasekit_add_plugin(<kind> <name> SOURCES ... [LIBRARIES ...] [OUTPUT_DIRECTORY dir])
#
# Builds lib<phasekit_kind_name>.so as a MODULE with hidden visibility, so the only exported symbol is
# phasekit_plugin_entry (tests/plugins checks this with nm). -Wl,--no-undefined makes a missing symbol
# a link error instead of a dlopen error at start-up.
function(phasekit_add_plugin kind name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY;TARGET" "SOURCES;LIBRARIES" ${ARGN})
  if(NOT ARG_TARGET)
    set(ARG_TARGET phasekit_${kind}_${name})
  endif()
  if(NOT ARG_OUTPUT_DIRECTORY)
    set(ARG_OUTPUT_DIRECTORY "${PHASEKIT_PLUGIN_OUTPUT_DIR}")
  endif()
  add_library(${ARG_TARGET} MODULE ${ARG_SOURCES})
  set_target_properties(${ARG_TARGET} PROPERTIES
    OUTPUT_NAME "phasekit_${kind}_${name}"
    LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}"
    CXX_VISIBILITY_PRESET hidden
    C_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${ARG_TARGET} PRIVATE phasekit::plugin_api phasekit::options phasekit::warnings
                                              ${ARG_LIBRARIES})
  # --exclude-libs: code from static libraries (Asio) stays private to the plugin.
  target_link_options(${ARG_TARGET} PRIVATE -Wl,--no-undefined -Wl,--exclude-libs,ALL
                      "-Wl,--version-script=${PROJECT_SOURCE_DIR}/cmake/plugin.map")
  set_property(TARGET ${ARG_TARGET} APPEND PROPERTY LINK_DEPENDS "${PROJECT_SOURCE_DIR}/cmake/plugin.map")
  set_property(GLOBAL APPEND PROPERTY PHASEKIT_PLUGIN_TARGETS ${ARG_TARGET})
endfunction()
