// GStreamer integration: a Bytes view handed to GStreamer without a copy, as
// a GstBuffer holding one read-only GstMemory, and pushed into an appsrc. The
// view's buffer goes back to its pool when GStreamer frees that memory (its
// last GstBuffer, sub-buffer or GstSample gone), on whichever thread that
// happens.
//
// Needs gstreamer-1.0 and gstreamer-app-1.0 (pkg-config; CMake target
// daq_pool::gstreamer). gst_init() must have been called.
#pragma once

#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/foreign_handoff.hpp"

#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::gstreamer {

// Ownership, in one place:
//  - wrap_buffer(view) moves the view's reference into one GstMemory
//    (Bytes::into_raw as its user_data) inside a new GstBuffer: from then on
//    GStreamer owns it. The caller owns the returned GstBuffer (one
//    reference: gst_buffer_unref it, or give it away, e.g. to
//    gst_app_src_push_buffer or gst_pad_push, which take it).
//  - Every GstBuffer that shares the memory (gst_buffer_ref, gst_buffer_copy,
//    gst_buffer_copy_region, a GstSample in appsink, passthrough elements)
//    keeps the memory alive; the destroy notify below runs once, when the
//    memory is freed, and drops the view's reference.
//  - The memory is GST_MEMORY_FLAG_READONLY: gst_memory_map / gst_buffer_map
//    for writing it fail, and gst_buffer_map(GST_MAP_WRITE) on a writable
//    buffer, gst_buffer_make_writable + map, and every in-place element
//    replace it by a copy first (dropping our memory, and the view, when
//    nothing else holds it). GStreamer never writes into the pool.

namespace detail {

/// The GstMemory's GDestroyNotify; `user_data` is the view's raw handle.
///
/// Thread: whichever thread frees the memory, i.e. drops the last GstBuffer
/// (or GstSample) that holds it. That is a streaming thread (a `queue`'s, or
/// the sink's once it has rendered the buffer), the application thread that
/// unrefs a sample pulled from appsink, the thread that sets the pipeline to
/// READY or NULL (queued and prerolled buffers are flushed then), or the
/// caller of gst_app_src_push_buffer itself when appsrc refuses the buffer:
/// any thread, at any time after the hand-off, possibly after every daq_pool
/// object of the caller is gone.
///
/// May touch: only the handle. Bytes::release_raw is one acq_rel decrement;
/// the last one runs the pool's reset on this thread (size back to 0, or the
/// zero_on_release scrub) and pushes the buffer on the pool's lock-free free
/// list, waking an acquirer that waits. It never allocates, never throws (an
/// exception must not unwind through GLib's C frames), never blocks and takes
/// no lock (except the debug-build bookkeeping mutex, DAQ_POOL_DEBUG), so it
/// is safe on a streaming thread that holds GStreamer's locks.
inline void release_view(gpointer user_data) noexcept {
  daq_pool::detail::handle_received(user_data);  // ThreadSanitizer only: the library's hand-off, made visible
  Bytes::release_raw(user_data);
}

/// Throws std::invalid_argument("daq_pool::gstreamer::<function>: <what>").
/// Out of line of the callers' success paths, which must not allocate.
[[noreturn]] inline void invalid(const char* function, const std::string& what) {
  throw std::invalid_argument(std::string("daq_pool::gstreamer::") + function + ": " + what);
}

/// Throws std::logic_error unless gst_init() has run (GstBuffer's type is
/// registered there).
inline void require_initialized(const char* function) {
  if (gst_is_initialized() == FALSE)
    throw std::logic_error(std::string("daq_pool::gstreamer::") + function + ": call gst_init() first");
}

}  // namespace detail

/// Wraps `view` in a new GstBuffer without copying: one GstMemory,
/// GST_MEMORY_FLAG_READONLY, whose data is `view.data()` and whose size (and
/// maxsize) is `view.size()`. The view's reference moves into the memory
/// (pass `std::move(view)` to hand yours over, or a copy to keep it) and is
/// dropped when GStreamer frees the memory, on that thread (see
/// detail::release_view). The buffer has no timestamps, offsets or flags
/// set: set GST_BUFFER_PTS and friends as for any buffer.
///
/// The caller owns the returned buffer (one reference). Throws
/// std::invalid_argument for an empty view (its reference dropped),
/// std::logic_error before gst_init(). Thread-safe. Costs GStreamer's own
/// wrappers (a GstBuffer and a GstMemory, from GLib's slice allocator, freed
/// with them); daq_pool allocates nothing.
[[nodiscard]] inline GstBuffer* wrap_buffer(Bytes view) {
  detail::require_initialized("wrap_buffer");
  if (view.empty()) detail::invalid("wrap_buffer", "view is empty (a GstMemory needs at least 1 byte)");
  // GStreamer's API takes a non-const pointer; GST_MEMORY_FLAG_READONLY is
  // the promise that nothing will write through it.
  gpointer data = const_cast<std::byte*>(view.data());
  const gsize size = view.size();
  void* raw = std::move(view).into_raw();
  daq_pool::detail::handle_published(raw);
  // Arguments valid (data non-null, offset + size <= maxsize): cannot fail
  // (GLib aborts the process on out-of-memory rather than return null).
  return gst_buffer_new_wrapped_full(GST_MEMORY_FLAG_READONLY, data, size, 0, size, raw, &detail::release_view);
}

/// What gst_app_src_push_buffer said about one frame. Whatever it says, the
/// appsrc took the buffer: on anything but ok() it was dropped at once, so
/// the view's reference is already released (the pool buffer is back if
/// that was its last view).
struct [[nodiscard]] PushResult {
  /// What gst_app_src_push_buffer returned.
  GstFlowReturn flow = GST_FLOW_OK;

  /// GST_FLOW_OK: the frame is queued in the appsrc.
  bool ok() const noexcept { return flow == GST_FLOW_OK; }
  /// ok().
  explicit operator bool() const noexcept { return ok(); }
  /// GST_FLOW_FLUSHING: the appsrc was stopped (its pipeline went down to
  /// READY or NULL) or is in a flushing seek. (Before its first start an
  /// appsrc queues what it is given.)
  bool flushing() const noexcept { return flow == GST_FLOW_FLUSHING; }
  /// GST_FLOW_EOS: end-of-stream was already signalled
  /// (gst_app_src_end_of_stream); no frame is accepted any more.
  bool eos() const noexcept { return flow == GST_FLOW_EOS; }
  /// GStreamer's name of the result: "ok", "flushing", "eos", ...
  const char* name() const noexcept { return gst_flow_get_name(flow); }
};

/// Wraps `view` (wrap_buffer), stamps it with `pts` and `duration`
/// (GST_CLOCK_TIME_NONE: none; with an appsrc whose do-timestamp is on,
/// GStreamer stamps it) and pushes it into `appsrc`, which takes ownership
/// of the buffer whatever the result. With the appsrc's `block` property
/// on, this waits while the appsrc's queue is full (max-bytes, max-buffers,
/// max-time), which is how a pipeline slower than the camera pushes back; a
/// pool the pipeline holds entirely blocks the producer's acquire() instead.
///
/// Throws std::invalid_argument if `appsrc` is null or not an appsrc, or the
/// view is empty (the view's reference is dropped); std::logic_error before
/// gst_init(). Thread-safe (appsrc's push is). Costs wrap_buffer's wrappers
/// plus GStreamer's queueing; daq_pool allocates nothing.
inline PushResult push_to_appsrc(GstElement* appsrc, Bytes view, GstClockTime pts = GST_CLOCK_TIME_NONE,
                                 GstClockTime duration = GST_CLOCK_TIME_NONE) {
  detail::require_initialized("push_to_appsrc");
  if (appsrc == nullptr) detail::invalid("push_to_appsrc", "appsrc is null");
  if (!GST_IS_APP_SRC(appsrc))
    detail::invalid("push_to_appsrc", std::string("appsrc is a ") + G_OBJECT_TYPE_NAME(appsrc) + ", not a GstAppSrc");
  if (view.empty()) detail::invalid("push_to_appsrc", "view is empty (a GstMemory needs at least 1 byte)");
  GstBuffer* buffer = wrap_buffer(std::move(view));
  GST_BUFFER_PTS(buffer) = pts;
  GST_BUFFER_DURATION(buffer) = duration;
  return PushResult{gst_app_src_push_buffer(GST_APP_SRC(appsrc), buffer)};  // takes `buffer`
}

/// The same, for a GstAppSrc pointer.
inline PushResult push_to_appsrc(GstAppSrc* appsrc, Bytes view, GstClockTime pts = GST_CLOCK_TIME_NONE,
                                 GstClockTime duration = GST_CLOCK_TIME_NONE) {
  return push_to_appsrc(GST_ELEMENT_CAST(appsrc), std::move(view), pts, duration);
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::gstreamer
