# Build options for daq_pool's own asio targets (tests/asio, bench/asio,
# examples/asio_*), not for users of daq_pool::asio.
#
# daq_pool_asio_target(<target>):
#  - clang with libstdc++: asio 1.22 enables its coroutines (use_awaitable)
#    only with libc++'s <experimental/coroutine>, although clang >= 14 and
#    libstdc++ 12 support C++20 coroutines; the two macros turn them on (g++
#    defines them by itself). clang-tidy, which parses the g++ compile
#    commands with clang, needs them too.
#  - under -fsanitize=thread, g++ >= 12 warns about asio's
#    std::atomic_thread_fence (std_fenced_block); those fences only add order
#    on top of asio's scheduler mutex, which ThreadSanitizer does see.
include_guard(GLOBAL)
include(CheckCXXCompilerFlag)
check_cxx_compiler_flag(-Wno-tsan DAQ_POOL_ASIO_HAS_WNO_TSAN)

function(daq_pool_asio_target target)
  target_compile_definitions(${target} PRIVATE ASIO_HAS_CO_AWAIT=1 ASIO_HAS_STD_COROUTINE=1)
  if(DAQ_POOL_ASIO_HAS_WNO_TSAN AND CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
    target_compile_options(${target} PRIVATE -Wno-tsan)
  endif()
endfunction()
