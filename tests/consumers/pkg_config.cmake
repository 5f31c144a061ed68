# cmake -P: consumer 4, no CMake on the consumer side:
#   c++ -std=c++20 $(pkg-config --cflags daq_pool) consumer.cpp $(pkg-config --libs daq_pool)
# against the installed PREFIX. -DPREFIX= -DPKG_CONFIG= -DCXX_COMPILER= -DBINARY_DIR=
# -DEXPECTED_VERSION= [-DEXTRA_FLAGS=a|b]
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${BINARY_DIR}")
file(MAKE_DIRECTORY "${BINARY_DIR}")
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/share/pkgconfig")
unset(ENV{PKG_CONFIG_LIBDIR})

function(pkg_config out_var)
  execute_process(COMMAND "${PKG_CONFIG}" ${ARGN} daq_pool RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "pkg-config ${ARGN} daq_pool failed (${rc}):\n${out}${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

pkg_config(ignored --validate)
pkg_config(version --modversion)
if(NOT version STREQUAL EXPECTED_VERSION)
  message(FATAL_ERROR "pkg-config says daq_pool ${version}, expected ${EXPECTED_VERSION}")
endif()
pkg_config(cflags --cflags)
pkg_config(libs --libs)
if(NOT cflags MATCHES "-pthread" OR NOT libs MATCHES "-pthread")
  message(FATAL_ERROR "daq_pool.pc lacks -pthread: cflags '${cflags}', libs '${libs}'")
endif()
message(STATUS "pkg-config --cflags daq_pool: ${cflags}")
message(STATUS "pkg-config --libs daq_pool: ${libs}")

separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")
string(REPLACE "|" ";" extra "${EXTRA_FLAGS}")
set(exe "${BINARY_DIR}/daq_pool_consumer")
execute_process(COMMAND "${CXX_COMPILER}" -std=c++20 ${extra} ${cflags} "${CMAKE_CURRENT_LIST_DIR}/consumer.cpp"
                        -o "${exe}" ${libs}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "compiling with pkg-config's flags failed (${rc}):\n${out}")
endif()
execute_process(COMMAND "${exe}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the pkg-config consumer failed (${rc})")
endif()
