# daq_pool_aravis_sanitizer_environment(<out_var>)
# The environment (a list for the ENVIRONMENT test property) that points the
# sanitizers at this folder's suppression files, in a sanitized build; empty
# otherwise. Used by every ctest case that runs Aravis: tests, the example,
# the demo's Aravis cases and the benchmark's smoke run. The files suppress
# reports about GLib's and Aravis's own code only; each says why.
set(_daq_pool_aravis_supp_dir "${CMAKE_CURRENT_LIST_DIR}")
function(daq_pool_aravis_sanitizer_environment out_var)
  set(env "")
  if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=[^ ]*thread")
    # The test preset's TSAN_OPTIONS, plus the suppressions (a test's
    # ENVIRONMENT replaces the variable as a whole).
    list(APPEND env "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${_daq_pool_aravis_supp_dir}/tsan.supp")
  endif()
  if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=[^ ]*address")
    list(APPEND env "LSAN_OPTIONS=suppressions=${_daq_pool_aravis_supp_dir}/lsan.supp:print_suppressions=0")
  endif()
  set(${out_var} "${env}" PARENT_SCOPE)
endfunction()
