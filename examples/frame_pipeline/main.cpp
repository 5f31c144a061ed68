// The frame-pipeline demo: a camera acquisition, end to end.
//
//   sensor thread --(20-slot no-overwrite SDK ring)--> acquisition thread
//     try_acquire_for(--timeout) a BufferPool buffer, copy_from_ptr, freeze,
//     release the SDK slot, publish the Bytes view on a daq_pool::Broadcast
//     (pipeline.hpp). Its subscribers, each on its own thread with its own
//     queue and policy (--policy):
//       writer    (block: every frame to --out, optionally throttled)
//       preview   (keep_latest: histogram and mean of the freshest frames)
//       verifier  (block: every frame's pattern, checksum, order)
//       publisher (block: --publish, ZeroMQ), server (block: --serve, shared
//       memory), encoder (drop_newest: --encode, FFV1)
//   With --source=aravis the camera writes into the pool itself: no ring, no
//   copy; the same consumers get the views.
//
// Run with --help for the flags. See the README section "The frame-pipeline
// demo" for sample output. A new consumer: a Stage (stage.hpp) in a file of
// its own, and one pipeline.add() line in run().
#include "acquisition.hpp"
#include "alloc_hook.hpp"  // interposes malloc/operator new: include in this one TU only
#include "cli.hpp"
#include "output_file.hpp"
#include "pipeline.hpp"
#include "preview.hpp"
#include "progress.hpp"
#include "shm_server.hpp"
#include "simulated_camera.hpp"
#include "summary.hpp"
#include "recording.hpp"
#include "verifier.hpp"
#include "writer.hpp"
#include "zmq_publisher.hpp"  // --publish (only when built with ZeroMQ)
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
#include "aravis_source.hpp"
#endif
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
#include "encoder.hpp"  // --encode
#endif

#include <daq_pool/buffer_pool.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace frame_pipeline {
namespace {

// ---------------------------------------------------------------- signals --

std::atomic<bool> g_stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free, "the signal handler needs a lock-free flag");
std::atomic<int> g_signal_count{0};

/// First SIGINT/SIGTERM: ask for a clean stop. Second: remove the temporary
/// file (if a signal came during setup, before unlink_name()) and exit at once (the user insists). Async-signal-safe.
extern "C" void on_stop_signal(int sig) {
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

/// Prints `message` as the demo's error, discards what setup created, and
/// returns exit code 2.
int setup_failed(const std::string& message, OutputFile& out) {
  std::fprintf(stderr, "frame_pipeline: %s\n", message.c_str());
  out.discard();
  return 2;
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
    if (opt.out.empty()) return setup_failed(error, out);
    return setup_failed("--out=" + opt.out + ": cannot open for writing: " + error +
                            "; allowed: a writable file path (or /dev/null)",
                        out);
  }
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  std::unique_ptr<Encoder> encoder;
  if (!opt.encode.empty()) {
    encoder = std::make_unique<Encoder>();
    if (std::string error; !encoder->open(opt.encode, opt.frame_bytes, opt.fps, error))
      return setup_failed("--encode=" + opt.encode + ": " + error, out);
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
      // Aravis's threads allocate for themselves: counted apart.
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
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
    if (encoder) encoder->discard();
#endif
    if (use_camera) return setup_failed("--source=" + opt.source + ": cannot set up the camera: " + e.what(), out);
    return setup_failed("cannot set up " + std::to_string(opt.pool) + " + " + std::to_string(sdk_ring_slots) +
                            " frames of " + std::to_string(opt.frame_bytes) + " bytes: " + e.what(),
                        out);
  }

  // The consumers: one subscriber each. Queues of the pool's size plus the
  // SDK ring's (every pooled frame and a ring's worth of heap fallbacks).
  const std::size_t queue = opt.pool + sdk_ring_slots;
  std::atomic<bool> throttle_on{true};
  Pipeline pipeline(opt.policies);
  // The writer records through daq-pool's recorder (a .dqr file, O_DIRECT)
  // or HDF5 (.h5); the default scratch recording reuses 256 MiB of records.
  const std::uint64_t scratch_records = std::max<std::uint64_t>(8, temp_file_rewind_bytes / opt.frame_bytes);
  const RecordingWriter& writer = pipeline.add(std::make_unique<RecordingWriter>(
      out.path(), opt.frame_bytes, queue, opt.writer_mbps, throttle_on, out.temporary() ? scratch_records : 0,
      out.temporary() ? " (temporary: 256 MiB of records reused, unlinked while recording)" : ""));
  // The recorder has the scratch file open (its fd, never the path again):
  // its name goes now, so that a killed run (SIGKILL, OOM) leaves nothing
  // behind; the blocks go when the recorder closes.
  out.unlink_name();
  pipeline.add(std::make_unique<Preview>(opt.preview_every, !use_camera));
  const Verifier* verifier = nullptr;
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  if (use_camera) verifier = &pipeline.add(std::make_unique<CameraVerifier>(aravis->pattern(), queue));
#endif
  if (verifier == nullptr) verifier = &pipeline.add(std::make_unique<SensorVerifier>(opt.frame_bytes, queue));
  std::FILE* info = opt.json ? stderr : stdout;  // stdout carries the JSON summary
#if FRAME_PIPELINE_HAVE_ZMQ
  if (!opt.publish.empty()) {
    try {
      const Publisher& publisher = pipeline.add(std::make_unique<Publisher>(opt, queue));
      // Always printed (also with --quiet): a receiver needs the real port.
      std::fprintf(info, "frame_pipeline: publishing frames (%s, high-water mark %llu, budget %llu, %s) on %s\n",
                   to_string(opt.publish_mode), static_cast<unsigned long long>(opt.publish_hwm),
                   static_cast<unsigned long long>(publisher.budget()), publisher.security().c_str(),
                   publisher.endpoint().c_str());
      std::fflush(info);
    } catch (const daq_pool::zmq::zmq_error& e) {
      return setup_failed("--publish=" + opt.publish + ": " + e.what() +
                              "; allowed: an endpoint to bind, tcp://HOST:PORT (PORT * for a free port) or ipc://PATH",
                          out);
    } catch (const std::runtime_error& e) {  // a key file
      return setup_failed(e.what(), out);
    }
  }
#endif
  if (!opt.serve.empty()) {
    auto server = std::make_unique<FrameServer>(queue);
    if (const std::optional<std::string> error = server->start(*pool, opt.serve))
      return setup_failed("--serve=" + opt.serve + ": " + *error, out);
    pipeline.add(std::move(server));
  }
#if defined(FRAME_PIPELINE_HAVE_FFMPEG)
  if (encoder) pipeline.add(std::move(encoder));
#endif
  for (const PolicyOverride& p : opt.policies) {
    if (!pipeline.has(p.consumer))
      return setup_failed("--policy=" + p.consumer + ":...: no consumer '" + p.consumer +
                              "' in this run; allowed: writer, preview, verifier, and publisher, server, encoder "
                              "with --publish, --serve, --encode",
                          out);
  }

  Progress progress(info, !opt.quiet);
  if (!opt.quiet) {
    if (use_camera) {
      std::fprintf(info, "frame_pipeline: --source=%s, %s frames, pool of %zu, zero copy, writer -> %s%s",
                   opt.source.c_str(), human_bytes(opt.frame_bytes).c_str(), opt.pool, out.path().c_str(),
                   out.temporary() ? " (temporary)" : "");
    } else {
      std::fprintf(info,
                   "frame_pipeline: %s frames at %g fps, %zu-slot SDK ring, pool of %zu, timeout %llu ms, "
                   "on-exhausted=%s, writer -> %s%s",
                   human_bytes(opt.frame_bytes).c_str(), opt.fps, sdk_ring_slots, opt.pool,
                   static_cast<unsigned long long>(opt.timeout_ms), to_string(opt.on_exhausted), out.path().c_str(),
                   out.temporary() ? " (temporary)" : "");
    }
    if (opt.writer_mbps > 0) std::fprintf(info, " at %g MB/s", opt.writer_mbps);
    if (!opt.encode.empty()) std::fprintf(info, ", encoder (FFV1) -> %s", opt.encode.c_str());
    if (opt.frames != 0) std::fprintf(info, ", %llu frames", static_cast<unsigned long long>(opt.frames));
    if (opt.frames == 0 || opt.duration_given) std::fprintf(info, ", %g s", opt.duration_s);
    std::fprintf(info, "\n");
    std::fflush(info);
  }

  // Run: the consumers, then the acquisition thread, then the camera.
  pipeline.start();
  AcquisitionStats acq;
  std::thread acquisition_thread([&] {
    alloc_hook::mark_pipeline_thread();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
    if (use_camera) {
      // No SDK ring, no copy, no pool wait: the frame is already in a pool
      // buffer. Its tag is the camera's frame id (the verifier checks it).
      std::uint64_t delivered = 0;
      aravis->run([&](daq_pool::aravis::Frame&& frame) {
        acq.pooled.fetch_add(1, std::memory_order_relaxed);
        deliver(pipeline, frame.data, frame.frame_id, acq, delivered);
      });
      acq.end = Clock::now();
      return;
    }
#endif
    acquisition_loop(*camera, *pool, opt, pipeline, acq);
  });
  const auto start = Clock::now();
  if (camera) camera->start();
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
    } else if (timed && now >= deadline) {
      stop_reason = "duration";
    } else if (source_done()) {
      stop_reason = "frames";
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
      if (aravis && !aravis->error().empty()) stop_reason = "camera_lost";
#endif
    }
    if (!stop_reason.empty()) break;
    if (now >= next_print) {
      const daq_pool::BufferPoolStats ps = pool->stats();
      progress.print(std::chrono::duration<double>(now - start).count(), acq.delivered.load(std::memory_order_relaxed),
                     ps.in_use, ps.size, ps.waits, acq.fallbacks.load(std::memory_order_relaxed),
                     acq.dropped.load(std::memory_order_relaxed), overruns());
      next_print += progress.interval();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  // Orderly shutdown: stop the source; let acquisition drain the ring; end
  // the broadcast (every consumer drains its queue, finishes, is joined and
  // closed); close the pool. Lifting the writer's throttle and telling the
  // consumers (a receiver that never takes the frames) keep a slow consumer
  // from holding up Ctrl-C.
  throttle_on.store(false);
  pipeline.stop_soon();
  if (camera) camera->stop();
#if defined(FRAME_PIPELINE_HAVE_ARAVIS)
  if (aravis) aravis->request_stop();
#endif
  acquisition_thread.join();
  pipeline.close();
  pool->close();
  const std::uint64_t allocs_end = alloc_hook::unexpected();
  const std::uint64_t expected_allocs_end = alloc_hook::expected();
  const std::uint64_t library_allocs_end = alloc_hook::library();
  progress.finish();

  Summary s;
  s.opt = &opt;
  s.pipeline = &pipeline;
  s.out_path = out.path();
  s.out_temporary = out.temporary();
  s.stop_reason = stop_reason;
  s.elapsed_s = std::chrono::duration<double>(acq.end - start).count();
  s.produced = camera ? camera->exposures() : 0;
  s.delivered = acq.delivered.load();
  s.pooled = acq.pooled.load();
  s.verified = verifier->verified();
  s.unchecked = verifier->unchecked();
  s.integrity_failures = verifier->failures();
  const Verifier::Failure first = verifier->first_failure();
  s.first_failure_frame = first.frame_number;
  s.first_failure_reason = first.reason;
  s.first_failure_offset = first.offset;
  s.dropped = acq.dropped.load();
  s.fallbacks = acq.fallbacks.load();
  s.overruns = overruns();
  s.exhausted = acq.exhausted.load();
  s.blocked = acq.blocked.load();
  s.sensor_late = camera ? camera->late_restarts() : 0;
  s.wait_p50_ns = acq.acquire_wait.quantile(0.50);
  s.wait_p99_ns = acq.acquire_wait.quantile(0.99);
  s.wait_max_ns = acq.acquire_wait.max();
  if (s.elapsed_s > 0) {
    s.fps = static_cast<double>(s.delivered) / s.elapsed_s;
    s.gbps = static_cast<double>(s.delivered) * static_cast<double>(opt.frame_bytes) / s.elapsed_s / 1e9;
  }
  s.warmup_frames = warmup_frames;
  s.allocs_counted = alloc_hook::enabled && acq.warmed_up;
  if (s.allocs_counted) {
    s.hot_allocs = allocs_end - acq.allocs_at_warmup;
    s.fallback_allocs = expected_allocs_end - acq.expected_allocs_at_warmup;
    s.library_allocs = library_allocs_end - acq.library_allocs_at_warmup;
  }
  s.pool = pool->stats();
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
    s.verification = aravis->pattern() != nullptr ? "every pixel against Aravis's fake camera pattern"
                                                  : "off: not Aravis's fake camera, whose pattern is known";
    s.camera_error = aravis->error();
    // The source holds the buffers queued in the camera until it goes: then
    // every buffer is back, and the pool's counters balance.
    aravis.reset();
    s.pool = pool->stats();
  }
#endif

  // Every delivered frame must have reached the verifier; every exposure is
  // accounted for exactly once; every consumer reports its own failures.
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
  pipeline.for_each([&](const Stage& stage) {
    if (const std::string error = stage.error(); !error.empty()) {
      std::fprintf(stderr, "frame_pipeline: %s\n", error.c_str());
      if (s.failed_consumer.empty()) s.failed_consumer = stage.name();
    }
  });
  if (!s.camera_error.empty()) std::fprintf(stderr, "frame_pipeline: %s\n", s.camera_error.c_str());
  // Every frame the camera produced must be on the disk: a run that recorded
  // fewer says so and fails, whoever lost them (SDK overruns behind a slow
  // disk, drops, the disk itself).
  s.recorded = writer.frames();
  if (s.recorded < s.produced) {
    std::fprintf(stderr,
                 "frame_pipeline: recorded %llu of %llu frames the camera produced: %llu lost (SDK overruns %llu, "
                 "dropped %llu, lost to the disk %llu)\n",
                 static_cast<unsigned long long>(s.recorded), static_cast<unsigned long long>(s.produced),
                 static_cast<unsigned long long>(s.produced - s.recorded), static_cast<unsigned long long>(s.overruns),
                 static_cast<unsigned long long>(s.dropped), static_cast<unsigned long long>(writer.lost()));
    s.recording_incomplete = true;
  }
  s.exit_code = (s.integrity_failures != 0 || !s.failed_consumer.empty() || !s.camera_error.empty() ||
                 s.recording_incomplete)
                    ? 1
                    : 0;
  if (opt.json) {
    print_summary_json(s);
  } else {
    print_summary_text(s);
  }
  return s.exit_code;  // `out` closes its descriptor on the way out
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
