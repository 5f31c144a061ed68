// Includes the Relacy model checker so that daq_pool's own headers compile
// against it (DAQ_POOL_USE_RELACY: detail::atomic<T> is rl::atomic<T>, and
// Parking sleeps on Relacy's futex model).
//
// Include this first in a model-check translation unit. Relacy's
// <relacy/relacy.hpp> turns `memory_order_x` into `mo_x, $` (so every atomic
// operation carries its source line) and also redefines `new`, `delete`,
// `malloc`... to track memory. The standard headers are included before it
// (their code must not see those macros), the allocation macros are undone
// after it (daq_pool's placement new and `= delete` must stay C++, and the
// pools' own allocations need no model), and the memory orders are made
// visible as std::mo_x, which is what `std::memory_order_x` expands to.
#pragma once

#if !defined(DAQ_POOL_USE_RELACY)
#error "compile the model checks with -DDAQ_POOL_USE_RELACY"
#endif

// The debug checks' bookkeeping (a std::mutex) has no model: a fiber
// switched out while holding it would block the one OS thread Relacy runs
// on. The models check the protocol itself, so they run without it.
#if !defined(DAQ_POOL_DEBUG)
#define DAQ_POOL_DEBUG 0
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>
#if defined(__unix__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include <relacy/relacy.hpp>

#undef new
#undef delete
#undef malloc
#undef calloc
#undef realloc
#undef free
#undef assert

// Relacy replaces the plain operator new/delete (allocations inside a model
// are tracked: leaks, double frees and uses after free fail the model) but
// not the sized delete, which libstdc++'s allocators call (shared_ptr's
// control block, std::string): without these, memory from Relacy's heap
// would reach free(). One model-check translation unit per executable.
void operator delete(void* p, std::size_t) noexcept { ::operator delete(p); }
void operator delete[](void* p, std::size_t) noexcept { ::operator delete[](p); }

namespace std {
using rl::mo_acq_rel;
using rl::mo_acquire;
using rl::mo_consume;
using rl::mo_relaxed;
using rl::mo_release;
using rl::mo_seq_cst;
}  // namespace std
