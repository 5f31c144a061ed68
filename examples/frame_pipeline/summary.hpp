// The demo's summary: what the run did, as text or as one JSON object. The
// consumers' parts come from the pipeline: each consumer's broadcast
// counters, then its own lines (Stage::text) and JSON members (Stage::json).
#pragma once

#include "alloc_hook.hpp"
#include "cli.hpp"
#include "pipeline.hpp"
#include "progress.hpp"
#include "stage.hpp"

#include <daq_pool/buffer_pool.hpp>

#include <cstdint>
#include <cstdio>
#include <string>

namespace frame_pipeline {

/// Everything the summary reports.
struct Summary {
  const Options* opt = nullptr;
  const Pipeline* pipeline = nullptr;  ///< the consumers (closed: their counts are final)
  std::string out_path;
  bool out_temporary = false;
  std::string stop_reason;             // "duration", "frames", "signal" or "camera_lost"
  double elapsed_s = 0;
  std::uint64_t produced = 0, delivered = 0, pooled = 0, verified = 0, dropped = 0, fallbacks = 0, overruns = 0;
  std::uint64_t exhausted = 0, blocked = 0, integrity_failures = 0, sensor_late = 0;
  std::uint64_t wait_p50_ns = 0, wait_p99_ns = 0, wait_max_ns = 0;
  std::uint64_t warmup_frames = 0;
  double fps = 0, gbps = 0;
  bool allocs_counted = false;
  std::uint64_t hot_allocs = 0, fallback_allocs = 0;
  daq_pool::BufferPoolStats pool;
  std::uint64_t first_failure_frame = 0;
  const char* first_failure_reason = nullptr;
  std::size_t first_failure_offset = 0;
  std::string failed_consumer;  ///< the first consumer that reported an error
  int exit_code = 0;
  std::uint64_t recorded = 0;         ///< frames the writer recorded (on the disk)
  bool recording_incomplete = false;  ///< recorded < produced
  // What --source adds: the camera, copies made by our code per frame (sim:
  // one, out of the SDK ring; aravis: none), buffers the camera failed,
  // frames no pattern could check, allocations on the library's thread.
  std::string source = "sim", camera = "simulated sensor, 20-slot SDK ring";
  std::string verification = "every byte against the simulated sensor's pattern";
  std::uint64_t copies_per_frame = 1, failed_buffers = 0, unchecked = 0, library_allocs = 0;
  std::string camera_error;  // why the camera stopped early ("" if it did not)
};

/// Calls f(stage, counts) for every consumer of the summary's pipeline.
template <class F>
void for_each_consumer(const Summary& s, F&& f) {
  std::size_t i = 0;
  s.pipeline->for_each([&](const Stage& stage) { f(stage, s.pipeline->counts().at(i++).stats); });
}

/// The human-readable summary, on stdout.
inline void print_summary_text(const Summary& s) {
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
  std::printf("  frames recorded      %llu of %llu produced%s\n", u(s.recorded), u(s.produced),
              s.recording_incomplete ? "  (INCOMPLETE: frames lost before reaching the disk)" : "");
  std::printf("  throughput           %.1f frames/s  %.3f GB/s  (requested %.1f fps x %s)\n", s.fps, s.gbps, o.fps,
              human_bytes(o.frame_bytes).c_str());
  std::printf("  pool                 %zu buffers of %s, high water %zu, waits %llu\n", s.pool.size,
              human_bytes(s.pool.buffer_capacity).c_str(), s.pool.high_water, u(s.pool.waits));
  std::fputs(consumers_text(s.pipeline->counts()).c_str(), stdout);
  for_each_consumer(s, [](const Stage& stage, const daq_pool::SubscriberStats& c) {
    std::fputs(stage.text(c).c_str(), stdout);
  });
  if (s.allocs_counted) {
    std::printf(
        "  hot-path heap allocations after warm-up: %llu  (frames %llu..%llu; Bytes::copy_from fallbacks made "
        "%llu more, by design)\n",
        u(s.hot_allocs), u(s.warmup_frames + 1), u(s.delivered), u(s.fallback_allocs));
    if (s.source != "sim")
      std::printf("  Aravis's threads allocated %llu times meanwhile (%.2f per frame; not our code)\n",
                  u(s.library_allocs),
                  s.delivered > s.warmup_frames
                      ? static_cast<double>(s.library_allocs) / static_cast<double>(s.delivered - s.warmup_frames)
                      : 0.0);
  } else if (!alloc_hook::enabled) {
    std::printf("  hot-path heap allocations after warm-up: not counted (a sanitizer owns malloc)\n");
  } else {
    std::printf("  hot-path heap allocations after warm-up: not counted (fewer than %llu frames delivered)\n",
                u(s.warmup_frames + 1));
  }
  if (s.sensor_late > 0)
    std::printf("  note: the simulated sensor fell behind --fps %llu times (this machine is too slow for the rate)\n",
                u(s.sensor_late));
  if (s.integrity_failures > 0)
    std::printf("  first failure        frame %llu: %s (byte offset %zu)\n", u(s.first_failure_frame),
                s.first_failure_reason != nullptr ? s.first_failure_reason : "?", s.first_failure_offset);
  std::printf("result: %s%s%s\n", s.exit_code == 0 ? "PASS" : "FAIL (",
              s.exit_code == 0                 ? ""
              : s.integrity_failures != 0      ? "data-integrity failure"
              : !s.camera_error.empty()        ? "the camera was lost"
              : !s.failed_consumer.empty()     ? ("the " + s.failed_consumer + " failed").c_str()
              : s.recording_incomplete         ? "fewer frames recorded than produced"
                                               : "?",
              s.exit_code == 0 ? "" : ")");
  std::fflush(stdout);
}

/// The same summary as one JSON object, on stdout (for scripts and tests).
inline void print_summary_json(const Summary& s) {
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  const Options& o = *s.opt;
  std::printf("{\n");
  std::printf(
      "  \"config\": {\"frame_bytes\": %zu, \"fps\": %g, \"pool\": %zu, \"timeout_ms\": %llu, "
      "\"on_exhausted\": \"%s\", \"out\": %s, \"out_temporary\": %s, \"writer_mbps\": %g, "
      "\"preview_every\": %llu, \"corrupt_every\": %llu, \"duration_s\": %g, \"frames\": %llu, \"sdk_ring_slots\": "
      "%zu},\n",
      o.frame_bytes, o.fps, o.pool, u(o.timeout_ms), to_string(o.on_exhausted),
      json_string(s.out_path).c_str(), s.out_temporary ? "true" : "false", o.writer_mbps, u(o.preview_every), u(o.corrupt_every),
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
  std::printf("  \"consumers\": %s,\n", consumers_json(s.pipeline->counts()).c_str());
  for_each_consumer(s, [](const Stage& stage, const daq_pool::SubscriberStats& c) {
    if (const std::string j = stage.json(c); !j.empty()) std::printf("  %s,\n", j.c_str());
  });
  std::printf("  \"first_failure\": %s,\n",
              s.integrity_failures == 0
                  ? "null"
                  : json_string("frame " + std::to_string(s.first_failure_frame) + ": " +
                                (s.first_failure_reason != nullptr ? s.first_failure_reason : "?"))
                        .c_str());
  std::printf(
      "  \"source\": %s,\n  \"camera\": %s,\n  \"verification\": %s,\n  \"copies_per_frame\": %llu,\n"
      "  \"frames_lost_to_underruns\": %llu,\n  \"failed_buffers\": %llu,\n  \"frames_unchecked\": %llu,\n"
      "  \"library_allocations\": %s,\n  \"camera_error\": %s,\n",
      json_string(s.source).c_str(), json_string(s.camera).c_str(), json_string(s.verification).c_str(),
      u(s.copies_per_frame), u(s.source == "sim" ? 0 : s.overruns), u(s.failed_buffers), u(s.unchecked),
      s.allocs_counted ? std::to_string(s.library_allocs).c_str() : "null",
      s.camera_error.empty() ? "null" : json_string(s.camera_error).c_str());
  std::printf("  \"frames_recorded\": %llu,\n  \"recording_complete\": %s,\n", u(s.recorded),
              s.recording_incomplete ? "false" : "true");
  std::printf("  \"exit_code\": %d\n}\n", s.exit_code);
  std::fflush(stdout);
}

}  // namespace frame_pipeline
