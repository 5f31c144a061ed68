// Command-line flags of the frame-pipeline demo: defaults, ranges, parsing.
#pragma once

#include <daq_pool/broadcast.hpp>

#include <unistd.h>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace frame_pipeline {

/// What the acquisition thread does when no pool buffer frees up within
/// `--timeout`.
enum class OnExhausted { fallback, drop, block };

/// The name `--on-exhausted` accepts for `policy`.
inline const char* to_string(OnExhausted policy) noexcept {
  switch (policy) {
    case OnExhausted::fallback:
      return "fallback";
    case OnExhausted::drop:
      return "drop";
    case OnExhausted::block:
      return "block";
  }
  return "?";
}

/// How --publish sends frames: PUSH (each frame to one receiver, dealt out
/// in turn) or PUB (every frame to every subscriber).
enum class PublishMode { push, pub };

/// What --publish does with a frame ZeroMQ has no room for (its budget of
/// buffers held, or every receiver's high-water mark, full): drop it (counted
/// by cause; the camera never waits for the network) or wait (the old
/// backpressure: the publisher's queue backs up to the pool, and
/// --on-exhausted decides).
enum class PublishFull { drop, wait };

/// The name `--publish-mode` accepts for `mode`.
inline const char* to_string(PublishMode mode) noexcept { return mode == PublishMode::push ? "push" : "pub"; }

/// Slots in the simulated SDK's circular buffer (PVCAM's CIRC_NO_OVERWRITE
/// ring in the seed's integration notes).
inline constexpr std::size_t sdk_ring_slots = 20;

/// A --policy=CONSUMER:POLICY[:CAPACITY] flag: that consumer's queue.
struct PolicyOverride {
  std::string consumer;
  daq_pool::OnFull on_full = daq_pool::OnFull::block;
  std::size_t capacity = 0;  ///< 0: the consumer's default
};

/// Every flag's value, with its default.
struct Options {
  double duration_s = 5.0;                           ///< --duration: stop after this long
  bool duration_given = false;                       ///< --duration was on the command line
  std::uint64_t frames = 0;                          ///< --frames: stop after this many exposures (0: no limit)
  std::size_t frame_bytes = 8u << 20;                ///< --frame-bytes
  double fps = 100.0;                                ///< --fps
  std::size_t pool = 30;                             ///< --pool
  std::uint64_t timeout_ms = 50;                     ///< --timeout
  OnExhausted on_exhausted = OnExhausted::fallback;  ///< --on-exhausted
  std::string out;                                   ///< --out (empty: a temporary file, unlinked once open)
  double writer_mbps = 0.0;                          ///< --writer-mbps (0: unthrottled)
  std::uint64_t preview_every = 10;                  ///< --preview-every
  std::uint64_t corrupt_every = 0;                   ///< --corrupt-every (0: never)
  std::string publish;                               ///< --publish: ZeroMQ endpoint to bind (empty: off)
  PublishMode publish_mode = PublishMode::push;      ///< --publish-mode
  std::uint64_t publish_hwm = 10;                    ///< --publish-hwm: ZMQ_SNDHWM, in frames
  std::uint64_t publish_budget = 0;                  ///< --publish-budget: frames ZeroMQ may hold (0: pool / 3)
  PublishFull publish_full = PublishFull::drop;      ///< --publish-full
  std::string publish_key;                           ///< --publish-key: CURVE secret key file (empty: plain TCP)
  std::string publish_allow;                         ///< --publish-allow: allowed client public keys
  std::string serve;                                 ///< --serve=PATH: publish frames to other processes (shm)
  std::string encode;                                ///< --encode: FFV1 file (empty: no encoder)
  bool json = false;                                 ///< --json
  bool quiet = false;                                ///< --quiet
  bool help = false;                                 ///< --help
  std::string source = "sim";                        ///< --source: sim, aravis or aravis:<device>
  std::vector<PolicyOverride> policies;              ///< --policy (repeatable)
};

/// True if --source names an Aravis camera (aravis or aravis:<device>).
inline bool is_aravis_source(const std::string& source) { return source.rfind("aravis", 0) == 0; }

// Ranges, shared by the parser, the usage text and the error messages.
inline constexpr double max_duration_s = 86400.0;
inline constexpr std::uint64_t max_frames = 1'000'000'000'000ull;
inline constexpr std::size_t min_frame_bytes = 64;  // room for the 32-byte frame header and some payload
inline constexpr std::size_t max_frame_bytes = std::size_t{1} << 30;
inline constexpr double max_fps = 10000.0;
inline constexpr std::size_t max_pool = 4096;
inline constexpr std::uint64_t max_timeout_ms = 60'000;
inline constexpr double max_writer_mbps = 1e6;
inline constexpr std::uint64_t max_preview_every = 1'000'000'000ull;
inline constexpr std::uint64_t max_publish_hwm = 1'000'000ull;

/// The --help text.
inline std::string usage_text(const char* argv0) {
  std::string s = "usage: ";
  s += argv0;
  s += R"( [flags]

Simulates a camera acquisition end to end: a sensor thread fills a 20-slot
no-overwrite SDK ring; an acquisition thread copies each frame into a
daq_pool::BufferPool buffer, freezes it into a shared Bytes view, releases the
SDK slot and publishes the view on a daq_pool::Broadcast: the writer, the
preview, the verifier (and the publisher, server, encoder when asked) are
its subscribers, each on its own thread with its own queue and policy.

flags (--flag=value or --flag value)                                  default
  --duration=SECONDS     run time, in (0, 86400]                         5
  --frames=N             stop after N camera exposures, in [1, 1e12];    none
                         alone, it lifts the --duration limit
  --frame-bytes=BYTES    frame size, in [64, 1G]; K, M, G are binary     8M
                         (pool + SDK ring + queued fallbacks must fit
                         in half of this machine's memory)
  --fps=RATE             camera frame rate, in (0, 10000]                100
  --pool=N               BufferPool buffers, in [1, 4096]                30
  --timeout=MS           longest wait for a pool buffer before           50
                         --on-exhausted applies, in [0, 60000]
  --on-exhausted=POLICY  fallback: copy the frame to the heap            fallback
                                   (Bytes::copy_from, counted)
                         drop:     drop the frame (counted)
                         block:    keep waiting (the SDK ring may overrun)
  --out=PATH             record every frame: a .dqr file (O_DIRECT,      a temp file
                         docs/recording.md) or, for *.h5 / *.hdf5,
                         HDF5 (/dev/null allowed). The default file goes
                         in $TMPDIR, else /var/tmp, else /tmp; it
                         reuses 256 MiB of records and is unlinked
                         once open (even a killed run leaves nothing)
  --writer-mbps=MB/S     throttle the writer to this many 10^6 bytes/s   0 (unthrottled)
                         while acquiring (a slow disk, to show
                         backpressure), in [0, 1e6]
  --preview-every=N      the preview analyses every Nth frame,           10
                         in [1, 1e9]
  --corrupt-every=N      testing: flip a byte in every Nth frame in the  0 (never)
                         SDK ring; the verifier must fail the run
                         (exit 1), in [0, 1e9]
  --source=SOURCE        sim: the simulated camera above                 sim
                         aravis: Aravis's in-process fake camera
                         (Fake_1), written straight into the pool:
                         no copy; aravis:<device>: the camera with that
                         Aravis device id or IP address (e.g. aravis:
                         127.0.0.1, arv-fake-gv-camera-0.8 -i 127.0.0.1).
                         The fake camera's frames are sized from
                         --frame-bytes and --fps and verified pixel by
                         pixel; --timeout and --on-exhausted apply to sim
  --publish=ENDPOINT     also send every frame over ZeroMQ, zero-copy:   off
                         bind tcp://HOST:PORT (PORT * picks a free
                         port, printed at start) or ipc://PATH; read it
                         with frame_receiver or receive_frames.py
  --publish-mode=MODE    push: each frame to one receiver, in turn       push
                         pub:  every frame to every subscriber
  --publish-hwm=N        ZeroMQ send high-water mark in frames,          10
                         in [0, 1000000] (0: unlimited)
  --publish-budget=N     at most N frames (pool buffers) held by         pool / 3
                         ZeroMQ at once, all receivers together,
                         in [1, 4096]
  --publish-full=WHAT    a frame ZeroMQ has no room for (budget or       drop
                         high-water marks full): drop (counted; the
                         camera never waits for the network) or wait
                         (backs up to the pool; --on-exhausted decides)
  --publish-key=FILE     CURVE: this sender's secret key file            off (plain TCP)
                         (NAME.key_secret, ZeroMQ certificate format;
                         make one with frame_receiver --gen-key=NAME):
                         encrypted, and only receivers whose public key
                         is in --publish-allow get frames
  --publish-allow=PATH   the receivers' public keys: a NAME.key file, a  (required with
                         directory of *.key files, or a file of keys,    --publish-key)
                         one per line
  --serve=PATH           publish every frame to other processes through  off
                         a daq_pool::shm::Server at the Unix socket PATH
                         (shared memory, no copy; the pool is memfd-
                         backed); clients: shm_subscriber, shm_viewer.py
  --encode=PATH          also encode the frames losslessly (FFV1,        off
                         zero copy) into PATH, a .mkv, .nut or .avi
                         file; each frame is a 1024-pixel-wide GRAY8
                         picture, one row per 1024 bytes; frames that
                         arrive while it is busy are skipped (counted)
                         (needs a build with FFmpeg; --frame-bytes of
                         at least 16K)
  --policy=C:P[:N]       consumer C's queue: policy P (block: the        see text
                         acquisition waits for room; drop_newest: C
                         skips the frame; keep_latest: C's oldest
                         queued frame is dropped), capacity N in
                         [1, 1048576]; repeatable. Consumers (default):
                         writer, verifier, publisher, server: block,
                         pool + 20; preview: keep_latest, 1; encoder:
                         drop_newest, 4. Each one's counts are in the
                         summary
  --json                 print the summary as JSON on stdout             off
                         (progress then goes to stderr)
  --quiet                no progress lines                               off
  --help, -h             this text

exit codes: 0 success; 1 a failure during the run: a frame failed
verification, the writer or the encoder lost frames, or the camera was lost
(--source=aravis: told at once on stderr; Aravis's teardown of a lost GigE
Vision camera then takes up to ~10 s, counted in the summary's time);
2 bad arguments or setup failure.
Ctrl-C (SIGINT) or SIGTERM stops cleanly: acquisition stops, consumers drain,
the summary prints. The temporary file is unlinked as soon as the recorder
has it open, so not even SIGKILL leaves it behind.
)";
  return s;
}

/// A rejected command line: the message names the flag and its allowed range.
struct ParseError {
  std::string message;
};

namespace detail {

/// Parses a whole string as a finite double; nothing on any trailing junk.
inline std::optional<double> parse_double(const std::string& text) {
  if (text.empty()) return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || errno == ERANGE || !std::isfinite(v)) return std::nullopt;
  return v;
}

/// Parses a whole string as a non-negative integer, optionally with a binary
/// K/M/G suffix when `suffixes` is set; nothing on junk, sign or overflow.
inline std::optional<std::uint64_t> parse_uint(const std::string& text, bool suffixes) {
  if (text.empty() || text[0] < '0' || text[0] > '9') return std::nullopt;  // rejects '-' and '+'
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (errno == ERANGE) return std::nullopt;
  std::string_view rest(end);
  unsigned shift = 0;
  if (suffixes && !rest.empty()) {
    const char unit = static_cast<char>(rest[0] & ~0x20);  // upper-case
    shift = unit == 'K' ? 10 : unit == 'M' ? 20 : unit == 'G' ? 30 : 0;
    if (shift == 0) return std::nullopt;
    rest.remove_prefix(1);
    if (rest == "iB" || rest == "IB" || rest == "ib" || rest == "B" || rest == "b") rest = {};
  }
  if (!rest.empty()) return std::nullopt;
  if (shift != 0 && v > (~0ull >> shift)) return std::nullopt;
  return static_cast<std::uint64_t>(v) << shift;
}

}  // namespace detail

/// Parses "consumer:policy[:capacity]"; nothing if malformed.
inline std::optional<PolicyOverride> parse_policy(const std::string& text) {
  const auto c1 = text.find(':');
  if (c1 == std::string::npos || c1 == 0) return std::nullopt;
  PolicyOverride p;
  p.consumer = text.substr(0, c1);
  const auto c2 = text.find(':', c1 + 1);
  const std::string policy = text.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  if (policy == "block") {
    p.on_full = daq_pool::OnFull::block;
  } else if (policy == "drop_newest") {
    p.on_full = daq_pool::OnFull::drop_newest;
  } else if (policy == "keep_latest") {
    p.on_full = daq_pool::OnFull::keep_latest;
  } else {
    return std::nullopt;
  }
  if (c2 != std::string::npos) {
    const auto n = detail::parse_uint(text.substr(c2 + 1), false);
    if (!n || *n < 1 || *n > daq_pool::Broadcast::max_capacity) return std::nullopt;
    p.capacity = static_cast<std::size_t>(*n);
  }
  return p;
}

/// Parses argv into Options, or explains what is wrong with it.
inline std::optional<ParseError> parse_args(int argc, char** argv, Options& opt) {
  auto error = [](const std::string& flag, const std::string& value, const std::string& allowed) {
    return ParseError{flag + ": got '" + value + "'; allowed: " + allowed};
  };
  std::string publish_tuned;  // a --publish-* flag given, which needs --publish
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      opt.help = true;
      continue;
    }
    if (arg == "--json") {
      opt.json = true;
      continue;
    }
    if (arg == "--quiet") {
      opt.quiet = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return ParseError{"unexpected argument '" + arg + "' (flags start with --)"};
    std::string flag = arg, value;
    bool has_value = false;
    if (const auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      has_value = true;
    }
    // One flag per line, so that each integration adds its own.
    // clang-format off
    static constexpr std::string_view valued[] = {
        "--duration",
        "--frames",
        "--frame-bytes",
        "--fps",
        "--pool",
        "--timeout",
        "--on-exhausted",
        "--out",
        "--writer-mbps",
        "--preview-every",
        "--corrupt-every",
        "--source",
        "--publish",
        "--publish-mode",
        "--publish-hwm",
        "--publish-budget",
        "--publish-full",
        "--publish-key",
        "--publish-allow",
        "--serve",
        "--encode",
        "--policy",
    };
    // clang-format on
    bool known = false;
    for (std::string_view v : valued) known = known || flag == v;
    if (!known) {
      if (flag == "--json" || flag == "--quiet" || flag == "--help") return ParseError{flag + " takes no value"};
      return ParseError{"unknown flag '" + flag + "' (see --help)"};
    }
    if (!has_value) {
      if (i + 1 >= argc) return ParseError{flag + ": missing value (see --help)"};
      value = argv[++i];
    }

    if (flag == "--duration") {
      const auto v = detail::parse_double(value);
      if (!v || *v <= 0 || *v > max_duration_s) return error(flag, value, "seconds in (0, 86400]");
      opt.duration_s = *v;
      opt.duration_given = true;
    } else if (flag == "--frames") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v < 1 || *v > max_frames) return error(flag, value, "an integer in [1, 1000000000000]");
      opt.frames = *v;
    } else if (flag == "--frame-bytes") {
      const auto v = detail::parse_uint(value, true);
      if (!v || *v < min_frame_bytes || *v > max_frame_bytes)
        return error(flag, value, "bytes in [64, 1G] (1G = 1073741824; K, M, G suffixes are binary)");
      opt.frame_bytes = static_cast<std::size_t>(*v);
    } else if (flag == "--fps") {
      const auto v = detail::parse_double(value);
      if (!v || *v <= 0 || *v > max_fps) return error(flag, value, "frames per second in (0, 10000]");
      opt.fps = *v;
    } else if (flag == "--pool") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v < 1 || *v > max_pool) return error(flag, value, "an integer in [1, 4096]");
      opt.pool = static_cast<std::size_t>(*v);
    } else if (flag == "--timeout") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v > max_timeout_ms) return error(flag, value, "milliseconds, an integer in [0, 60000]");
      opt.timeout_ms = *v;
    } else if (flag == "--on-exhausted") {
      if (value == "fallback") {
        opt.on_exhausted = OnExhausted::fallback;
      } else if (value == "drop") {
        opt.on_exhausted = OnExhausted::drop;
      } else if (value == "block") {
        opt.on_exhausted = OnExhausted::block;
      } else {
        return error(flag, value, "one of fallback, drop, block");
      }
    } else if (flag == "--out") {
      if (value.empty()) return error(flag, value, "a writable file path (or /dev/null)");
      opt.out = value;
    } else if (flag == "--writer-mbps") {
      const auto v = detail::parse_double(value);
      if (!v || *v < 0 || *v > max_writer_mbps) return error(flag, value, "MB/s in [0, 1000000] (0 = unthrottled)");
      opt.writer_mbps = *v;
    } else if (flag == "--preview-every") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v < 1 || *v > max_preview_every) return error(flag, value, "an integer in [1, 1000000000]");
      opt.preview_every = *v;
    } else if (flag == "--serve") {
      if (value.empty()) return error(flag, value, "a Unix socket path in a directory only you may enter");
      opt.serve = value;
    } else if (flag == "--source") {
      if (value != "sim" && value != "aravis" && (value.rfind("aravis:", 0) != 0 || value.size() == 7))
        return error(flag, value, "sim, aravis or aravis:<device> (an Aravis device id or IP address)");
#if !defined(FRAME_PIPELINE_HAVE_ARAVIS)
      if (value != "sim")
        return error(flag, value,
                     "sim (this frame_pipeline was built without Aravis: install libaravis-dev libusb-1.0-0-dev "
                     "and reconfigure)");
#endif
      opt.source = value;
    } else if (flag == "--policy") {
      const auto parsed = parse_policy(value);
      if (!parsed)
        return error(flag, value,
                     "CONSUMER:POLICY[:CAPACITY], POLICY one of block, drop_newest, keep_latest, CAPACITY in "
                     "[1, 1048576] (e.g. writer:drop_newest:8)");
      opt.policies.push_back(*parsed);
    } else if (flag == "--encode") {
      if (value.empty()) return error(flag, value, "a file path ending in .mkv, .nut or .avi");
      opt.encode = value;
    } else if (flag == "--corrupt-every") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v > max_preview_every) return error(flag, value, "an integer in [0, 1000000000] (0 = never)");
      opt.corrupt_every = *v;
    } else if (flag == "--publish") {
#if FRAME_PIPELINE_HAVE_ZMQ
      if (value.empty()) return error(flag, value, "a ZeroMQ endpoint to bind: tcp://HOST:PORT or ipc://PATH");
      opt.publish = value;
#else
      return ParseError{flag + ": this frame_pipeline was built without ZeroMQ (install libzmq3-dev and rebuild)"};
#endif
    } else if (flag == "--publish-mode") {
      if (value == "push") {
        opt.publish_mode = PublishMode::push;
      } else if (value == "pub") {
        opt.publish_mode = PublishMode::pub;
      } else {
        return error(flag, value, "push or pub");
      }
      publish_tuned = flag;
    } else if (flag == "--publish-hwm") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v > max_publish_hwm) return error(flag, value, "frames, an integer in [0, 1000000] (0 = unlimited)");
      opt.publish_hwm = *v;
      publish_tuned = flag;
    } else if (flag == "--publish-budget") {
      const auto v = detail::parse_uint(value, false);
      if (!v || *v < 1 || *v > max_pool) return error(flag, value, "frames, an integer in [1, 4096]");
      opt.publish_budget = *v;
      publish_tuned = flag;
    } else if (flag == "--publish-full") {
      if (value != "drop" && value != "wait") return error(flag, value, "drop or wait");
      opt.publish_full = value == "drop" ? PublishFull::drop : PublishFull::wait;
      publish_tuned = flag;
    } else if (flag == "--publish-key" || flag == "--publish-allow") {
      if (value.empty()) return error(flag, value, "a file name");
      (flag == "--publish-key" ? opt.publish_key : opt.publish_allow) = value;
      publish_tuned = flag;
    }
  }
  if (opt.publish_key.empty() != opt.publish_allow.empty())
    return ParseError{std::string(opt.publish_key.empty() ? "--publish-allow" : "--publish-key") + " given without " +
                      (opt.publish_key.empty() ? "--publish-key" : "--publish-allow") +
                      "; allowed: both (CURVE: this sender's secret key file and the receivers' public keys) or "
                      "neither (plain TCP)"};
  if (!publish_tuned.empty() && opt.publish.empty())
    return ParseError{publish_tuned + ": given without --publish; allowed: only together with --publish=ENDPOINT"};
  if (is_aravis_source(opt.source) && opt.corrupt_every != 0)
    return ParseError{"--corrupt-every: got '" + std::to_string(opt.corrupt_every) + "' with --source=" + opt.source +
                      "; allowed: 0 (corruption is injected into the simulated SDK ring, --source=sim only)"};
  return std::nullopt;
}

/// Physical memory of this machine in bytes (0 if unknown).
inline std::uint64_t physical_memory_bytes() noexcept {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  if (pages <= 0 || page <= 0) return 0;
  return static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page);
}

/// Rejects flag combinations that are each in range but absurd together:
/// the pool, the SDK ring and (with --on-exhausted=fallback) the heap frames
/// the writer's queue may hold must fit in half of physical memory.
inline std::optional<ParseError> check_memory(const Options& opt) {
  const std::uint64_t ram = physical_memory_bytes();
  const bool sim = !is_aravis_source(opt.source);  // a camera writes into the pool itself: no ring, no fallback
  std::uint64_t frames = opt.pool + (sim ? sdk_ring_slots : 0);
  if (sim && opt.on_exhausted == OnExhausted::fallback) frames += opt.pool + sdk_ring_slots;  // queued heap copies
  const std::uint64_t need = frames * opt.frame_bytes;
  if (ram != 0 && need > ram / 2) {
    return ParseError{"--frame-bytes=" + std::to_string(opt.frame_bytes) + " with --pool=" + std::to_string(opt.pool) +
                      " may need " + std::to_string(need >> 20) + " MiB (pool, " + std::to_string(sdk_ring_slots) +
                      "-slot SDK ring" + (opt.on_exhausted == OnExhausted::fallback ? ", queued heap fallbacks" : "") +
                      "); allowed: at most half of this machine's " + std::to_string(ram >> 20) + " MiB"};
  }
  return std::nullopt;
}

}  // namespace frame_pipeline
