# daq_pool_aravis_sanitizer_environment(<out_var>)
# The environment (a list for the ENVIRONMENT test property) that points
# ThreadSanitizer at this folder's tsan.supp in a TSan build; empty otherwise.
# Used by every ctest case that runs Aravis: these tests, the example, the
# demo's Aravis cases and the benchmark's smoke run. The file suppresses
# reports about GLib's own code only and says why. (ASan/LSan need none:
# nothing of Aravis's leaks once arv_shutdown() runs at exit.)
set(_daq_pool_aravis_supp_dir "${CMAKE_CURRENT_LIST_DIR}")
function(daq_pool_aravis_sanitizer_environment out_var)
  set(env "")
  if(CMAKE_CXX_FLAGS MATCHES "-fsanitize=[^ ]*thread")
    # The test preset's TSAN_OPTIONS, plus the suppressions (a test's
    # ENVIRONMENT replaces the variable as a whole).
    list(APPEND env "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${_daq_pool_aravis_supp_dir}/tsan.supp")
  endif()
  set(${out_var} "${env}" PARENT_SCOPE)
endfunction()
