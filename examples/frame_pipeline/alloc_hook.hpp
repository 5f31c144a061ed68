// Counts the process's heap allocations by interposing malloc and replacing
// operator new, so the demo can prove its hot path allocates nothing.
// Allocations made inside an `alloc_hook::Expected` scope on the current
// thread (the documented heap fallback, Bytes::copy_from) are counted apart,
// and so are a third-party library's own: inside an `alloc_hook::Library`
// scope, on the threads libzmq starts (named "ZMQbg/..."), or, once
// classify_threads is set, on any thread that is not the pipeline's
// (Aravis's stream and heartbeat threads, GLib's, libusb's). FFmpeg's
// per-frame wrappers on the --encode thread are counted in a Library scope.
//
// Include in exactly ONE translation unit. Under AddressSanitizer or
// ThreadSanitizer the sanitizer owns malloc, so nothing is counted there and
// `alloc_hook::enabled` is false.
#pragma once

#include <sys/prctl.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define FRAME_PIPELINE_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define FRAME_PIPELINE_SANITIZED 1
#endif
#endif

namespace alloc_hook {

#if !defined(FRAME_PIPELINE_SANITIZED) && defined(__GLIBC__)
inline constexpr bool enabled = true;
#else
inline constexpr bool enabled = false;
#endif

inline std::atomic<std::uint64_t> unexpected_calls{0};  ///< every allocation outside an Expected scope
inline std::atomic<std::uint64_t> expected_calls{0};    ///< allocations inside an Expected scope
inline std::atomic<std::uint64_t> library_calls{0};     ///< a library's own (Library scope, its threads)

/// Set while the current thread makes an allocation the program means to make.
/// constinit + trivial type: accessing it is a plain TLS load (no lazy
/// initialization that could itself allocate).
inline constinit thread_local bool in_expected_scope = false;

/// Set by the demo when it drives a library with threads of its own
/// (--source=aravis): from then on, what a thread that is not the
/// pipeline's allocates (Aravis's stream and GigE Vision heartbeat threads,
/// libusb's, GLib's) is that library's, counted apart.
inline std::atomic<bool> classify_threads{false};

/// True on the pipeline's own threads (mark_pipeline_thread()). constinit +
/// trivial: a plain TLS access.
inline constinit thread_local bool pipeline_thread = false;

/// Marks the calling thread as one of the pipeline's (main, acquisition,
/// consumers). Never allocates.
inline void mark_pipeline_thread() noexcept { pipeline_thread = true; }

/// Marks the allocations made by this thread while it lives as expected.
class Expected {
 public:
  Expected() noexcept : previous_(in_expected_scope) { in_expected_scope = true; }
  ~Expected() { in_expected_scope = previous_; }
  Expected(const Expected&) = delete;
  Expected& operator=(const Expected&) = delete;

 private:
  bool previous_;
};

/// Set while the current thread is inside a third-party library's call.
inline constinit thread_local bool in_library_scope = false;
/// Whether this thread is one a library started: -1 not known yet.
inline constinit thread_local signed char library_thread = -1;

/// Marks the allocations made by this thread while it lives as the
/// library's (e.g. libzmq's message control block inside zmq_msg_init_data).
class Library {
 public:
  Library() noexcept : previous_(in_library_scope) { in_library_scope = true; }
  ~Library() { in_library_scope = previous_; }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;

 private:
  bool previous_;
};

/// Allocations made outside Expected scopes since the process started.
inline std::uint64_t unexpected() noexcept { return unexpected_calls.load(std::memory_order_relaxed); }
/// Allocations made inside Expected scopes since the process started.
inline std::uint64_t expected() noexcept { return expected_calls.load(std::memory_order_relaxed); }
/// Allocations libraries made on their own since the process started.
inline std::uint64_t library() noexcept { return library_calls.load(std::memory_order_relaxed); }

/// Allocations counted as unexpected on the calling thread so far (to move
/// an error path's allocations with recount_as_library). constinit +
/// trivial: a plain TLS access.
inline constinit thread_local std::uint64_t thread_unexpected = 0;

/// Moves `n` allocations this thread made from the unexpected count to the
/// library's: for a library call that failed and reported it (an exception
/// and its message), which is not the per-frame hot path. Never allocates.
inline void recount_as_library(std::uint64_t n) noexcept {
  // relaxed: statistics, read after the threads that allocate are joined.
  unexpected_calls.fetch_sub(n, std::memory_order_relaxed);
  library_calls.fetch_add(n, std::memory_order_relaxed);
}

namespace detail {
/// True on a thread libzmq started: it names them "ZMQbg/IO/0",
/// "ZMQbg/Reaper" (or "<prefix>/ZMQbg/...") before they run anything. Asked
/// once per thread (prctl does not allocate).
inline bool on_library_thread() noexcept {
  if (library_thread < 0) {
    char name[17] = {};  // PR_GET_NAME writes at most 16 bytes, NUL included
    library_thread = ::prctl(PR_GET_NAME, name) == 0 && std::strstr(name, "ZMQbg") != nullptr ? 1 : 0;
  }
  return library_thread == 1;
}

inline void count() noexcept {
  // relaxed: a statistic, read after the threads that allocate are joined.
  // relaxed: classify_threads is set once, before the library's threads exist.
  const bool library =
      in_library_scope || on_library_thread() || (!pipeline_thread && classify_threads.load(std::memory_order_relaxed));
  std::atomic<std::uint64_t>& counter = in_expected_scope ? expected_calls : library ? library_calls : unexpected_calls;
  if (!in_expected_scope && !library) ++thread_unexpected;
  counter.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace detail

}  // namespace alloc_hook

#if !defined(FRAME_PIPELINE_SANITIZED) && defined(__GLIBC__)
// glibc's own entry points (reserved names, but the documented way to reach
// the real allocator from an interposed malloc).
// NOLINTBEGIN(bugprone-reserved-identifier)
extern "C" {
void* __libc_malloc(std::size_t) noexcept;
void* __libc_calloc(std::size_t, std::size_t) noexcept;
void* __libc_realloc(void*, std::size_t) noexcept;
void* __libc_memalign(std::size_t, std::size_t) noexcept;
void __libc_free(void*) noexcept;

void* malloc(std::size_t n) noexcept {
  alloc_hook::detail::count();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t m) noexcept {
  alloc_hook::detail::count();
  return __libc_calloc(n, m);
}
void* realloc(void* p, std::size_t n) noexcept {
  alloc_hook::detail::count();
  return __libc_realloc(p, n);
}
void* aligned_alloc(std::size_t a, std::size_t n) noexcept {
  alloc_hook::detail::count();
  return __libc_memalign(a, n);
}
void* memalign(std::size_t a, std::size_t n) noexcept {
  alloc_hook::detail::count();
  return __libc_memalign(a, n);
}
int posix_memalign(void** out, std::size_t a, std::size_t n) noexcept {
  alloc_hook::detail::count();
  void* p = __libc_memalign(a, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void free(void* p) noexcept { __libc_free(p); }
}
// NOLINTEND(bugprone-reserved-identifier)

namespace alloc_hook::detail {
// operator new calls the C allocator directly, so one `new` counts once.
inline void* counted_new(std::size_t n, std::size_t align) noexcept {
  count();
  if (n == 0) n = 1;
  return align <= alignof(std::max_align_t) ? __libc_malloc(n) : __libc_memalign(align, n);
}
inline void* counted_new_or_throw(std::size_t n, std::size_t align) {
  if (void* p = counted_new(n, align)) return p;
  throw std::bad_alloc();
}
}  // namespace alloc_hook::detail

void* operator new(std::size_t n) { return alloc_hook::detail::counted_new_or_throw(n, 0); }
void* operator new[](std::size_t n) { return alloc_hook::detail::counted_new_or_throw(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return alloc_hook::detail::counted_new_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return alloc_hook::detail::counted_new_or_throw(n, static_cast<std::size_t>(a));
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return alloc_hook::detail::counted_new(n, 0); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return alloc_hook::detail::counted_new(n, 0); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return alloc_hook::detail::counted_new(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return alloc_hook::detail::counted_new(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { __libc_free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { __libc_free(p); }
#endif
