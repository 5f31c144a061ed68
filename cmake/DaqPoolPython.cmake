# Installs the Python package (python/daq_pool, pure Python) next to the
# C++ headers, in the directory of <prefix> that the Python interpreter
# already searches: Debian's /usr/bin/python3 looks in
# /usr/local/lib/python3.X/dist-packages (prefix /usr/local, the default)
# and /usr/lib/python3/dist-packages (prefix /usr). The interpreter is the
# one the tests use (daq_pool_find_python_with, numpy required; override
# with -DPython3_EXECUTABLE=...); the directory is DAQ_POOL_INSTALL_PYTHONDIR
# (relative to the prefix), which you may set yourself. If the interpreter
# searches no directory under the prefix, the package goes to
# lib/python3.X/site-packages and a message says to add it to PYTHONPATH
# (docs/python.md, "Installing").
#
#   cmake --install build/dev --component python      # only the package
option(DAQ_POOL_INSTALL_PYTHON "Install the Python package daq_pool (python/)" ON)
if(NOT DAQ_POOL_INSTALL_PYTHON)
  return()
endif()
include(DaqPoolTesting)  # daq_pool_find_python_with
daq_pool_find_python_with(_dp_install_python MODULES numpy)
if(NOT _dp_install_python)
  message(STATUS "daq_pool: the Python package is not installed: no Python 3 with numpy (python3-numpy)")
  return()
endif()
if(NOT DEFINED DAQ_POOL_INSTALL_PYTHONDIR)
  # The first directory on the interpreter's sys.path under the prefix.
  execute_process(
    COMMAND "${_dp_install_python}" -c
      "import sys, os; p = os.path.realpath(sys.argv[1]); d = [os.path.relpath(x, p) for x in sys.path if x.startswith(p + '/') and x.endswith(('dist-packages', 'site-packages'))]; print(d[0] if d else '')"
      "${CMAKE_INSTALL_PREFIX}"
    OUTPUT_VARIABLE _dp_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _dp_rc)
  if(NOT _dp_rc EQUAL 0 OR _dp_dir STREQUAL "")
    execute_process(
      COMMAND "${_dp_install_python}" -c "import sys; print(f'lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages')"
      OUTPUT_VARIABLE _dp_dir OUTPUT_STRIP_TRAILING_WHITESPACE)
    message(STATUS "daq_pool: ${_dp_install_python} does not search ${CMAKE_INSTALL_PREFIX}: the Python package goes to "
                   "${CMAKE_INSTALL_PREFIX}/${_dp_dir}; add that to PYTHONPATH")
  endif()
  set(DAQ_POOL_INSTALL_PYTHONDIR "${_dp_dir}" CACHE STRING "Where to install the Python package daq_pool (relative to the prefix)")
endif()
install(DIRECTORY "${PROJECT_SOURCE_DIR}/python/daq_pool" DESTINATION "${DAQ_POOL_INSTALL_PYTHONDIR}" COMPONENT python
        FILES_MATCHING PATTERN "*.py" PATTERN "py.typed" PATTERN "__pycache__" EXCLUDE)
message(STATUS "daq_pool: Python package -> ${CMAKE_INSTALL_PREFIX}/${DAQ_POOL_INSTALL_PYTHONDIR}/daq_pool (${_dp_install_python})")
