// Telling ThreadSanitizer about the happens-before a C library provides when
// it carries a raw handle (Bytes::into_raw) from the thread that wrapped it
// to the thread that runs its free callback.
//
// GStreamer passes buffers between threads under GLib's futex-based GMutex
// and GCond, and FFmpeg counts AVBuffer references with its own atomics:
// both are compiled without TSan, so TSan sees no synchronisation between
// the wrapping thread's writes (the frame, the buffer's loan fields written
// by freeze()) and the callback's reads of them when it returns the buffer
// to its pool, and reports a race that cannot happen: a library cannot call
// the free callback with a handle it has not received, and receiving it on
// another thread is synchronised in the library. These annotations state
// that edge, at the two ends only we control: handle_published() where the
// handle is handed over, handle_received() first thing in the callback. Without
// ThreadSanitizer they compile to nothing.
#pragma once

#include "daq_pool/detail/abi.hpp"

#if defined(__SANITIZE_THREAD__)
#define DAQ_POOL_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DAQ_POOL_DETAIL_TSAN 1
#endif
#endif

#if defined(DAQ_POOL_DETAIL_TSAN)
extern "C" {
void __tsan_acquire(void* addr);  // NOLINT(bugprone-reserved-identifier): TSan's interface
void __tsan_release(void* addr);  // NOLINT(bugprone-reserved-identifier)
}
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// The wrapping thread hands `raw` to a C library: everything it did before
/// happens before the library's free callback for `raw` (see handle_received()).
/// Never allocates; nothing outside ThreadSanitizer builds.
inline void handle_published([[maybe_unused]] void* raw) noexcept {
#if defined(DAQ_POOL_DETAIL_TSAN)
  __tsan_release(raw);
#endif
}

/// First thing in a free callback for `raw`: pairs with handle_published().
/// Never allocates; nothing outside ThreadSanitizer builds.
inline void handle_received([[maybe_unused]] void* raw) noexcept {
#if defined(DAQ_POOL_DETAIL_TSAN)
  __tsan_acquire(raw);
#endif
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
