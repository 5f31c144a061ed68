// Counts heap allocations made by the whole process: replaces the global
// operator new family and, where no sanitizer owns malloc, interposes
// malloc/calloc/realloc/aligned allocations too (moodycamel and C code
// allocate through malloc, not new).
//
// Include this header in exactly ONE translation unit of an executable.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DAQ_POOL_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define DAQ_POOL_TEST_SANITIZED 1
#endif
#endif

namespace alloc_counter {

inline std::atomic<std::uint64_t> new_calls{0};
inline std::atomic<std::uint64_t> malloc_calls{0};
/// Allocations made by the current thread (both kinds). constinit and
/// trivial: counting is a plain TLS increment, which itself never allocates.
inline constinit thread_local std::uint64_t this_thread_calls = 0;

/// True when allocations are counted at all: sanitizers own malloc and
/// operator new (clang links its own, clashing), so there we count nothing
/// and allocation tests must skip.
#if !defined(DAQ_POOL_TEST_SANITIZED) && defined(__GLIBC__)
inline constexpr bool enabled = true;
#else
inline constexpr bool enabled = false;
#endif

/// Allocations (operator new + malloc family) since the process started.
inline std::uint64_t total() noexcept {
  return new_calls.load(std::memory_order_relaxed) + malloc_calls.load(std::memory_order_relaxed);
}

/// Counts the allocations made while it lives (by every thread).
class Scope {
 public:
  Scope() noexcept : new0_(new_calls.load()), malloc0_(malloc_calls.load()) {}
  std::uint64_t news() const noexcept { return new_calls.load() - new0_; }
  std::uint64_t mallocs() const noexcept { return malloc_calls.load() - malloc0_; }
  std::uint64_t total() const noexcept { return news() + mallocs(); }

 private:
  std::uint64_t new0_, malloc0_;
};

/// Counts the allocations made by the calling thread only while it lives,
/// e.g. to tell a pipeline's own allocations from those of a library's
/// threads (Aravis's receive thread). Use it on the thread that made it.
class ThreadScope {
 public:
  ThreadScope() noexcept : start_(this_thread_calls) {}
  std::uint64_t total() const noexcept { return this_thread_calls - start_; }

 private:
  std::uint64_t start_;
};

}  // namespace alloc_counter

#if !defined(DAQ_POOL_TEST_SANITIZED) && defined(__GLIBC__)
extern "C" {
void* __libc_malloc(std::size_t) noexcept;
void* __libc_calloc(std::size_t, std::size_t) noexcept;
void* __libc_realloc(void*, std::size_t) noexcept;
void* __libc_memalign(std::size_t, std::size_t) noexcept;
void __libc_free(void*) noexcept;

void* malloc(std::size_t n) noexcept {
  alloc_counter::malloc_calls.fetch_add(1, std::memory_order_relaxed);
  ++alloc_counter::this_thread_calls;
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) noexcept {
  alloc_counter::malloc_calls.fetch_add(1, std::memory_order_relaxed);
  ++alloc_counter::this_thread_calls;
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) noexcept {
  alloc_counter::malloc_calls.fetch_add(1, std::memory_order_relaxed);
  ++alloc_counter::this_thread_calls;
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) noexcept {
  alloc_counter::malloc_calls.fetch_add(1, std::memory_order_relaxed);
  ++alloc_counter::this_thread_calls;
  return __libc_memalign(a, n);
}
void* memalign(std::size_t a, std::size_t n) noexcept {
  alloc_counter::malloc_calls.fetch_add(1, std::memory_order_relaxed);
  ++alloc_counter::this_thread_calls;
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) noexcept {
  alloc_counter::malloc_calls.fetch_add(1, std::memory_order_relaxed);
  ++alloc_counter::this_thread_calls;
  void* p = __libc_memalign(a, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void free(void* p) noexcept { __libc_free(p); }
}
#endif

#if !defined(DAQ_POOL_TEST_SANITIZED) && defined(__GLIBC__)
// operator new goes straight to the C allocator (not through the interposed
// malloc, so one `new` counts once).
namespace alloc_counter::detail {
inline void* raw_alloc(std::size_t n, std::size_t align) {
  if (n == 0) n = 1;
  return align <= alignof(std::max_align_t) ? __libc_malloc(n) : __libc_memalign(align, n);
}
inline void raw_free(void* p) noexcept { __libc_free(p); }
inline void* counted_new(std::size_t n, std::size_t align) {
  new_calls.fetch_add(1, std::memory_order_relaxed);
  ++this_thread_calls;
  if (void* p = raw_alloc(n, align)) return p;
  throw std::bad_alloc();
}
inline void* counted_new_nothrow(std::size_t n, std::size_t align) noexcept {
  new_calls.fetch_add(1, std::memory_order_relaxed);
  ++this_thread_calls;
  return raw_alloc(n, align);
}
}  // namespace alloc_counter::detail

void* operator new(std::size_t n) { return alloc_counter::detail::counted_new(n, 0); }
void* operator new[](std::size_t n) { return alloc_counter::detail::counted_new(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return alloc_counter::detail::counted_new(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return alloc_counter::detail::counted_new(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return alloc_counter::detail::counted_new_nothrow(n, 0);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return alloc_counter::detail::counted_new_nothrow(n, 0);
}
void operator delete(void* p) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete[](void* p) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete(void* p, std::size_t) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete[](void* p, std::size_t) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { alloc_counter::detail::raw_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { alloc_counter::detail::raw_free(p); }
#endif
