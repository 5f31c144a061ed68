// The frame-pipeline demo: a simulated camera acquisition, end to end.
//
//   sensor thread --(20-slot no-overwrite SDK ring)--> acquisition thread
//     try_acquire_for(--timeout) a BufferPool buffer, copy_from_ptr, freeze,
//     release the SDK slot, fan the Bytes view out to:
//       writer   (every frame, to --out, optionally throttled)
//       preview  (every Nth frame: histogram and mean)
//       verifier (every frame: pattern, checksum, order)
//
// Run with --help for the flags. See the README section "The frame-pipeline
// demo" for sample output.
#include "alloc_hook.hpp"  // interposes malloc/operator new: include in this one TU only
#include "cli.hpp"
#include "consumers.hpp"
#include "frame_pattern.hpp"
#include "latency_histogram.hpp"
#include "shm_server.hpp"
#include "simulated_camera.hpp"
#include "zmq_publisher.hpp"  // --publish (only when built with ZeroMQ)
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
#include "aravis_source.hpp"
#endif
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
#include "encoder.hpp"  // --encode
#endif

#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/bytes.hpp>
#include <daq_pool/errors.hpp>
#include <daq_pool/pooled_buffer.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <optional>
#include <string>
#include <thread>

namespace frame_pipeline {
namespace {

using Clock = std::chrono::steady_clock;

/// Frames delivered before allocation counting starts: enough for every
/// thread to have run its loop once (first-use allocations, e.g. stdio's
/// buffer, belong to start-up, not to the steady state).
constexpr std::uint64_t warmup_frames = 10;

/// The default temporary output is rewound at this size, so a long run does
/// not fill /dev/shm (or the disk) with frames nobody reads.
constexpr std::uint64_t temp_file_rewind_bytes = std::uint64_t{256} << 20;

/// The message for errno value `err` (thread-safe, unlike strerror).
std::string error_text(int err) {
  char buf[256];
  return ::strerror_r(err, buf, sizeof buf);  // GNU strerror_r: returns the message
}

// ---------------------------------------------------------------- signals --

std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
std::atomic<int> g_signal{0};
std::atomic<int> g_signal_count{0};
char g_temp_path[4096] = {};  // the temporary --out file, for the second-signal emergency exit

/// First SIGINT/SIGTERM: ask for a clean stop. Second: remove the temporary
/// file and exit at once (the user insists). Async-signal-safe.
extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
  g_stop_requested.store(true);
  if (g_signal_count.fetch_add(1) >= 1) {
    if (g_temp_path[0] != '\0') ::unlink(g_temp_path);
    ::_exit(128 + sig);
  }
}

/// Routes SIGINT and SIGTERM to on_stop_signal.
void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// ------------------------------------------------------------ output file --

/// The writer's destination: --out, or a temporary file removed when this
/// object is destroyed. A file this program created is also removed by
/// discard() if setup fails, so bad input leaves nothing behind.
class OutputFile {
 public:
  OutputFile() = default;
  OutputFile(const OutputFile&) = delete;
  OutputFile& operator=(const OutputFile&) = delete;
  ~OutputFile() {
    if (fd_ >= 0) ::close(fd_);
    if (temporary_) remove_temp();
  }

  /// Opens `path` for writing (truncating it), or creates a temporary file
  /// if `path` is empty. On failure returns false with `error` set.
  bool open(const std::string& path, std::string& error) {
    if (path.empty()) {
      path_ = temp_dir() + "/daq-pool-frames-XXXXXX";
      if (path_.size() >= sizeof g_temp_path) {
        error = "TMPDIR is too long";
        return false;
      }
      fd_ = ::mkostemp(path_.data(), O_CLOEXEC);
      if (fd_ < 0) {
        error = "cannot create a temporary file " + path_ + ": " + error_text(errno);
        return false;
      }
      temporary_ = created_ = true;
      std::memcpy(g_temp_path, path_.c_str(), path_.size() + 1);
      return true;
    }
    path_ = path;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ >= 0) {
      created_ = true;
    } else if (errno == EEXIST) {
      fd_ = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    }
    if (fd_ < 0) {
      error = error_text(errno);
      return false;
    }
    return true;
  }

  /// Setup failed: close, and remove the file if this program created it.
  void discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (created_) {
      if (temporary_) {
        remove_temp();
      } else {
        ::unlink(path_.c_str());
      }
    }
  }

  /// Where the temporary file goes: $TMPDIR if set; else /dev/shm, so the
  /// default run measures the pipeline rather than this machine's disk
  /// (800 MB/s of frames outruns most disks; see --writer-mbps to play one);
  /// else /tmp.
  static std::string temp_dir() {
    // getenv is not thread-safe against setenv; nothing calls setenv, and
    // this runs before the pipeline's threads start.
    const char* dir = std::getenv("TMPDIR");  // NOLINT(concurrency-mt-unsafe)
    if (dir != nullptr && *dir != '\0') return dir;
    if (::access("/dev/shm", W_OK | X_OK) == 0) return "/dev/shm";
    return "/tmp";
  }

  int fd() const noexcept { return fd_; }                     ///< the open descriptor
  const std::string& path() const noexcept { return path_; }  ///< where frames go
  bool temporary() const noexcept { return temporary_; }      ///< removed at exit

 private:
  void remove_temp() noexcept {
    g_temp_path[0] = '\0';
    ::unlink(path_.c_str());
    temporary_ = false;
  }

  int fd_ = -1;
  std::string path_;
  bool temporary_ = false;
  bool created_ = false;
};

// ------------------------------------------------------------ acquisition --

/// Counters of the acquisition thread. The atomics feed the live progress
/// line (relaxed: statistics, exact once the thread is joined); the rest is
/// read only after the join.
struct AcquisitionStats {
  std::atomic<std::uint64_t> delivered{0};        ///< frames fanned out to the consumers
  std::atomic<std::uint64_t> pooled{0};           ///< ... of which in a pool buffer
  std::atomic<std::uint64_t> fallbacks{0};        ///< ... of which copied to the heap (Bytes::copy_from)
  std::atomic<std::uint64_t> dropped{0};          ///< frames dropped (--on-exhausted=drop, or a failed fallback)
  std::atomic<std::uint64_t> exhausted{0};        ///< times no buffer freed up within --timeout
  std::atomic<std::uint64_t> blocked{0};          ///< ... after which --on-exhausted=block kept waiting
  std::atomic<std::uint64_t> preview_skipped{0};  ///< Nth frames not previewed: the preview was busy
  std::atomic<std::uint64_t> encoder_skipped{0};  ///< frames not encoded: the encoder (--encode) was busy
  LatencyHistogram acquire_wait;                  ///< time spent getting a buffer (including blocking)
  bool warmed_up = false;                         ///< warmup_frames were delivered
  std::uint64_t allocs_at_warmup = 0;             ///< alloc_hook::unexpected() then
  std::uint64_t expected_allocs_at_warmup = 0;
  std::uint64_t library_allocs_at_warmup = 0;
  Clock::time_point end;  ///< when the last frame was fanned out
};

/// The consumers' queues.
struct Queues {
  FrameQueue writer, preview, verifier;
  FrameQueue* network = nullptr;  ///< --publish's queue, when publishing
  FrameServer* server = nullptr;  ///< --serve's server, when serving
  FrameQueue* encoder = nullptr;  ///< --encode's queue, if encoding
};

/// Fan-out of one frame: the writer, (every Nth frame) the preview, the
/// network publisher and the shared-memory server each get their own view
/// of the same buffer; it returns to the pool when the last of them is
/// dropped. The caller gives the verifier its view.
void fan_out(const daq_pool::Bytes& bytes, const Options& opt, Queues& queues, AcquisitionStats& st,
             std::uint64_t delivered) {
  if (delivered % opt.preview_every == 0) {
    daq_pool::Bytes view = bytes;
    if (!queues.preview.try_push(view)) st.preview_skipped.fetch_add(1, std::memory_order_relaxed);
  }
  daq_pool::Bytes to_writer = bytes;
  queues.writer.push(to_writer);  // waits if the writer is a queue behind: backpressure
  if (queues.network != nullptr) {
    daq_pool::Bytes to_network = bytes;
    queues.network->push(to_network);  // the same backpressure from a slow receiver (PUSH)
  }
  if (queues.encoder != nullptr) {
    daq_pool::Bytes to_encoder = bytes;  // skipped, not waited for, while the encoder is busy
    if (!queues.encoder->try_push(to_encoder)) st.encoder_skipped.fetch_add(1, std::memory_order_relaxed);
  }
  if (queues.server != nullptr) queues.server->publish(bytes);  // --serve: to other processes, no copy (never waits)
}

/// Counts a delivered frame; allocation counting starts after warmup_frames.
void count_delivered(AcquisitionStats& st, std::uint64_t& delivered) {
  ++delivered;
  st.delivered.store(delivered, std::memory_order_relaxed);
  if (delivered == warmup_frames) {
    st.warmed_up = true;
    st.allocs_at_warmup = alloc_hook::unexpected();
    st.expected_allocs_at_warmup = alloc_hook::expected();
    st.library_allocs_at_warmup = alloc_hook::library();
  }
}

/// The acquisition thread: the code an application writes around the SDK.
void acquisition_loop(SimulatedCamera& camera, daq_pool::BufferPool& pool, const Options& opt, Queues& queues,
                      AcquisitionStats& st) {
  const auto timeout = std::chrono::milliseconds(opt.timeout_ms);
  std::uint64_t delivered = 0;
  while (const std::optional<SimulatedCamera::Frame> frame = camera.next_frame()) {
    // The SDK slot is ours until release_frame(); the camera will overrun if
    // we hold it too long, so the wait for a buffer is bounded.
    const auto t0 = Clock::now();
    std::optional<daq_pool::PooledBuffer> buffer = pool.try_acquire_for(timeout);
    auto t1 = Clock::now();  // end of the wait for a buffer (moved on by a blocking wait)
    daq_pool::Bytes bytes;
    if (!buffer) {
      st.exhausted.fetch_add(1, std::memory_order_relaxed);
      switch (opt.on_exhausted) {
        case OnExhausted::fallback:
          try {
            const alloc_hook::Expected expected;  // the one allocating path, counted apart
            bytes = daq_pool::Bytes::copy_from(frame->data);
            st.fallbacks.fetch_add(1, std::memory_order_relaxed);
          } catch (const std::bad_alloc&) {
            st.dropped.fetch_add(1, std::memory_order_relaxed);
          }
          break;
        case OnExhausted::drop:
          st.dropped.fetch_add(1, std::memory_order_relaxed);
          break;
        case OnExhausted::block:
          st.blocked.fetch_add(1, std::memory_order_relaxed);
          try {
            buffer.emplace(pool.acquire());
            t1 = Clock::now();
          } catch (const daq_pool::pool_closed&) {
            st.dropped.fetch_add(1, std::memory_order_relaxed);
          }
          break;
      }
    }
    st.acquire_wait.record(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count()));
    if (buffer) {
      buffer->copy_from_ptr(frame->data.data(), frame->data.size());
      bytes = std::move(*buffer).freeze();  // zero-copy, allocation-free
      buffer.reset();
      st.pooled.fetch_add(1, std::memory_order_relaxed);
    }
    camera.release_frame();  // the frame is safe in `bytes` (or dropped)
    if (bytes.empty()) continue;
    fan_out(bytes, opt, queues, st, delivered);
    queues.verifier.push(bytes);
    count_delivered(st, delivered);
  }
  st.end = Clock::now();
}

// --------------------------------------------------------------- printing --

/// "8 MiB", "256 KiB" or "1000 B".
std::string human_bytes(std::uint64_t n) {
  char buf[64];
  if (n >= (1u << 30) && n % (1u << 30) == 0) {
    std::snprintf(buf, sizeof buf, "%llu GiB", static_cast<unsigned long long>(n >> 30));
  } else if (n >= (1u << 20) && n % (1u << 20) == 0) {
    std::snprintf(buf, sizeof buf, "%llu MiB", static_cast<unsigned long long>(n >> 20));
  } else if (n >= (1u << 10) && n % (1u << 10) == 0) {
    std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>(n >> 10));
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

/// `s` as a JSON string literal.
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

/// The live progress line (in place on a terminal, periodic lines otherwise).
class Progress {
 public:
  Progress(std::FILE* out, bool enabled) noexcept
      : out_(out), enabled_(enabled), tty_(enabled && ::isatty(::fileno(out)) != 0) {
    winsize ws{};
    if (tty_ && ::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width_ = ws.ws_col;
  }

  /// How often print() should be called.
  Clock::duration interval() const noexcept {
    return tty_ ? Clock::duration(std::chrono::milliseconds(250)) : Clock::duration(std::chrono::seconds(1));
  }

  /// Prints one progress report. Never allocates (a fixed buffer; stdio's
  /// own buffer was set up by the run header).
  void print(double elapsed_s, std::uint64_t delivered, std::size_t in_use, std::size_t pool_size, std::uint64_t waits,
             std::uint64_t fallbacks, std::uint64_t drops, std::uint64_t overruns) {
    if (!enabled_) return;
    const double dt = elapsed_s - last_time_;
    const double fps = dt > 0 ? static_cast<double>(delivered - last_delivered_) / dt : 0.0;
    last_time_ = elapsed_s;
    last_delivered_ = delivered;
    char line[256];
    int n = std::snprintf(line, sizeof line,
                          "%6.1f s  %llu frames  %.1f fps  pool %zu/%zu in use  waits %llu  fallbacks %llu  "
                          "drops %llu  SDK overruns %llu",
                          elapsed_s, static_cast<unsigned long long>(delivered), fps, in_use, pool_size,
                          static_cast<unsigned long long>(waits), static_cast<unsigned long long>(fallbacks),
                          static_cast<unsigned long long>(drops), static_cast<unsigned long long>(overruns));
    n = n < 0 ? 0 : n >= static_cast<int>(sizeof line) ? static_cast<int>(sizeof line) - 1 : n;
    if (tty_) {
      // One terminal row, rewritten in place: a wrapped line could not be.
      if (n > width_ - 1) n = width_ - 1;
      std::fprintf(out_, "\r%.*s\x1b[K", n, line);
    } else {
      std::fprintf(out_, "%.*s\n", n, line);
    }
    std::fflush(out_);
    printed_ = true;
  }

  /// Ends the in-place line before other output.
  void finish() {
    if (enabled_ && tty_ && printed_) std::fputc('\n', out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  bool enabled_, tty_;
  bool printed_ = false;
  int width_ = 80;
  double last_time_ = 0;
  std::uint64_t last_delivered_ = 0;
};

/// Everything the summary reports.
struct Summary {
  const Options* opt = nullptr;
  std::string out_path;
  bool out_temporary = false;
  std::string stop_reason;  // "duration", "frames" or "signal"
  double elapsed_s = 0;
  std::uint64_t produced = 0, delivered = 0, pooled = 0, verified = 0, dropped = 0, fallbacks = 0, overruns = 0;
  std::uint64_t exhausted = 0, blocked = 0, integrity_failures = 0, sensor_late = 0;
  std::uint64_t wait_p50_ns = 0, wait_p99_ns = 0, wait_max_ns = 0;
  double fps = 0, gbps = 0;
  bool allocs_counted = false;
  std::uint64_t hot_allocs = 0, fallback_allocs = 0, measured_frames = 0;
  std::uint64_t writer_frames = 0, writer_bytes = 0, writer_lost = 0;
  int writer_errno = 0;
  std::uint64_t preview_frames = 0, preview_skipped = 0;
  PreviewStats preview;
  daq_pool::BufferPoolStats pool;
  std::size_t writer_queue_high = 0, preview_queue_high = 0, verifier_queue_high = 0, queue_capacity = 0;
  FrameCheck first_failure;
  std::string publish_text, publish_json = "null";  // --publish's report (zmq_publisher.hpp)
  bool publish_failed = false;
  ServeStats serve;
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  std::optional<EncoderStats> encoder;  ///< --encode
#endif
  int exit_code = 0;
  // What --source adds: the camera, copies made by our code per frame (sim:
  // one, out of the SDK ring; aravis: none), buffers the camera failed,
  // frames no pattern could check, allocations on the library's thread.
  std::string source = "sim", camera = "simulated sensor, 20-slot SDK ring";
  std::string verification = "every byte against the simulated sensor's pattern";
  std::uint64_t copies_per_frame = 1, failed_buffers = 0, unchecked = 0, library_allocs = 0;
  const char* failure_reason = nullptr;  // overrides first_failure.fault's text
  std::string camera_error;              // why the camera stopped early ("" if it did not)
};

/// True if --encode's encoder reported an error.
bool encoder_failed([[maybe_unused]] const Summary& s) {
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  return s.encoder && !s.encoder->error.empty();
#else
  return false;
#endif
}

/// The human-readable summary, on stdout.
void print_summary_text(const Summary& s) {
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  const Options& o = *s.opt;
  std::printf("\nsummary: %.2f s, stopped by %s\n", s.elapsed_s,
              s.stop_reason == "signal"        ? "signal (Ctrl-C)"
              : s.stop_reason == "frames"      ? "--frames"
              : s.stop_reason == "camera_lost" ? "the camera (lost)"
                                               : "--duration");
  std::printf("  source               %s: %s; copies per frame in our code: %llu\n", s.source.c_str(), s.camera.c_str(),
              u(s.copies_per_frame));
  if (s.source != "sim")
    std::printf(
        "  camera               %llu frames lost to underruns (every buffer held), %llu failed buffers "
        "(incomplete: re-queued, not delivered)\n",
        u(s.overruns), u(s.failed_buffers));
  if (!s.camera_error.empty()) std::printf("  camera ERROR         %s\n", s.camera_error.c_str());
  std::printf("  verification         %s\n", s.verification.c_str());
  std::printf("  frames produced      %llu  (camera exposures)\n", u(s.produced));
  std::printf("  frames delivered     %llu  (pooled %llu, heap fallback %llu)\n", u(s.delivered), u(s.pooled),
              u(s.fallbacks));
  std::printf("  frames verified      %llu  (integrity failures: %llu)\n", u(s.verified), u(s.integrity_failures));
  std::printf("  frames dropped       %llu\n", u(s.dropped));
  std::printf("  fallbacks            %llu\n", u(s.fallbacks));
  if (s.source == "sim") {  // the simulated SDK ring and the copy out of it
    std::printf("  SDK overruns         %llu  (frames lost: all %zu ring slots held)\n", u(s.overruns), sdk_ring_slots);
    std::printf("  pool exhausted       %llu  (times no buffer came back within %llu ms; on-exhausted=%s%s)\n",
                u(s.exhausted), u(o.timeout_ms), to_string(o.on_exhausted),
                o.on_exhausted == OnExhausted::block ? ", kept waiting" : "");
    std::printf("  acquire wait         p50 %.1f us  p99 %.1f us  max %.1f us\n",
                static_cast<double>(s.wait_p50_ns) / 1e3, static_cast<double>(s.wait_p99_ns) / 1e3,
                static_cast<double>(s.wait_max_ns) / 1e3);
  }
  std::printf("  throughput           %.1f frames/s  %.3f GB/s  (requested %.1f fps x %s)\n", s.fps, s.gbps, o.fps,
              human_bytes(o.frame_bytes).c_str());
  std::printf("  pool                 %zu buffers of %s, high water %zu, waits %llu\n", s.pool.size,
              human_bytes(s.pool.buffer_capacity).c_str(), s.pool.high_water, u(s.pool.waits));
  std::printf("  queues high water    writer %zu, verifier %zu (of %zu), preview %zu\n", s.writer_queue_high,
              s.verifier_queue_high, s.queue_capacity, s.preview_queue_high);
  std::printf("  writer               %llu frames, %.1f MB to %s%s", u(s.writer_frames),
              static_cast<double>(s.writer_bytes) / 1e6, s.out_path.c_str(),
              s.out_temporary ? " (temporary: rewound every 256 MiB, removed at exit)" : "");
  if (o.writer_mbps > 0) std::printf(", throttled to %.1f MB/s", o.writer_mbps);
  std::printf("\n");
  if (s.writer_errno != 0)
    std::printf("  writer ERROR         %s; %llu frames not written\n", error_text(s.writer_errno).c_str(),
                u(s.writer_lost));
  std::printf("  preview              %llu frames (every %llu, %llu skipped while busy)", u(s.preview_frames),
              u(o.preview_every), u(s.preview_skipped));
  if (s.preview_frames > 0) {
    if (s.source == "sim") std::printf(", last #%llu", u(s.preview.frame_number));  // a camera frame has no header
    std::printf(" mean %.1f, histogram [", s.preview.mean);
    std::uint64_t peak = 1;
    for (const std::uint64_t c : s.preview.histogram) peak = c > peak ? c : peak;
    static constexpr char shades[] = " .:-=+*#%@";
    for (const std::uint64_t c : s.preview.histogram) std::putchar(shades[(c * 9 + peak / 2) / peak]);
    std::printf("]");
  }
  std::printf("\n");
  std::fputs(s.publish_text.c_str(), stdout);
  print_serve_text(s.serve);
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  if (s.encoder) print_encoder_text(*s.encoder, s.delivered);
#endif
  if (s.allocs_counted) {
    std::printf(
        "  hot-path heap allocations after warm-up: %llu  (frames %llu..%llu; Bytes::copy_from fallbacks made "
        "%llu more, by design)\n",
        u(s.hot_allocs), u(warmup_frames + 1), u(s.delivered), u(s.fallback_allocs));
    if (s.source != "sim")
      std::printf("  Aravis's threads allocated %llu times meanwhile (%.2f per frame; not our code)\n",
                  u(s.library_allocs),
                  s.delivered > warmup_frames
                      ? static_cast<double>(s.library_allocs) / static_cast<double>(s.delivered - warmup_frames)
                      : 0.0);
  } else if (!alloc_hook::enabled) {
    std::printf("  hot-path heap allocations after warm-up: not counted (a sanitizer owns malloc)\n");
  } else {
    std::printf("  hot-path heap allocations after warm-up: not counted (fewer than %llu frames delivered)\n",
                u(warmup_frames + 1));
  }
  if (s.sensor_late > 0)
    std::printf("  note: the simulated sensor fell behind --fps %llu times (this machine is too slow for the rate)\n",
                u(s.sensor_late));
  if (s.integrity_failures > 0) {
    std::printf("  first failure        frame %llu: %s (byte offset %zu)\n", u(s.first_failure.frame_number),
                s.failure_reason != nullptr ? s.failure_reason : to_string(s.first_failure.fault),
                s.first_failure.offset);
  }
  std::printf("result: %s\n", s.exit_code == 0            ? "PASS"
                              : s.integrity_failures != 0 ? "FAIL (data-integrity failure)"
                              : s.publish_failed          ? "FAIL (publishing lost a buffer or a send failed)"
                              : !s.camera_error.empty()   ? "FAIL (the camera was lost)"
                              : encoder_failed(s)         ? "FAIL (the encoder failed)"
                                                          : "FAIL (the writer lost frames)");
  std::fflush(stdout);
}

/// The same summary as one JSON object, on stdout (for scripts and tests).
void print_summary_json(const Summary& s) {
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  const Options& o = *s.opt;
  std::string hist;
  for (std::size_t i = 0; i < s.preview.histogram.size(); ++i) {
    hist += (i ? ", " : "") + std::to_string(s.preview.histogram[i]);
  }
  std::printf("{\n");
  std::printf(
      "  \"config\": {\"frame_bytes\": %zu, \"fps\": %g, \"pool\": %zu, \"timeout_ms\": %llu, "
      "\"on_exhausted\": \"%s\", \"out\": %s, \"out_temporary\": %s, \"writer_mbps\": %g, "
      "\"preview_every\": %llu, \"corrupt_every\": %llu, \"duration_s\": %g, \"frames\": %llu, \"sdk_ring_slots\": "
      "%zu},\n",
      o.frame_bytes, o.fps, o.pool, u(o.timeout_ms), to_string(o.on_exhausted), json_string(s.out_path).c_str(),
      s.out_temporary ? "true" : "false", o.writer_mbps, u(o.preview_every), u(o.corrupt_every),
      (o.frames == 0 || o.duration_given) ? o.duration_s : 0.0, u(o.frames), sdk_ring_slots);
  std::printf("  \"stop_reason\": \"%s\",\n  \"interrupted\": %s,\n  \"elapsed_s\": %.3f,\n", s.stop_reason.c_str(),
              s.stop_reason == "signal" ? "true" : "false", s.elapsed_s);
  std::printf(
      "  \"frames_produced\": %llu,\n  \"frames_delivered\": %llu,\n  \"frames_pooled\": %llu,\n"
      "  \"frames_verified\": %llu,\n  \"frames_dropped\": %llu,\n  \"fallbacks\": %llu,\n"
      "  \"sdk_overruns\": %llu,\n  \"pool_exhausted\": %llu,\n  \"blocked_waits\": %llu,\n"
      "  \"integrity_failures\": %llu,\n  \"sensor_late_restarts\": %llu,\n",
      u(s.produced), u(s.delivered), u(s.pooled), u(s.verified), u(s.dropped), u(s.fallbacks), u(s.overruns),
      u(s.exhausted), u(s.blocked), u(s.integrity_failures), u(s.sensor_late));
  std::printf("  \"acquire_wait_us\": {\"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f},\n",
              static_cast<double>(s.wait_p50_ns) / 1e3, static_cast<double>(s.wait_p99_ns) / 1e3,
              static_cast<double>(s.wait_max_ns) / 1e3);
  std::printf("  \"throughput\": {\"frames_per_s\": %.3f, \"gb_per_s\": %.6f},\n", s.fps, s.gbps);
  if (s.allocs_counted) {
    std::printf("  \"hot_path_allocations\": %llu,\n  \"fallback_allocations\": %llu,\n", u(s.hot_allocs),
                u(s.fallback_allocs));
  } else {
    std::printf("  \"hot_path_allocations\": null,\n  \"fallback_allocations\": null,\n");
  }
  std::printf("  \"allocations_counted\": %s,\n", s.allocs_counted ? "true" : "false");
  std::printf(
      "  \"pool\": {\"size\": %zu, \"buffer_capacity\": %zu, \"high_water\": %zu, \"acquires\": %llu, "
      "\"releases\": %llu, \"misses\": %llu, \"waits\": %llu},\n",
      s.pool.size, s.pool.buffer_capacity, s.pool.high_water, u(s.pool.acquires), u(s.pool.releases), u(s.pool.misses),
      u(s.pool.waits));
  std::printf(
      "  \"queues\": {\"capacity\": %zu, \"writer_high_water\": %zu, \"verifier_high_water\": %zu, "
      "\"preview_high_water\": %zu},\n",
      s.queue_capacity, s.writer_queue_high, s.verifier_queue_high, s.preview_queue_high);
  std::printf("  \"writer\": {\"frames\": %llu, \"bytes\": %llu, \"lost\": %llu, \"error\": %s},\n", u(s.writer_frames),
              u(s.writer_bytes), u(s.writer_lost),
              s.writer_errno != 0 ? json_string(error_text(s.writer_errno)).c_str() : "null");
  std::printf(
      "  \"preview\": {\"frames\": %llu, \"skipped\": %llu, \"last_frame\": %llu, \"last_mean\": %.3f, "
      "\"last_histogram\": [%s]},\n",
      u(s.preview_frames), u(s.preview_skipped), u(s.preview.frame_number), s.preview.mean, hist.c_str());
  std::printf("  \"first_failure\": %s,\n",
              s.integrity_failures == 0
                  ? "null"
                  : json_string(std::string("frame ") + std::to_string(s.first_failure.frame_number) + ": " +
                                (s.failure_reason != nullptr ? s.failure_reason : to_string(s.first_failure.fault)))
                        .c_str());
  std::printf("  \"publish\": %s,\n", s.publish_json.c_str());
  std::printf("  \"serve\": %s,\n", serve_json(s.serve).c_str());
  std::printf(
      "  \"source\": %s,\n  \"camera\": %s,\n  \"verification\": %s,\n  \"copies_per_frame\": %llu,\n"
      "  \"frames_lost_to_underruns\": %llu,\n  \"failed_buffers\": %llu,\n  \"frames_unchecked\": %llu,\n"
      "  \"library_allocations\": %s,\n  \"camera_error\": %s,\n",
      json_string(s.source).c_str(), json_string(s.camera).c_str(), json_string(s.verification).c_str(),
      u(s.copies_per_frame), u(s.source == "sim" ? 0 : s.overruns), u(s.failed_buffers), u(s.unchecked),
      s.allocs_counted ? std::to_string(s.library_allocs).c_str() : "null",
      s.camera_error.empty() ? "null" : json_string(s.camera_error).c_str());
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  if (s.encoder) {
    std::printf("  \"encoder\": %s,\n", encoder_json(*s.encoder, json_string(s.encoder->path),
                                                     s.encoder->error.empty() ? "null" : json_string(s.encoder->error))
                                            .c_str());
  } else {
    std::printf("  \"encoder\": null,\n");
  }
#else
  std::printf("  \"encoder\": null,\n");
#endif
  std::printf("  \"exit_code\": %d\n}\n", s.exit_code);
  std::fflush(stdout);
}

// -------------------------------------------------------------------- run --

/// Sets up the pipeline, runs it until --duration, --frames or a signal,
/// shuts it down in order and prints the summary. Returns the exit code.
int run(const Options& requested) {
  Options opt = requested;  // --source=aravis: frame_bytes becomes the camera's payload
  alloc_hook::mark_pipeline_thread();
  const bool use_camera = is_aravis_source(opt.source);
  OutputFile out;
  if (std::string error; !out.open(opt.out, error)) {
    if (opt.out.empty()) {
      std::fprintf(stderr, "frame_pipeline: %s\n", error.c_str());
    } else {
      std::fprintf(
          stderr,
          "frame_pipeline: --out=%s: cannot open for writing: %s; allowed: a writable file path (or /dev/null)\n",
          opt.out.c_str(), error.c_str());
    }
    return 2;
  }

  if (out.temporary()) {
    // Reserve the scratch file's blocks now (tmpfs pages, disk extents), so
    // the writer's first pass does not pay for allocating them mid-run. Best
    // effort: without it the run is only slower to start.
    (void)::posix_fallocate(out.fd(), 0, static_cast<off_t>(temp_file_rewind_bytes));
  }

#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  std::optional<Encoder> encoder;
  if (!opt.encode.empty()) {
    encoder.emplace();
    if (std::string error; !encoder->open(opt.encode, opt.frame_bytes, opt.fps, error)) {
      std::fprintf(stderr, "frame_pipeline: --encode=%s: %s\n", opt.encode.c_str(), error.c_str());
      out.discard();
      return 2;
    }
  }
#endif

  // Everything that allocates happens here, before the first frame.
  std::optional<daq_pool::BufferPool> pool;
  std::optional<SimulatedCamera> camera;
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  std::optional<CameraAcquisition> aravis;  // --source=aravis: the camera writes into the pool
#endif
  try {
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
    if (use_camera) {
      // Aravis's threads allocate for themselves (GigE Vision: frame
      // bookkeeping, heartbeat packets): counted apart.
      alloc_hook::classify_threads.store(true, std::memory_order_relaxed);
      aravis.emplace(opt);
      opt.frame_bytes = aravis->payload();
      pool.emplace(aravis->pool());
    }
#endif
    if (!use_camera) {
      daq_pool::BufferPoolOptions pool_options;
      pool_options.shared_memory = !opt.serve.empty();        // --serve: in one memfd other processes can map
      pool.emplace(opt.pool, opt.frame_bytes, pool_options);  // page-aligned, prefaulted buffers
      camera.emplace(sdk_ring_slots, opt.frame_bytes, opt.fps, opt.frames, opt.corrupt_every);
    }
  } catch (const std::exception& e) {
    if (use_camera) {
      std::fprintf(stderr, "frame_pipeline: --source=%s: cannot set up the camera: %s\n", opt.source.c_str(), e.what());
    } else {
      std::fprintf(stderr, "frame_pipeline: cannot set up %zu + %zu frames of %zu bytes: %s\n", opt.pool,
                   sdk_ring_slots, opt.frame_bytes, e.what());
    }
    out.discard();
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
    if (encoder) encoder->discard();
#endif
    return 2;
  }
  FrameServer server;
  if (!opt.serve.empty()) {
    if (const std::optional<std::string> error = server.start(*pool, opt.serve)) {
      std::fprintf(stderr, "frame_pipeline: --serve=%s: %s\n", opt.serve.c_str(), error->c_str());
      out.discard();
      return 2;
    }
  }
  const std::size_t queue_capacity = opt.pool + sdk_ring_slots;  // every pooled frame plus a ring's worth of heap ones
  Queues queues{FrameQueue(queue_capacity), FrameQueue(4), FrameQueue(queue_capacity)};
  if (!opt.serve.empty()) queues.server = &server;
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  std::optional<FrameQueue> encoder_queue;
  if (encoder) queues.encoder = &encoder_queue.emplace(encoder_queue_frames);
#endif
  std::atomic<bool> throttle_on{true};
  Writer writer(out.fd(), opt.writer_mbps, throttle_on, out.temporary() ? temp_file_rewind_bytes : 0);
  Preview preview;
  Verifier verifier(opt.frame_bytes);
  AcquisitionStats acq;
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  CameraFrameQueue camera_frames(use_camera ? queue_capacity : 1);  // the verifier needs each frame's id
  CameraVerifier camera_verifier(aravis ? aravis->pattern() : nullptr);
#endif

  // Progress and the run header go to stdout, or to stderr when stdout
  // carries the JSON summary.
  std::FILE* info = opt.json ? stderr : stdout;
#if FRAME_PIPELINE_HAVE_ZMQ
  std::optional<Publisher> publisher;
  std::optional<FrameQueue> network_queue;
  if (!opt.publish.empty()) {
    try {
      publisher.emplace(opt);
    } catch (const daq_pool::zmq::zmq_error& e) {
      std::fprintf(stderr,
                   "frame_pipeline: --publish=%s: %s; allowed: an endpoint to bind, tcp://HOST:PORT (PORT * for a free "
                   "port) or ipc://PATH\n",
                   opt.publish.c_str(), e.what());
      out.discard();
      return 2;
    }
    network_queue.emplace(queue_capacity);
    queues.network = &*network_queue;
    // Always printed (also with --quiet): a receiver needs the real port.
    std::fprintf(info, "frame_pipeline: publishing frames (%s, high-water mark %llu) on %s\n",
                 to_string(opt.publish_mode), static_cast<unsigned long long>(opt.publish_hwm),
                 publisher->endpoint().c_str());
    std::fflush(info);
  }
#endif
  Progress progress(info, !opt.quiet);
  if (!opt.quiet && use_camera) {
    std::fprintf(info, "frame_pipeline: --source=%s, %s frames, pool of %zu, zero copy, writer -> %s%s",
                 opt.source.c_str(), human_bytes(opt.frame_bytes).c_str(), opt.pool, out.path().c_str(),
                 out.temporary() ? " (temporary)" : "");
  } else if (!opt.quiet) {
    std::fprintf(info,
                 "frame_pipeline: %s frames at %g fps, %zu-slot SDK ring, pool of %zu, timeout %llu ms, "
                 "on-exhausted=%s, writer -> %s%s",
                 human_bytes(opt.frame_bytes).c_str(), opt.fps, sdk_ring_slots, opt.pool,
                 static_cast<unsigned long long>(opt.timeout_ms), to_string(opt.on_exhausted), out.path().c_str(),
                 out.temporary() ? " (temporary)" : "");
  }
  if (!opt.quiet) {
    if (opt.writer_mbps > 0) std::fprintf(info, " at %g MB/s", opt.writer_mbps);
    if (!opt.encode.empty()) std::fprintf(info, ", encoder (FFV1) -> %s", opt.encode.c_str());
    if (opt.frames != 0) std::fprintf(info, ", %llu frames", static_cast<unsigned long long>(opt.frames));
    if (opt.frames == 0 || opt.duration_given) std::fprintf(info, ", %g s", opt.duration_s);
    std::fprintf(info, "\n");
    std::fflush(info);
  }

  std::thread writer_thread([&] {
    alloc_hook::mark_pipeline_thread();
    writer.run(queues.writer);
  });
  std::thread preview_thread([&] {
    alloc_hook::mark_pipeline_thread();
    preview.run(queues.preview);
  });
  std::thread verifier_thread([&] {
    alloc_hook::mark_pipeline_thread();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
    if (use_camera) return camera_verifier.run(camera_frames);
#endif
    verifier.run(queues.verifier);
  });
  std::thread acquisition_thread([&] {
    alloc_hook::mark_pipeline_thread();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
    if (use_camera) {
      // No SDK ring, no copy, no pool wait: the frame is already in a pool
      // buffer. Its views go to the same consumers.
      std::uint64_t delivered = 0;
      aravis->run([&](daq_pool::aravis::Frame&& frame) {
        acq.pooled.fetch_add(1, std::memory_order_relaxed);
        fan_out(frame.data, opt, queues, acq, delivered);
        camera_frames.push(frame);
        count_delivered(acq, delivered);
      });
      acq.end = Clock::now();
      return;
    }
#endif
    acquisition_loop(*camera, *pool, opt, queues, acq);
  });
#if FRAME_PIPELINE_HAVE_ZMQ
  std::thread publisher_thread;
  if (publisher)
    publisher_thread = std::thread([&] {
      alloc_hook::mark_pipeline_thread();
      publisher->run(*network_queue);
    });
#endif
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  std::thread encoder_thread;
  if (encoder)
    encoder_thread = std::thread([&] {
      alloc_hook::mark_pipeline_thread();
      encoder->run(*encoder_queue);
    });
#endif
  const auto start = Clock::now();
  if (camera) camera->start();
  // The source's own view of its progress.
  const auto source_done = [&] {
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
    if (aravis) return aravis->done();
#endif
    return opt.frames != 0 && camera->sensor_done();
  };
  const auto overruns = [&]() -> std::uint64_t {
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
    if (aravis) return aravis->stats().underruns;
#endif
    return camera->overruns();
  };

  const bool timed = opt.frames == 0 || opt.duration_given;
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.duration_s));
  auto next_print = start + progress.interval();
  std::string stop_reason;
  for (;;) {
    const auto now = Clock::now();
    if (g_stop_requested.load()) {
      stop_reason = "signal";
      break;
    }
    if (timed && now >= deadline) {
      stop_reason = "duration";
      break;
    }
    if (source_done()) {
      stop_reason = "frames";
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
      if (aravis && !aravis->error().empty()) stop_reason = "camera_lost";
#endif
      break;
    }
    if (now >= next_print) {
      const daq_pool::BufferPoolStats ps = pool->stats();
      progress.print(std::chrono::duration<double>(now - start).count(), acq.delivered.load(std::memory_order_relaxed),
                     ps.in_use, ps.size, ps.waits, acq.fallbacks.load(std::memory_order_relaxed),
                     acq.dropped.load(std::memory_order_relaxed), overruns());
      next_print += progress.interval();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  // Orderly shutdown: stop the sensor; let acquisition drain the ring; close
  // the pool (nothing may acquire any more); let every consumer drain its
  // queue. Lifting the writer's throttle keeps a simulated slow disk from
  // holding up Ctrl-C.
  throttle_on.store(false);
#if FRAME_PIPELINE_HAVE_ZMQ
  if (publisher) publisher->stop_soon();  // a receiver that never takes the frames won't hold up Ctrl-C
#endif
  if (camera) camera->stop();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  if (aravis) aravis->request_stop();
#endif
  acquisition_thread.join();
  server.stop();  // subscribers see the end of the stream; the server's views go
  pool->close();
  queues.writer.close();
  queues.preview.close();
  queues.verifier.close();
  if (queues.encoder != nullptr) queues.encoder->close();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  camera_frames.close();
#endif
  writer_thread.join();
  preview_thread.join();
  verifier_thread.join();
#if FRAME_PIPELINE_HAVE_ZMQ
  if (publisher) {
    network_queue->close();
    publisher_thread.join();
    publisher->close();  // linger, terminate the context, then count the views ZeroMQ still holds
  }
#endif
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  if (encoder_thread.joinable()) encoder_thread.join();
#endif
  const std::uint64_t allocs_end = alloc_hook::unexpected();
  const std::uint64_t expected_allocs_end = alloc_hook::expected();
  const std::uint64_t library_allocs_end = alloc_hook::library();
  progress.finish();

  Summary s;
  s.opt = &opt;
  s.out_path = out.path();
  s.out_temporary = out.temporary();
  s.stop_reason = stop_reason;
  s.elapsed_s = std::chrono::duration<double>(acq.end - start).count();
  s.produced = camera ? camera->exposures() : 0;
  s.delivered = acq.delivered.load();
  s.pooled = acq.pooled.load();
  s.verified = verifier.verified();
  s.dropped = acq.dropped.load();
  s.fallbacks = acq.fallbacks.load();
  s.overruns = overruns();
  s.exhausted = acq.exhausted.load();
  s.blocked = acq.blocked.load();
  s.sensor_late = camera ? camera->late_restarts() : 0;
  s.integrity_failures = verifier.failures();
  s.first_failure = verifier.first_failure();
  s.wait_p50_ns = acq.acquire_wait.quantile(0.50);
  s.wait_p99_ns = acq.acquire_wait.quantile(0.99);
  s.wait_max_ns = acq.acquire_wait.max();
  if (s.elapsed_s > 0) {
    s.fps = static_cast<double>(s.delivered) / s.elapsed_s;
    s.gbps = static_cast<double>(s.delivered) * static_cast<double>(opt.frame_bytes) / s.elapsed_s / 1e9;
  }
  s.allocs_counted = alloc_hook::enabled && acq.warmed_up;
  if (s.allocs_counted) {
    s.hot_allocs = allocs_end - acq.allocs_at_warmup;
    s.fallback_allocs = expected_allocs_end - acq.expected_allocs_at_warmup;
    s.library_allocs = library_allocs_end - acq.library_allocs_at_warmup;
  }
  s.writer_frames = writer.frames();
  s.writer_bytes = writer.bytes();
  s.writer_lost = writer.lost();
  s.writer_errno = writer.error();
  s.preview_frames = preview.frames();
  s.preview_skipped = acq.preview_skipped.load();
  s.preview = preview.last();
  s.pool = pool->stats();
  s.queue_capacity = queue_capacity;
  s.writer_queue_high = queues.writer.high_water();
  s.preview_queue_high = queues.preview.high_water();
  s.verifier_queue_high = queues.verifier.high_water();
#if FRAME_PIPELINE_HAVE_ZMQ
  if (publisher) {
    s.publish_text = publisher->text(alloc_hook::library(), alloc_hook::enabled);
    s.publish_json = publisher->json(json_string, alloc_hook::library(), alloc_hook::enabled);
    s.publish_failed = publisher->failed();
  }
#endif
  s.serve = server.stats();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  if (aravis) {
    // Every camera frame is delivered, failed (incomplete, re-queued) or
    // lost to an underrun: that sum is what the camera produced.
    const daq_pool::aravis::CameraSourceStats cs = aravis->stats();
    s.source = opt.source;
    s.camera = aravis->model() + " (" + aravis->device() + ")" +
               (aravis->pattern() != nullptr ? ", " + aravis->geometry() : "");
    s.copies_per_frame = 0;
    s.failed_buffers = cs.failed;
    s.produced = s.delivered + cs.failed + cs.underruns;
    s.verified = camera_verifier.verified();
    s.integrity_failures = camera_verifier.failures();
    s.unchecked = camera_verifier.unchecked();
    const auto [id, why] = camera_verifier.first_failure();
    s.first_failure.frame_number = id;
    s.failure_reason = why;
    s.verification = aravis->pattern() != nullptr ? "every pixel against Aravis's fake camera pattern"
                                                  : "off: not Aravis's fake camera, whose pattern is known";
    s.camera_error = aravis->error();
    s.verifier_queue_high = camera_frames.high_water();
    // The source holds the buffers queued in the camera until it goes: then
    // every buffer is back, and the pool's counters balance.
    aravis.reset();
    s.pool = pool->stats();
  }
#endif
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  if (encoder) {
    s.encoder = encoder->stats();
    s.encoder->skipped = acq.encoder_skipped.load();
    if (!s.encoder->error.empty())
      std::fprintf(stderr, "frame_pipeline: --encode=%s failed: %s (%llu frames not encoded)\n", opt.encode.c_str(),
                   s.encoder->error.c_str(), static_cast<unsigned long long>(s.encoder->lost));
  }
#endif

  // Every delivered frame must have reached the verifier and the writer;
  // every exposure is accounted for exactly once.
  const bool conserved = s.produced == s.delivered + s.dropped + s.overruns + s.failed_buffers;
  if (!conserved || s.verified + s.integrity_failures + s.unchecked != s.delivered) {
    std::fprintf(stderr,
                 "frame_pipeline: frames unaccounted for: produced %llu != delivered %llu + dropped %llu + overruns "
                 "%llu, or verified %llu + failed %llu != delivered\n",
                 static_cast<unsigned long long>(s.produced), static_cast<unsigned long long>(s.delivered),
                 static_cast<unsigned long long>(s.dropped), static_cast<unsigned long long>(s.overruns),
                 static_cast<unsigned long long>(s.verified), static_cast<unsigned long long>(s.integrity_failures));
    if (s.integrity_failures == 0) s.integrity_failures = 1;
  }
  if (s.writer_errno != 0) {
    std::fprintf(stderr, "frame_pipeline: writing %s failed: %s (%llu frames lost)\n", out.path().c_str(),
                 error_text(s.writer_errno).c_str(), static_cast<unsigned long long>(s.writer_lost));
  }
  if (!s.camera_error.empty()) std::fprintf(stderr, "frame_pipeline: %s\n", s.camera_error.c_str());
  s.exit_code = (s.integrity_failures != 0 || s.writer_errno != 0 || s.publish_failed || !s.camera_error.empty() ||
                 encoder_failed(s))
                    ? 1
                    : 0;

  if (opt.json) {
    print_summary_json(s);
  } else {
    print_summary_text(s);
  }
  return s.exit_code;  // `out` removes the temporary file on the way out
}

}  // namespace
}  // namespace frame_pipeline

int main(int argc, char** argv) {
  using namespace frame_pipeline;
  Options opt;
  if (const auto error = parse_args(argc, argv, opt)) {
    std::fprintf(stderr, "frame_pipeline: %s\nusage: %s [flags]; run with --help for the list\n",
                 error->message.c_str(), argv[0]);
    return 2;
  }
  if (opt.help) {
    std::fputs(usage_text(argv[0]).c_str(), stdout);
    return 0;
  }
  if (!opt.serve.empty() && !FrameServer::available()) {
    std::fprintf(stderr, "frame_pipeline: --serve: not built with daq_pool::shm (Linux only)\n");
    return 2;
  }
  if (const auto error = check_memory(opt)) {
    std::fprintf(stderr, "frame_pipeline: %s\n", error->message.c_str());
    return 2;
  }
  if (!opt.encode.empty()) {
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
    if (const auto error = encode_geometry_error(opt.frame_bytes)) {
      std::fprintf(stderr, "frame_pipeline: %s\n", error->c_str());
      return 2;
    }
#else
    std::fprintf(stderr, "frame_pipeline: --encode: not built with FFmpeg (libavcodec, libavformat)\n");
    return 2;
#endif
  }
  install_signal_handlers();
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "frame_pipeline: unexpected error: %s\n", e.what());
    return 2;
  }
}
