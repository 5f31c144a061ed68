# Build options for daq_pool's own asio targets (tests/asio, bench/asio,
# examples/asio_*), not for users of daq_pool::asio.
#
# daq_pool_asio_target(<target>):
#  - clang with libstdc++: asio 1.22 enables its coroutines (use_awaitable)
#    only with libc++'s <experimental/coroutine>, although clang >= 14 and
#    libstdc++ 12 support C++20 coroutines; the two macros turn them on (g++
#    defines them by itself). clang-tidy, which parses the g++ compile
#    commands with clang, needs them too.
#  - asio's recycling allocator keeps 2 freed blocks per thread and purpose
#    (ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE); a thread whose 2 cached blocks
#    are both smaller than the next request frees one and mallocs. On 2
#    threads with two sizes of posted function alternating (an operation's
#    completion, a channel's), that churns: 0-4 % of the items of the asio
#    benchmark allocated. With 8 blocks it does not (measured 2-3
#    allocations in 40000 items, the warm-up's). The macro changes asio's
#    per-thread layout, so every translation unit of a program must agree:
#    it is set per executable here, and the README recommends it.
#  - under -fsanitize=thread, g++ >= 12 warns about asio's
#    std::atomic_thread_fence (std_fenced_block); those fences only add order
#    on top of asio's scheduler mutex, which ThreadSanitizer does see.
include_guard(GLOBAL)
include(CheckCXXCompilerFlag)
check_cxx_compiler_flag(-Wno-tsan DAQ_POOL_ASIO_HAS_WNO_TSAN)

function(daq_pool_asio_target target)
  target_compile_definitions(${target} PRIVATE ASIO_HAS_CO_AWAIT=1 ASIO_HAS_STD_COROUTINE=1
                                                ASIO_RECYCLING_ALLOCATOR_CACHE_SIZE=8)
  if(DAQ_POOL_ASIO_HAS_WNO_TSAN AND CMAKE_CXX_FLAGS MATCHES "-fsanitize=thread")
    target_compile_options(${target} PRIVATE -Wno-tsan)
  endif()
endfunction()
