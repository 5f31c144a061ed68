// daq_pool/aravis.hpp: zero-copy acquisition from GenICam cameras (GigE
// Vision, USB3 Vision) through Aravis. The camera writes every frame straight
// into a BufferPool buffer; the frame is handed out as a Bytes view, and the
// buffer goes back to the camera only after its last view is dropped.
//
// Optional integration: needs Aravis 0.8 (pkg-config aravis-0.8; link the
// CMake target daq_pool::aravis). The rest of daq_pool never includes it.
//
// How a buffer circulates (one ArvBuffer per pool buffer, made once):
//
//   pool --try_acquire--> CameraSource --arv_stream_push_buffer--> camera
//     ^                                                              |
//     |  last view dropped                 arv_stream_timeout_pop    |
//     +------ Bytes views <---- freeze <---- CameraSource::next() <--+
//
// The ArvBuffer of pool buffer i is queued in the stream only while the
// source holds buffer i exclusively (a PooledBuffer kept in the ArvBuffer's
// user data). Buffer i can be re-queued only after the pool hands it out
// again, and the pool does that only after its last view is gone. A frame
// that is still being read can therefore never be overwritten, which is the
// bug of aravis issue #367.
//
// Threads:
//   - the caller's acquisition thread: every CameraSource member except
//     stats(), loss() and lost() (which any thread may call);
//   - Aravis's stream thread (GigE Vision receive thread, or the Fake
//     interface's fill thread): writes frames into queued pool buffers and
//     runs the optional on_stream_thread_start hook;
//   - Aravis's heartbeat thread (GigE Vision): emits "control-lost";
//   - any consumer thread: drops views, which returns buffers to the pool
//     and never calls into Aravis.
//
// Over 600 lines, one concept: CameraSource, a camera lending its stream
// buffers through a pool; most of the length is the teardown and error
// paths Aravis makes necessary, each commented where it happens.
#pragma once

#include <arv.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cassert>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "daq_pool/buffer_pool.hpp"
#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/abi.hpp"
#include "daq_pool/errors.hpp"
#include "daq_pool/pooled_buffer.hpp"

#if defined(__SANITIZE_THREAD__)
#define DAQ_POOL_ARAVIS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DAQ_POOL_ARAVIS_TSAN 1
#endif
#endif
#if defined(DAQ_POOL_ARAVIS_TSAN)
// ThreadSanitizer's runtime (g++'s and clang's) exports these.
extern "C" void __tsan_ignore_thread_begin();  // NOLINT(bugprone-reserved-identifier)
extern "C" void __tsan_ignore_thread_end();    // NOLINT(bugprone-reserved-identifier)
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::aravis {

/// An Aravis call failed (its GError message is part of what()).
class aravis_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Thrown by CameraSource::next() and start() once the camera is gone:
/// Aravis reported it (GigE Vision: the "control-lost" signal, raised when
/// its heartbeat gets no answer for 5 s), or it sent nothing for
/// CameraSourceOptions::silence_limit. Frames already received were
/// delivered first. what() says which.
class camera_lost : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Releases a GObject reference (g_object_unref); for std::unique_ptr.
struct GObjectUnref {
  /// g_object_unref(object), if not null. Thread-safe as GObject's refcount.
  void operator()(gpointer object) const noexcept {
    if (object != nullptr) g_object_unref(object);
  }
};

/// An owned reference to a GObject (ArvCamera, ArvDevice, ArvStream, ...).
template <class T>
using GObjectPtr = std::unique_ptr<T, GObjectUnref>;

namespace detail {

/// Throws aravis_error("daq_pool::aravis: <what>: <message>") if `error` is
/// set, freeing it first.
inline void throw_if_error(GError*& error, const std::string& what) {
  if (error == nullptr) return;
  std::string message = "daq_pool::aravis: " + what + ": " + (error->message != nullptr ? error->message : "?");
  g_clear_error(&error);
  throw aravis_error(message);
}

}  // namespace detail

/// Opens a camera by its Aravis device id (as `arv-tool` lists it, an IP
/// address for GigE Vision, or "Fake_1" once arv_enable_interface("Fake")
/// was called); an empty id opens the first camera found. Throws
/// aravis_error naming the id if it can't be opened. Thread-safe (Aravis's
/// device list is locked); allocates.
inline GObjectPtr<ArvCamera> open_camera(const std::string& device_id) {
  GError* error = nullptr;
  GObjectPtr<ArvCamera> camera(arv_camera_new(device_id.empty() ? nullptr : device_id.c_str(), &error));
  detail::throw_if_error(error, "cannot open camera '" + device_id + "'");
  if (!camera) throw aravis_error("daq_pool::aravis: cannot open camera '" + device_id + "'");
  return camera;
}

/// Bytes per frame the camera announces now (its GenICam PayloadSize): what
/// a BufferPool's buffer_capacity must hold. Throws aravis_error. Not
/// thread-safe against other calls on the same camera; allocates nothing of
/// ours.
inline std::size_t payload_bytes(ArvCamera* camera) {
  if (camera == nullptr) throw std::invalid_argument("daq_pool::aravis::payload_bytes: camera is null");
  GError* error = nullptr;
  const guint payload = arv_camera_get_payload(camera, &error);
  detail::throw_if_error(error, "arv_camera_get_payload");
  return payload;
}

/// A short name for a buffer status ("success", "missing packets", ...).
/// Never allocates.
inline const char* to_string(ArvBufferStatus status) noexcept {
  switch (status) {
    case ARV_BUFFER_STATUS_UNKNOWN:
      return "unknown";
    case ARV_BUFFER_STATUS_SUCCESS:
      return "success";
    case ARV_BUFFER_STATUS_CLEARED:
      return "cleared";
    case ARV_BUFFER_STATUS_TIMEOUT:
      return "timeout";
    case ARV_BUFFER_STATUS_MISSING_PACKETS:
      return "missing packets";
    case ARV_BUFFER_STATUS_WRONG_PACKET_ID:
      return "wrong packet id";
    case ARV_BUFFER_STATUS_SIZE_MISMATCH:
      return "size mismatch";
    case ARV_BUFFER_STATUS_FILLING:
      return "filling";
    case ARV_BUFFER_STATUS_ABORTED:
      return "aborted";
  }
  return "?";
}

/// Number of ArvBufferStatus values (UNKNOWN = -1 through ABORTED = 7).
inline constexpr std::size_t buffer_status_count = 9;

/// Index of `status` in CameraSourceStats::failed_by_status (status + 1);
/// out-of-range values count as ARV_BUFFER_STATUS_UNKNOWN. Never allocates.
constexpr std::size_t status_index(ArvBufferStatus status) noexcept {
  const int i = static_cast<int>(status) + 1;
  return i >= 0 && i < static_cast<int>(buffer_status_count) ? static_cast<std::size_t>(i) : 0;
}

/// One complete frame, as next() delivers it.
struct Frame {
  /// The payload exactly as the camera wrote it, in a pool buffer (no copy).
  /// The buffer goes back to the camera after this view and all its copies
  /// are dropped.
  Bytes data;
  /// The camera's frame counter. GigE Vision 1.x and the fake camera count
  /// with 16 bits: 1..65535, then 1 again (0 is never used).
  std::uint64_t frame_id = 0;
  /// When the camera took the frame, on the camera's clock, in ns.
  std::uint64_t timestamp_ns = 0;
  /// When the host received it (wall clock, g_get_real_time), in ns.
  std::uint64_t system_timestamp_ns = 0;
  /// Image width in pixels (0 for a payload that is no image).
  std::uint32_t width = 0;
  /// Image height in pixels (0 for a payload that is no image).
  std::uint32_t height = 0;
  /// The image's pixel format (0 for a payload that is no image).
  ArvPixelFormat pixel_format = 0;
  /// Where the image starts inside `data` (not at 0 with chunk data).
  std::size_t image_offset = 0;
  /// The image's bytes inside `data`, from image_offset.
  std::size_t image_size = 0;

  /// The image alone: a slice of `data` sharing its buffer. Never
  /// allocates; thread-safe like any view.
  Bytes image() const { return data.slice(image_offset, image_size); }
};

/// What CameraSource::stats() reports. Counters taken while the source runs
/// may be stale and not add up exactly; once the acquisition thread is idle
/// they are exact.
struct CameraSourceStats {
  std::uint64_t delivered = 0;  ///< complete frames returned by next()
  std::uint64_t failed = 0;     ///< buffers that came back with any status but success (re-queued, never delivered)
  /// `failed` by status, indexed by status_index(ArvBufferStatus).
  std::array<std::uint64_t, buffer_status_count> failed_by_status{};
  std::uint64_t requeued = 0;  ///< buffers pushed back to the camera after their last view was dropped
  /// next() calls that found no buffer queued in the camera (consumers held
  /// them all) and had to wait for a view to be dropped.
  std::uint64_t starved = 0;
  std::size_t queued = 0;   ///< buffers queued in the camera now (pushed, not yet popped)
  std::size_t buffers = 0;  ///< pool buffers the source circulates

  // Aravis's own stream statistics (arv_stream_get_statistics): plain
  // integers its stream thread updates, so a frame stale at worst.
  /// Frames the camera could not deliver because no buffer was queued:
  /// lost to underruns (the consumers held every buffer).
  std::uint64_t underruns = 0;
  std::uint64_t stream_completed = 0;  ///< buffers the stream completed
  std::uint64_t stream_failures = 0;   ///< buffers the stream failed (aborted ones not included)

  /// failed_by_status[status_index(status)]. Never allocates.
  std::uint64_t failed_with(ArvBufferStatus status) const noexcept { return failed_by_status[status_index(status)]; }
};

/// Why a CameraSource considers its camera gone (CameraSource::loss()).
enum class CameraLoss {
  none,          ///< not lost
  silent,        ///< nothing came back for CameraSourceOptions::silence_limit
  control_lost,  ///< Aravis reported "control-lost" (the camera stopped answering)
};

/// Options of a CameraSource.
struct CameraSourceOptions {
  /// GigE Vision only: a fixed socket receive buffer of this many bytes
  /// (ArvGvStream "socket-buffer" FIXED, "socket-buffer-size"); 0 leaves
  /// Aravis's default (sized to the payload). A few MiB avoids packet loss
  /// at high rates without root.
  std::size_t gv_socket_buffer_bytes = 0;
  /// Declares the camera lost (next() throws camera_lost) when, with the
  /// acquisition started and buffers queued, no buffer of any status came
  /// back for this long: a free-running camera that went silent (unplugged,
  /// crashed, link down). 0: off, only Aravis's own detection (GigE Vision:
  /// about 6 s after the camera stops answering). Leave it off, or above the
  /// longest gap between triggers, for a triggered camera.
  std::chrono::milliseconds silence_limit{0};
  /// Called once on Aravis's stream thread when it starts, with
  /// `hook_context` (e.g. to raise its priority, or to tag its allocations).
  /// It runs on that foreign thread, possibly after the CameraSource is gone
  /// if someone else keeps the stream alive: it may touch only what
  /// `hook_context` owns. nullptr: no hook (no stream callback at all).
  void (*on_stream_thread_start)(void* context) = nullptr;
  /// What on_stream_thread_start is called with.
  void* hook_context = nullptr;
};

namespace detail {

/// The link between one pool buffer and its ArvBuffer, owned by the
/// ArvBuffer: it is the ArvBuffer's user data, deleted by its destroy notify
/// when Aravis finalizes it. While the ArvBuffer is queued in the camera,
/// `held` owns the pool buffer, so whatever still refers to the ArvBuffer
/// (the stream, even after the CameraSource is gone) keeps the memory it
/// writes into, and no one else can acquire that buffer.
struct BufferBinding {
  std::optional<PooledBuffer> held;

  /// GDestroyNotify of the ArvBuffer. Runs on whichever thread drops the
  /// ArvBuffer's last reference: the CameraSource's destructor, or the
  /// thread that finalizes a stream someone else kept alive. Touches only
  /// this binding: the PooledBuffer it may hold returns to its pool
  /// (thread-safe; it keeps the pool's storage alive by itself).
  static void destroy(gpointer binding) noexcept { delete static_cast<BufferBinding*>(binding); }
};

/// Set by Aravis's heartbeat thread when the camera stops answering; read by
/// the acquisition thread. Shared between the source and the signal
/// handler's closure, which may outlive the source.
struct LostFlag {
  std::atomic<bool> control_lost{false};
};

/// The signal handler's data: its own reference to the flag.
using LostFlagRef = std::shared_ptr<LostFlag>;

/// GLib orders a handler's connection before its emissions, and an emission
/// before the handler's destroy notify, with its own locks and atomics:
/// futexes and code ThreadSanitizer does not see. Every step of that
/// handler's life (connect, each call, the notify, disconnect) also passes
/// through this one read-modify-write, which makes the same order visible to
/// it. Costs one atomic per step; the steps are rare (not per frame).
inline std::atomic<unsigned> glib_handoff{0};
inline void order_with_glib() noexcept { glib_handoff.fetch_add(1, std::memory_order_acq_rel); }

/// "control-lost" handler. Runs on Aravis's heartbeat thread (GigE Vision);
/// touches only the flag its closure owns.
inline void on_control_lost(ArvDevice* /*device*/, gpointer flag) noexcept {
  order_with_glib();
  // release: pairs with the acquire in CameraSource::loss(); nothing else is
  // published through the flag.
  (*static_cast<LostFlagRef*>(flag))->control_lost.store(true, std::memory_order_release);
  order_with_glib();
}

/// GClosureNotify of that handler: runs when the handler is disconnected (on
/// the disconnecting thread, or after an emission in progress ends, on the
/// heartbeat thread) or when the device is finalized. Drops the closure's
/// reference to the flag, and nothing else.
inline void release_lost_flag(gpointer flag, GClosure* /*closure*/) noexcept {
  order_with_glib();
  delete static_cast<LostFlagRef*>(flag);
}

/// The stream callback's data: the on_stream_thread_start hook, owned by the
/// stream (freed by its destroy notify), since the stream may outlive the
/// source. Installed when there is a hook, and always in ThreadSanitizer
/// builds.
struct StreamHook {
  void (*start)(void*) = nullptr;
  void* context = nullptr;

  /// ArvStreamCallback. Runs on Aravis's stream thread: INIT once when it
  /// starts (calls the hook), EXIT once when it ends, and twice per buffer
  /// (ignored). Touches only this hook and what its context owns.
  static void callback(void* hook, ArvStreamCallbackType type, ArvBuffer* /*buffer*/) noexcept {
    const auto* h = static_cast<const StreamHook*>(hook);
    if (type == ARV_STREAM_CALLBACK_TYPE_INIT) {
      if (h->start != nullptr) h->start(h->context);
#if defined(DAQ_POOL_ARAVIS_TSAN)
      // ThreadSanitizer can't see how Aravis hands a filled buffer to the
      // acquisition thread (GAsyncQueue: GLib's futex-based GMutex, in
      // uninstrumented code), so it would report every read of every frame
      // as a race with the writes (memcpy per packet) of this thread. Its
      // accesses become as invisible to TSan as the rest of Aravis's code
      // (the Fake interface's fill loop, for one) already is. Our own
      // hand-offs (views to consumers, the pool) stay checked.
      __tsan_ignore_thread_begin();
#endif
    } else if (type == ARV_STREAM_CALLBACK_TYPE_EXIT) {
#if defined(DAQ_POOL_ARAVIS_TSAN)
      __tsan_ignore_thread_end();
#endif
    }
  }
  /// GDestroyNotify of the stream's callback data: runs where the stream is
  /// finalized. Frees the hook.
  static void destroy(gpointer hook) noexcept { delete static_cast<StreamHook*>(hook); }

  /// Whether a stream callback is needed at all.
  static bool wanted([[maybe_unused]] void (*start)(void*)) noexcept {
#if defined(DAQ_POOL_ARAVIS_TSAN)
    return true;
#else
    return start != nullptr;
#endif
  }
};

/// The source's view of one pool buffer, fixed for its lifetime. `buffer`
/// stays valid while the source lives: the source keeps one reference to
/// every ArvBuffer of its own, besides the one that circulates between it
/// and the stream.
struct BufferEntry {
  const std::byte* data = nullptr;  ///< the pool buffer's memory (sort key)
  ArvBuffer* buffer = nullptr;
  BufferBinding* binding = nullptr;  ///< owned by `buffer`
  /// True while the source holds the circulating reference (popped, its
  /// pool buffer frozen into views or back in the pool); false while it is
  /// queued in the stream.
  bool popped = false;
};

/// Relaxed counters: written by the acquisition thread, read by stats() on
/// any thread (statistics; nothing is published through them).
struct SourceCounters {
  std::atomic<std::uint64_t> delivered{0}, failed{0}, requeued{0}, starved{0};
  std::array<std::atomic<std::uint64_t>, buffer_status_count> failed_by_status{};
  std::atomic<std::size_t> queued{0};

  static void bump(std::atomic<std::uint64_t>& c) noexcept {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
};

}  // namespace detail

/// Zero-copy frames from one Aravis camera, through a BufferPool.
///
/// The source makes one ArvBuffer over each buffer of the pool (once, at
/// construction), queues them all in the camera's stream, and hands out
/// every complete frame as a Bytes view of the pool buffer the camera wrote
/// it into: no copy anywhere on daq-pool's side. A buffer returns to the
/// camera only after its last view is dropped, so the camera underruns
/// (drops frames, counted) rather than overwrite a frame still in use.
///
/// Construction, start(), stop() and next() belong to one acquisition
/// thread at a time (not thread-safe); stats() is thread-safe; views may go
/// to, and die on, any thread. Only construction allocates: next() and
/// requeue() never do on daq-pool's side (Aravis's own allocations, if
/// any, are its stream's; the tests measure them). Not copyable or movable.
///
/// Destroying the source is safe while views are out: they stay valid, and
/// their buffers return to the pool (not to the stream, which is gone).
class CameraSource {
 public:
  /// Binds the camera (a reference of the source's own is taken) to `pool`:
  /// the camera's current payload must fit `pool.buffer_capacity()`, and
  /// every buffer of the pool must be free; afterwards the pool belongs to
  /// the source (other acquirers only take buffers away from the camera).
  /// Configure the camera first (pixel format, region, GigE packet size:
  /// the stream is created here). Creates the stream, one ArvBuffer per pool
  /// buffer, queues them all; acquisition starts with start().
  ///
  /// Throws std::invalid_argument if camera is null, the payload is 0 or
  /// larger than the pool's buffers (naming both sizes), a pool buffer is
  /// out, or options.silence_limit is negative; aravis_error
  /// if Aravis can't report the payload or create the stream. Allocates.
  CameraSource(ArvCamera* camera, BufferPool pool, CameraSourceOptions options = {})
      : pool_(std::move(pool)), options_(options), lost_(std::make_shared<detail::LostFlag>()) {
    try {
      construct(camera);
    } catch (...) {
      teardown();
      throw;
    }
  }

  /// Opens the camera `device_id` (see open_camera) as it is configured now,
  /// and makes a BufferPool of `pool_buffers` buffers sized to its payload.
  /// Throws what open_camera, BufferPool and the other constructor throw.
  CameraSource(const std::string& device_id, std::size_t pool_buffers, CameraSourceOptions options = {})
      : CameraSource(open_camera(device_id), pool_buffers, options) {}

  // Neither copyable nor movable: it is the one owner of a running stream
  // and of the table that maps each ArvBuffer to its pool buffer, which a
  // moved-from shell would have to tear down safely too. Keep it in a
  // std::optional or a std::unique_ptr to hand it around.
  CameraSource(const CameraSource&) = delete;
  CameraSource& operator=(const CameraSource&) = delete;
  CameraSource(CameraSource&&) = delete;
  CameraSource& operator=(CameraSource&&) = delete;

  /// Stops the acquisition (unless the camera is lost), releases the stream
  /// and every ArvBuffer. Views still out stay valid; their buffers go back
  /// to the pool when dropped. With a GigE camera that no longer answers,
  /// Aravis's own commands at teardown time out: Aravis 0.8 retries each
  /// unanswered GVCP command 5 times with a 500 ms timeout (not settable),
  /// so releasing the stream here takes seconds, and the camera's last
  /// unref (leaving control) after it more: about 9 s in all for a killed
  /// camera. Tell the user before.
  ~CameraSource() { teardown(); }

  /// Starts the acquisition (arv_camera_start_acquisition). Throws
  /// camera_lost, or aravis_error with Aravis's message. Idempotent.
  void start() {
    throw_if_lost();
    if (started_) return;
    GError* error = nullptr;
    arv_camera_start_acquisition(camera_, &error);
    detail::throw_if_error(error, "arv_camera_start_acquisition");
    started_ = true;
    last_buffer_ = std::chrono::steady_clock::now();
  }

  /// Stops the acquisition (arv_camera_stop_acquisition); frames already
  /// received can still be taken with next(). Does nothing if not started or
  /// the camera is lost. Throws aravis_error with Aravis's message.
  void stop() {
    if (!started_) return;
    started_ = false;
    if (lost()) return;
    GError* error = nullptr;
    arv_camera_stop_acquisition(camera_, &error);
    detail::throw_if_error(error, "arv_camera_stop_acquisition");
  }

  /// True between start() and stop().
  bool is_started() const noexcept { return started_; }

  /// The next complete frame, waiting at most `timeout` (0: only what is
  /// there); nothing if none arrived in time. First re-queues every pool
  /// buffer whose last view was dropped since. Then it sleeps on the stream
  /// until a buffer comes back from the camera (no polling: buffers dropped
  /// meanwhile are re-queued as soon as it wakes, before the camera needs
  /// them unless it is down to its last one); with no buffer left in the
  /// camera it sleeps on the pool instead, and wakes as soon as a view
  /// somewhere drops its buffer. Buffers with any status but success go
  /// straight back to the camera, counted in stats().
  ///
  /// Throws camera_lost once the camera is gone (after the frames received
  /// before; from then on every call does), and pool_closed if the pool was
  /// closed while every buffer was out, since none could go back to the
  /// camera. Never returns later than `timeout` plus scheduling delays. Not
  /// thread-safe; never allocates.
  template <class Rep, class Period>
  std::optional<Frame> next(std::chrono::duration<Rep, Period> timeout) {
    const auto now = std::chrono::steady_clock::now();
    const auto wait = std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
    return next_until(wait > std::chrono::steady_clock::duration::zero() ? now + wait : now);
  }

  /// next(), waiting until `deadline` at the latest.
  std::optional<Frame> next_until(std::chrono::steady_clock::time_point deadline) {
    bool starved = false;
    for (;;) {
      requeue();
      const bool gone = lost();
      if (counters_.queued.load(std::memory_order_relaxed) == 0) {
        if (gone) throw_lost();
        // Every buffer is held by views: the camera is starving. Wait on the
        // pool, which wakes as soon as a view somewhere drops the last
        // reference to a buffer.
        if (!starved) detail::SourceCounters::bump(counters_.starved);
        starved = true;
        if (pool_.is_closed()) throw pool_closed();
        std::optional<PooledBuffer> back = pool_.try_acquire_until(deadline);
        if (!back) {
          if (pool_.is_closed()) throw pool_closed();
          if (lost()) throw_lost();
          return std::nullopt;
        }
        queue(std::move(*back));
        detail::SourceCounters::bump(counters_.requeued);
        continue;
      }
      const auto now = std::chrono::steady_clock::now();
      auto until = deadline;  // ... or the moment the camera would have been silent for too long
      if (started_ && options_.silence_limit.count() > 0)
        until = std::min(until, last_buffer_ + options_.silence_limit);
      guint64 wait_us = 0;
      if (!gone && now < until)
        wait_us = static_cast<guint64>(std::chrono::ceil<std::chrono::microseconds>(until - now).count());
      ArvBuffer* popped =
          wait_us == 0 ? arv_stream_try_pop_buffer(stream_) : arv_stream_timeout_pop_buffer(stream_, wait_us);
      if (popped == nullptr) {
        if (gone) throw_lost();
        const auto after = std::chrono::steady_clock::now();
        if (started_ && options_.silence_limit.count() > 0 && after - last_buffer_ >= options_.silence_limit) {
          silent_.store(true, std::memory_order_relaxed);
          throw_lost();
        }
        if (after >= deadline) return std::nullopt;
        continue;
      }
      last_buffer_ = std::chrono::steady_clock::now();
      if (std::optional<Frame> frame = take(popped)) return frame;
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    }
  }

  /// Pushes back to the camera every pool buffer that is free again (its
  /// last view dropped); returns how many. next() calls it; call it yourself
  /// to feed the camera between frames. Not thread-safe; never allocates.
  std::size_t requeue() noexcept {
    std::size_t n = 0;
    // available() first: a try_acquire that finds nothing would count as a
    // miss in the pool's statistics on every call.
    while (pool_.available() > 0) {
      std::optional<PooledBuffer> back = pool_.try_acquire();
      if (!back) break;
      queue(std::move(*back));
      ++n;
    }
    if (n != 0)
      counters_.requeued.store(counters_.requeued.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    return n;
  }

  /// The counters, and Aravis's stream statistics. Thread-safe (see
  /// CameraSourceStats on staleness); never allocates.
  CameraSourceStats stats() const noexcept {
    CameraSourceStats s;
    s.delivered = counters_.delivered.load(std::memory_order_relaxed);
    s.failed = counters_.failed.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < buffer_status_count; ++i)
      s.failed_by_status[i] = counters_.failed_by_status[i].load(std::memory_order_relaxed);
    s.requeued = counters_.requeued.load(std::memory_order_relaxed);
    s.starved = counters_.starved.load(std::memory_order_relaxed);
    s.queued = counters_.queued.load(std::memory_order_relaxed);
    s.buffers = entries_.size();
    guint64 completed = 0, failures = 0, underruns = 0;
    arv_stream_get_statistics(stream_, &completed, &failures, &underruns);
    s.stream_completed = completed;
    s.stream_failures = failures;
    s.underruns = underruns;
    return s;
  }

  /// Whether, and why, the camera is gone (sticky). Thread-safe; never
  /// allocates.
  CameraLoss loss() const noexcept {
    // acquire: pairs with the release in detail::on_control_lost. relaxed:
    // silent_ is this object's (set by the acquisition thread).
    if (lost_->control_lost.load(std::memory_order_acquire)) return CameraLoss::control_lost;
    if (silent_.load(std::memory_order_relaxed)) return CameraLoss::silent;
    return CameraLoss::none;
  }
  /// loss() != CameraLoss::none. Thread-safe; never allocates.
  bool lost() const noexcept { return loss() != CameraLoss::none; }

  /// The camera (borrowed: valid while the source lives).
  ArvCamera* camera() const noexcept { return camera_; }
  /// The stream (borrowed). Set properties on it if you like; don't push,
  /// pop or stop it: the source owns its buffers.
  ArvStream* stream() const noexcept { return stream_; }
  /// The pool the frames live in.
  const BufferPool& pool() const noexcept { return pool_; }
  /// The camera's payload when the source was made, in bytes.
  std::size_t payload() const noexcept { return payload_; }

 private:
  CameraSource(GObjectPtr<ArvCamera> camera, std::size_t pool_buffers, CameraSourceOptions options)
      : CameraSource(camera.get(), BufferPool(pool_buffers, payload_bytes(camera.get())), options) {}

  void construct(ArvCamera* camera) {
    if (camera == nullptr) throw std::invalid_argument("daq_pool::aravis::CameraSource: camera is null");
    if (options_.silence_limit.count() < 0)
      throw std::invalid_argument("daq_pool::aravis::CameraSource: options.silence_limit (" +
                                  std::to_string(options_.silence_limit.count()) + " ms) must be >= 0 (0: off)");
    camera_ = static_cast<ArvCamera*>(g_object_ref(camera));
    payload_ = payload_bytes(camera_);
    const std::size_t capacity = pool_.buffer_capacity();
    if (payload_ == 0)
      throw std::invalid_argument("daq_pool::aravis::CameraSource: the camera reports a payload of 0 bytes");
    if (payload_ > capacity)
      throw std::invalid_argument("daq_pool::aravis::CameraSource: the camera's payload of " +
                                  std::to_string(payload_) + " bytes does not fit the pool's buffer_capacity of " +
                                  std::to_string(capacity) + " bytes (make the pool with buffer_capacity >= " +
                                  std::to_string(payload_) + ", e.g. daq_pool::aravis::payload_bytes(camera))");

    // Every buffer, exclusively: each gets its ArvBuffer now, once.
    std::vector<PooledBuffer> buffers;
    buffers.reserve(pool_.size());
    for (std::size_t i = 0; i < pool_.size(); ++i) {
      std::optional<PooledBuffer> b = pool_.try_acquire();
      if (!b)
        throw std::invalid_argument("daq_pool::aravis::CameraSource: every buffer of the pool must be free (only " +
                                    std::to_string(i) + " of " + std::to_string(pool_.size()) +
                                    " were): the source circulates all of them");
      buffers.push_back(std::move(*b));
    }

    GError* error = nullptr;
    if (detail::StreamHook::wanted(options_.on_stream_thread_start)) {
      // The stream owns the hook (frees it when finalized, also when
      // creating it fails), so it is not ours to delete after this call.
      auto* hook = new detail::StreamHook{options_.on_stream_thread_start, options_.hook_context};
      stream_ = arv_camera_create_stream_full(camera_, &detail::StreamHook::callback, hook,
                                              &detail::StreamHook::destroy, &error);
    } else {
      stream_ = arv_camera_create_stream(camera_, nullptr, nullptr, &error);
    }
    detail::throw_if_error(error, "arv_camera_create_stream");
    if (stream_ == nullptr) throw aravis_error("daq_pool::aravis: arv_camera_create_stream returned no stream");
    if (options_.gv_socket_buffer_bytes != 0 && ARV_IS_GV_STREAM(stream_)) {
      g_object_set(stream_, "socket-buffer", ARV_GV_STREAM_SOCKET_BUFFER_FIXED, "socket-buffer-size",
                   static_cast<gint>(std::min<std::size_t>(options_.gv_socket_buffer_bytes, G_MAXINT)), nullptr);
    }

    // Sorted by address, for the lookup when a buffer comes back from the pool.
    std::sort(buffers.begin(), buffers.end(),
              [](const PooledBuffer& a, const PooledBuffer& b) { return a.data() < b.data(); });
    entries_.reserve(buffers.size());
    for (PooledBuffer& b : buffers) {
      auto binding = std::make_unique<detail::BufferBinding>();
      std::byte* memory = b.data();
      ArvBuffer* arv = arv_buffer_new_full(capacity, memory, binding.get(), &detail::BufferBinding::destroy);
      detail::BufferEntry entry;
      entry.data = memory;
      entry.buffer = arv;
      entry.binding = binding.release();  // now the ArvBuffer's
      entry.popped = true;                // its one reference is the circulating one, ours
      g_object_ref(arv);                  // the source's own, held until teardown
      entries_.push_back(entry);
    }
    for (PooledBuffer& b : buffers) queue(std::move(b));

    device_ = arv_camera_get_device(camera_);
    auto* flag_ref = new detail::LostFlagRef(lost_);
    detail::order_with_glib();
    control_lost_handler_ = g_signal_connect_data(device_, "control-lost", G_CALLBACK(&detail::on_control_lost),
                                                  flag_ref, &detail::release_lost_flag, GConnectFlags{});
  }

  /// Queues pool buffer `b` in the camera: the binding takes it (so the
  /// camera's writes land in memory nobody else can have), and the
  /// circulating reference of its ArvBuffer goes to the stream.
  void queue(PooledBuffer&& b) noexcept {
    detail::BufferEntry* e = find(b.data());
    // Every buffer of the pool has an entry, and a buffer the pool hands out
    // is never queued (its binding would hold it).
    assert(e != nullptr && e->popped && !e->binding->held);
    e->binding->held.emplace(std::move(b));
    e->popped = false;
    arv_stream_push_buffer(stream_, e->buffer);
    const std::size_t queued = counters_.queued.load(std::memory_order_relaxed);
    // A starved camera is silent for a reason: silence counts from its first buffer.
    if (queued == 0) last_buffer_ = std::chrono::steady_clock::now();
    counters_.queued.store(queued + 1, std::memory_order_relaxed);
  }

  /// A buffer popped from the stream: a Frame if complete, else back it goes.
  std::optional<Frame> take(ArvBuffer* popped) noexcept {
    std::size_t size = 0;
    const auto* data = static_cast<const std::byte*>(arv_buffer_get_data(popped, &size));
    detail::BufferEntry* e = find(data);
    if (e == nullptr || e->buffer != popped) {
      // Not one of ours (someone pushed it into our stream): not ours to keep.
      g_object_unref(popped);
      return std::nullopt;
    }
    counters_.queued.store(counters_.queued.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
    e->popped = true;
    const ArvBufferStatus status = arv_buffer_get_status(popped);
    if (status != ARV_BUFFER_STATUS_SUCCESS || size > pool_.buffer_capacity()) {
      const std::size_t i =
          status_index(status == ARV_BUFFER_STATUS_SUCCESS ? ARV_BUFFER_STATUS_SIZE_MISMATCH : status);
      detail::SourceCounters::bump(counters_.failed_by_status[i]);
      detail::SourceCounters::bump(counters_.failed);
      // Straight back: the binding still holds the pool buffer.
      e->popped = false;
      arv_stream_push_buffer(stream_, popped);
      counters_.queued.store(counters_.queued.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
      return std::nullopt;
    }
    Frame frame;
    frame.frame_id = arv_buffer_get_frame_id(popped);
    frame.timestamp_ns = arv_buffer_get_timestamp(popped);
    frame.system_timestamp_ns = arv_buffer_get_system_timestamp(popped);
    frame.image_size = size;
    if (is_image(popped)) {
      frame.width = static_cast<std::uint32_t>(std::max(0, arv_buffer_get_image_width(popped)));
      frame.height = static_cast<std::uint32_t>(std::max(0, arv_buffer_get_image_height(popped)));
      frame.pixel_format = arv_buffer_get_image_pixel_format(popped);
      std::size_t image_size = 0;
      const auto* image = static_cast<const std::byte*>(arv_buffer_get_image_data(popped, &image_size));
      if (image >= data && image <= data + size && image_size <= size - static_cast<std::size_t>(image - data)) {
        frame.image_offset = static_cast<std::size_t>(image - data);
        frame.image_size = image_size;
      }
    }
    PooledBuffer buffer = std::move(*e->binding->held);
    e->binding->held.reset();
    buffer.set_size(size);  // size <= capacity: checked above
    frame.data = std::move(buffer).freeze();
    detail::SourceCounters::bump(counters_.delivered);
    return frame;
  }

  /// True if part 0 of `b` is an image (the image getters g_critical otherwise).
  static bool is_image(ArvBuffer* b) noexcept {
    const ArvBufferPayloadType type = arv_buffer_get_payload_type(b);
    if (type != ARV_BUFFER_PAYLOAD_TYPE_IMAGE && type != ARV_BUFFER_PAYLOAD_TYPE_EXTENDED_CHUNK_DATA &&
        type != ARV_BUFFER_PAYLOAD_TYPE_MULTIPART)
      return false;
    if (arv_buffer_get_n_parts(b) == 0) return false;
    switch (arv_buffer_get_part_data_type(b, 0)) {
      case ARV_BUFFER_PART_DATA_TYPE_2D_IMAGE:
      case ARV_BUFFER_PART_DATA_TYPE_2D_PLANE_BIPLANAR:
      case ARV_BUFFER_PART_DATA_TYPE_2D_PLANE_TRIPLANAR:
      case ARV_BUFFER_PART_DATA_TYPE_2D_PLANE_QUADPLANAR:
      case ARV_BUFFER_PART_DATA_TYPE_3D_IMAGE:
      case ARV_BUFFER_PART_DATA_TYPE_3D_PLANE_BIPLANAR:
      case ARV_BUFFER_PART_DATA_TYPE_3D_PLANE_TRIPLANAR:
      case ARV_BUFFER_PART_DATA_TYPE_3D_PLANE_QUADPLANAR:
      case ARV_BUFFER_PART_DATA_TYPE_CONFIDENCE_MAP:
        return true;
      default:
        return false;
    }
  }

  /// The entry of the pool buffer at `data`, or nullptr. O(log buffers).
  detail::BufferEntry* find(const std::byte* data) noexcept {
    auto it = std::lower_bound(entries_.begin(), entries_.end(), data,
                               [](const detail::BufferEntry& e, const std::byte* p) { return e.data < p; });
    return it != entries_.end() && it->data == data ? &*it : nullptr;
  }

  void throw_if_lost() const {
    if (lost()) throw_lost();
  }
  [[noreturn]] void throw_lost() const {
    if (loss() == CameraLoss::silent)
      throw camera_lost("daq_pool::aravis::CameraSource: the camera is lost: no buffer came back for " +
                        std::to_string(options_.silence_limit.count()) + " ms (options.silence_limit)");
    throw camera_lost(
        "daq_pool::aravis::CameraSource: the camera is lost (Aravis reported control-lost: it stopped answering)");
  }

  /// Releases everything, in an order that never lets Aravis write into
  /// memory nobody holds; works on a partly constructed source too.
  void teardown() noexcept {
    if (camera_ != nullptr && started_ && !lost()) {
      GError* error = nullptr;
      arv_camera_stop_acquisition(camera_, &error);
      g_clear_error(&error);  // nothing to do about it here; the stream stops below anyway
    }
    started_ = false;
    if (device_ != nullptr && control_lost_handler_ != 0) {
      g_signal_handler_disconnect(device_, control_lost_handler_);
      detail::order_with_glib();
    }
    control_lost_handler_ = 0;
    // The circulating references the source holds (frozen buffers): the
    // source's own reference keeps those ArvBuffers alive a little longer.
    for (detail::BufferEntry& e : entries_) {
      if (e.popped) g_object_unref(e.buffer);
      e.popped = false;
    }
    // Normally the last reference: Aravis stops the stream thread (GigE:
    // frames in progress come back aborted) and drops the queued buffers.
    if (stream_ != nullptr) g_object_unref(stream_);
    stream_ = nullptr;
    // The source's own references: an ArvBuffer no one else holds is
    // finalized now, and its destroy notify returns its pool buffer (if its
    // binding holds one). One still held by a stream someone else kept alive
    // goes when that stream does, with the pool buffer it writes into.
    for (detail::BufferEntry& e : entries_) g_object_unref(e.buffer);
    entries_.clear();
    if (camera_ != nullptr) g_object_unref(camera_);
    camera_ = nullptr;
    device_ = nullptr;
  }

  BufferPool pool_;
  CameraSourceOptions options_;
  std::shared_ptr<detail::LostFlag> lost_;
  ArvCamera* camera_ = nullptr;
  ArvDevice* device_ = nullptr;  // the camera's; borrowed
  ArvStream* stream_ = nullptr;
  gulong control_lost_handler_ = 0;
  std::size_t payload_ = 0;
  bool started_ = false;
  std::chrono::steady_clock::time_point last_buffer_{};  // last pop, start(), or feeding a starved camera
  std::atomic<bool> silent_{false};                      // silence_limit passed (written by the acquisition thread)
  std::vector<detail::BufferEntry> entries_;             // sorted by data
  detail::SourceCounters counters_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::aravis
