# The documentation site (docs/build.sh): the `docs` target builds it into
# <build>/docs/site, and the ctest case `docs_build` builds it strictly (a
# broken link, a missing page or snippet, an undocumented public name fails).
# Needs mkdocs with mkdocs-material, doxygen and graphviz (Debian packages
# mkdocs mkdocs-material doxygen graphviz); not in sanitizer configurations
# (nothing there is compiled).
if(DAQ_POOL_BUILD_TESTS)
  # The README is a map (<= 400 lines, its example a compiled file, its links live).
  add_test(NAME readme_map COMMAND "${CMAKE_COMMAND}" "-DROOT=${PROJECT_SOURCE_DIR}"
                                   -P "${PROJECT_SOURCE_DIR}/docs/check_readme.cmake")
  set_tests_properties(readme_map PROPERTIES LABELS "lint;docs")
endif()
find_program(DAQ_POOL_MKDOCS mkdocs DOC "mkdocs, with the mkdocs-material theme (Debian packages mkdocs mkdocs-material)")
find_program(DAQ_POOL_DOXYGEN doxygen DOC "Doxygen (Debian package doxygen)")
find_program(DAQ_POOL_DOT dot DOC "Graphviz's dot (Debian package graphviz)")
if(DAQ_POOL_MKDOCS AND DAQ_POOL_DOXYGEN AND DAQ_POOL_DOT)
  set(_daq_pool_docs_env "MKDOCS=${DAQ_POOL_MKDOCS}")
  add_custom_target(docs
    COMMAND "${CMAKE_COMMAND}" -E env "${_daq_pool_docs_env}" "${PROJECT_SOURCE_DIR}/docs/build.sh" "${PROJECT_BINARY_DIR}/docs"
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
    COMMENT "Building the documentation site into ${PROJECT_BINARY_DIR}/docs/site"
    VERBATIM)
  if(DAQ_POOL_BUILD_TESTS AND NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize")
    add_test(NAME docs_build COMMAND "${PROJECT_SOURCE_DIR}/docs/build.sh" "${PROJECT_BINARY_DIR}/docs-test")
    set_tests_properties(docs_build PROPERTIES LABELS "lint;docs" TIMEOUT 300 ENVIRONMENT "${_daq_pool_docs_env}")
  endif()
elseif(DAQ_POOL_BUILD_TESTS AND NOT CMAKE_CXX_FLAGS MATCHES "-fsanitize")
  daq_pool_missing_prerequisite(
    "mkdocs, doxygen or dot not found (install mkdocs mkdocs-material doxygen graphviz): the docs target and ctest docs_build are off")
endif()
