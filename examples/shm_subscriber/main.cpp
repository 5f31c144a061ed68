// shm_subscriber: the C++ client of a daq_pool::shm::Server (for example
// `frame_pipeline --serve=PATH`). Receives every frame as a read-only Bytes
// view of the server's shared memory (no copy), verifies it against the
// demo's frame pattern, holds it for --hold-ms (a slow consumer), checks its
// bytes again just before letting go (so a buffer reused by the server while
// this process still reads it is caught), and prints a summary.
//
//   shm_subscriber --path=/run/user/1000/daq/frames.sock --hold-ms=20
//
// Exit codes: 0 every frame verified, in place; 1 a frame failed
// verification or was not a view of the shared memory; 2 bad arguments, no
// server, or a protocol error.
#include "alloc_hook.hpp"  // counts this process's allocations: include in this one TU only
#include "cli.hpp"         // frame_pipeline::detail::parse_uint
#include "frame_pattern.hpp"

#include <daq_pool/bytes.hpp>
#include <daq_pool/shm.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

/// Frames received before allocations are counted: the first receive maps
/// pages and may grow stdio's buffer; the steady state must allocate nothing.
constexpr std::uint64_t warmup_frames = 10;

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int /*sig*/) { g_stop.store(true); }

struct Options {
  std::string path;
  std::uint64_t frames = 0;  // 0: until the end of the stream
  std::uint64_t hold_ms = 0;
  std::uint64_t keep = 1;
  std::uint64_t connect_timeout_s = 5;
  std::uint64_t idle_timeout_s = 0;  // 0: wait for frames as long as the server lives
  bool stable_only = false;          // --verify=stable: any source, bytes unchanged while held
  bool json = false;
  bool quiet = false;
  bool allow_empty = false;  // --allow-empty: receiving no frame is not a failure
  bool help = false;
};

const char* const usage = R"(usage: shm_subscriber --path=PATH [flags]

Connects to a daq_pool::shm::Server at PATH (e.g. frame_pipeline --serve=PATH),
receives every frame as a read-only view of the server's shared memory (no
copy), verifies it (the frame_pipeline pattern, or with --verify=stable any
frames), holds it, re-checks it and lets go (which tells the server it is done).

flags (--flag=value or --flag value)                                 default
  --path=PATH            the server's Unix socket                       (required)
  --frames=N             stop after N frames, in [0, 1e12]; 0: until     0
                         the server ends the stream
  --hold-ms=MS           hold each frame this long (a slow consumer),    0
                         in [0, 60000]
  --keep=N               frames held at once, the newest N, in           1
                         [1, 4096] (at most the server's max_in_flight)
  --connect-timeout=S    wait this long for the server to appear,        5
                         in [0, 3600]
  --idle-timeout=S       give up after S seconds without a frame,        0 (never)
                         in [0, 3600]
  --verify=WHAT          pattern: the frame_pipeline pattern, checked    pattern
                                  on receipt and again before done
                         stable:  any frames (e.g. frame_pipeline
                                  --source=aravis): a checksum on
                                  receipt must match before done
  --json                 the summary as JSON on stdout                   off
  --allow-empty          receiving no frame at all is not a failure      off
  --quiet                no progress lines                               off
  --help, -h             this text

exit codes: 0 every frame verified in place; 1 a frame failed verification
or was not a view of the shared memory; 2 bad arguments, no server, or a
protocol error (a refusal says why); 3 no frame received at all (unless
--allow-empty).
)";

std::optional<std::string> parse_args(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      opt.help = true;
      continue;
    }
    if (arg == "--json" || arg == "--quiet" || arg == "--allow-empty") {
      (arg == "--json" ? opt.json : arg == "--quiet" ? opt.quiet : opt.allow_empty) = true;
      continue;
    }
    const auto eq = arg.find('=');
    const std::string flag = arg.substr(0, eq);
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return flag + ": missing value (see --help)";
    }
    struct Ranged {
      const char* name;
      std::uint64_t* target;
      std::uint64_t lo, hi;
    };
    const Ranged ranged[] = {{"--frames", &opt.frames, 0, 1'000'000'000'000ull},
                             {"--hold-ms", &opt.hold_ms, 0, 60'000},
                             {"--keep", &opt.keep, 1, 4096},
                             {"--connect-timeout", &opt.connect_timeout_s, 0, 3600},
                             {"--idle-timeout", &opt.idle_timeout_s, 0, 3600}};
    bool known = false;
    for (const Ranged& r : ranged) {
      if (flag != r.name) continue;
      known = true;
      const auto v = frame_pipeline::detail::parse_uint(value, false);
      if (!v || *v < r.lo || *v > r.hi) {
        std::string message = flag;
        message += ": got '" + value + "'; allowed: an integer in [";
        message += std::to_string(r.lo) + ", " + std::to_string(r.hi) + "]";
        return message;
      }
      *r.target = *v;
    }
    if (flag == "--verify") {
      if (value != "pattern" && value != "stable") return "--verify: got '" + value + "'; allowed: pattern, stable";
      opt.stable_only = value == "stable";
      known = true;
    }
    if (flag == "--path") {
      if (value.empty()) return "--path: got ''; allowed: the server's socket path";
      opt.path = value;
      known = true;
    }
    if (!known) return "unknown flag '" + flag + "' (see --help)";
  }
  if (!opt.help && opt.path.empty()) return "--path: missing; allowed: the server's socket path (see --help)";
  return std::nullopt;
}

/// A fixed ring of the frames held right now (allocated once).
class HeldFrames {
 public:
  explicit HeldFrames(std::size_t capacity) : ring_(capacity) {}
  bool full() const noexcept { return count_ == ring_.size(); }
  bool empty() const noexcept { return count_ == 0; }
  /// A frame held, with the checksum of its bytes when it arrived.
  struct Held {
    daq_pool::Bytes frame;
    std::uint64_t checksum = 0;
  };
  void push(daq_pool::Bytes frame, std::uint64_t checksum) noexcept {
    ring_[(head_ + count_) % ring_.size()] = Held{std::move(frame), checksum};
    ++count_;
  }
  Held pop() noexcept {
    Held oldest = std::move(ring_[head_]);
    head_ = (head_ + 1) % ring_.size();
    --count_;
    return oldest;
  }

 private:
  std::vector<Held> ring_;
  std::size_t head_ = 0, count_ = 0;
};

struct Summary {
  std::uint64_t frames = 0, verified = 0, failures = 0, recheck_failures = 0, not_in_place = 0;
  std::uint64_t missed = 0, released = 0, revoked = 0, bad_messages = 0, held_at_end = 0, changed_after_end = 0;
  std::uint64_t bytes = 0;
  std::string end_reason;
  std::string first_failure;
  double elapsed_s = 0;
  const void* map_begin = nullptr;
  std::size_t map_size = 0;
  const void* first_view = nullptr;
  std::uint32_t max_in_flight = 0;
  std::uint64_t subscriber_id = 0;
  bool allocs_counted = false;
  std::uint64_t allocs_after_warmup = 0;
  int exit_code = 0;
};

/// FNV-1a over every 8th 64-bit word (and the tail): what --verify=stable
/// compares between receipt and done. A reused buffer holds another frame,
/// which changes far more than one word in eight. Never allocates.
std::uint64_t sampled_checksum(std::span<const std::byte> bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const auto mix = [&h](std::uint64_t w) noexcept { h = (h ^ w) * 0x100000001b3ull; };
  std::size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 64) {
    std::uint64_t w = 0;
    std::memcpy(&w, bytes.data() + i, 8);
    mix(w);
  }
  for (std::size_t t = bytes.size() - bytes.size() % 8; t < bytes.size(); ++t)
    mix(std::to_integer<std::uint64_t>(bytes[t]));
  return h ^ bytes.size();
}

/// True if the server has revoked this subscriber (a lease ran out, or it
/// stopped while we held frames): the frames we hold may then be reused, so
/// a change in them is the revocation's doing, not corruption. Called after
/// reading a frame's bytes: the fence orders those reads before the state's
/// load (as Frame::still_valid() does). Never allocates; no system call.
bool revoked_since_read(const daq_pool::shm::Subscriber& sub) noexcept {
#if defined(__SANITIZE_THREAD__)
  std::atomic_signal_fence(std::memory_order_acquire);  // GCC's TSan has no thread fences
#else
  std::atomic_thread_fence(std::memory_order_acquire);
#endif
  return sub.stats().revoked;
}

/// Checks a held frame again (its bytes must not have changed while held:
/// the pattern, or with --verify=stable the checksum it had on receipt),
/// then drops it: the last drop releases it. After the end of the stream
/// (`after_end`) or once the server revoked us, a change is only counted
/// apart (changed_after_end): the server no longer holds the frame for us,
/// and a producer still running may reuse its buffer.
void recheck_and_drop(HeldFrames::Held&& held, const Options& opt, Summary& s, const daq_pool::shm::Subscriber& sub,
                      bool after_end = false) {
  const daq_pool::Bytes& frame = held.frame;
  std::string fault;
  if (opt.stable_only) {
    if (sampled_checksum(frame.span()) != held.checksum) fault = "its checksum changed";
  } else {
    const frame_pipeline::FrameCheck c = frame_pipeline::verify_frame(frame.span(), frame.size(), false, 0);
    if (c.fault != frame_pipeline::FrameFault::ok)
      fault = "frame " + std::to_string(c.frame_number) + ": " + to_string(c.fault);
  }
  if (!fault.empty() && (after_end || revoked_since_read(sub))) {
    ++s.changed_after_end;
  } else if (!fault.empty()) {
    if (s.recheck_failures++ == 0 && s.first_failure.empty()) s.first_failure = "changed while held: " + fault;
  }
  held.frame.reset();
}

int run(const Options& opt) {
  std::optional<daq_pool::shm::Subscriber> sub;
  try {
    sub.emplace(opt.path, std::chrono::seconds(opt.connect_timeout_s));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shm_subscriber: --path=%s: %s\n", opt.path.c_str(), e.what());
    return 2;
  }
  const daq_pool::shm::protocol::Hello& geometry = sub->geometry();
  const std::span<const std::byte> memory = sub->memory();
  // Holding more frames than the server lets us have would wait forever.
  const std::size_t keep = static_cast<std::size_t>(std::min<std::uint64_t>(opt.keep, geometry.max_in_flight));
  HeldFrames held(keep);
  std::FILE* info = opt.json ? stderr : stdout;
  if (!opt.quiet) {
    std::fprintf(info,
                 "shm_subscriber: connected to %s as subscriber %llu: %u buffers of %llu bytes, %llu bytes mapped "
                 "read-only at %p, up to %u frames in flight, holding %zu for %llu ms\n",
                 opt.path.c_str(), static_cast<unsigned long long>(geometry.subscriber_id), geometry.buffer_count,
                 static_cast<unsigned long long>(geometry.buffer_capacity),
                 static_cast<unsigned long long>(geometry.region_size), static_cast<const void*>(memory.data()),
                 geometry.max_in_flight, keep, static_cast<unsigned long long>(opt.hold_ms));
    std::fflush(info);
  }

  Summary s;
  s.map_begin = memory.data();
  s.map_size = memory.size();
  s.max_in_flight = geometry.max_in_flight;
  s.subscriber_id = geometry.subscriber_id;
  bool has_previous = false;
  std::uint64_t previous = 0;
  std::uint64_t allocs_at_warmup = 0;
  const auto start = Clock::now();
  auto last_frame = start;
  auto next_print = start + std::chrono::seconds(1);
  for (;;) {
    if (g_stop.load()) {
      s.end_reason = "signal";
      break;
    }
    if (opt.frames != 0 && s.frames >= opt.frames) {
      s.end_reason = "frames";
      break;
    }
    std::optional<daq_pool::shm::Frame> f = sub->receive_for(std::chrono::milliseconds(100));
    const auto now = Clock::now();
    if (!f) {
      if (sub->end_of_stream()) {
        s.end_reason = "end_of_stream";
        break;
      }
      if (opt.idle_timeout_s != 0 && now - last_frame > std::chrono::seconds(opt.idle_timeout_s)) {
        s.end_reason = "idle_timeout";
        break;
      }
      continue;
    }
    last_frame = now;
    ++s.frames;
    s.bytes += f->bytes.size();
    const std::byte* at = f->bytes.data();
    // Zero copy: the view is the server's bytes, in this process's mapping.
    if (at != memory.data() + f->offset || f->offset + f->bytes.size() > memory.size()) ++s.not_in_place;
    if (s.first_view == nullptr) s.first_view = at;
    const frame_pipeline::FrameCheck c =
        opt.stable_only ? frame_pipeline::FrameCheck{}
                        : frame_pipeline::verify_frame(f->bytes.span(), f->bytes.size(), has_previous, previous);
    const std::uint64_t checksum = opt.stable_only ? sampled_checksum(f->bytes.span()) : 0;
    if (c.fault == frame_pipeline::FrameFault::ok) {
      ++s.verified;
      has_previous = true;
      previous = c.frame_number;
    } else if (!f->still_valid()) {
      ++s.changed_after_end;  // revoked before we read it (we were stopped): not corruption, counted apart
    } else if (s.failures++ == 0) {
      s.first_failure = "frame " + std::to_string(c.frame_number) + ": " + to_string(c.fault);
    }
    if (s.frames == warmup_frames) allocs_at_warmup = alloc_hook::unexpected();
    held.push(std::move(f->bytes), checksum);
    if (opt.hold_ms != 0) std::this_thread::sleep_for(std::chrono::milliseconds(opt.hold_ms));
    while (held.full()) recheck_and_drop(held.pop(), opt, s, *sub);
    if (!opt.quiet && now >= next_print) {
      std::fprintf(info, "%6.1f s  %llu frames  %llu verified  %llu missed\n",
                   std::chrono::duration<double>(now - start).count(), static_cast<unsigned long long>(s.frames),
                   static_cast<unsigned long long>(s.verified), static_cast<unsigned long long>(sub->stats().missed));
      std::fflush(info);
      next_print += std::chrono::seconds(1);
    }
  }
  s.elapsed_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (alloc_hook::enabled && s.frames > warmup_frames) {
    s.allocs_counted = true;
    s.allocs_after_warmup = alloc_hook::unexpected() - allocs_at_warmup;
  }
  // Frames still held when the stream ended stay readable (the mapping
  // outlives the connection): check them once more, then let go.
  const bool ended = s.end_reason == "end_of_stream";
  while (!held.empty()) {
    ++s.held_at_end;
    recheck_and_drop(held.pop(), opt, s, *sub, ended);
  }
  const daq_pool::shm::SubscriberCounters counters = sub->stats();
  s.missed = counters.missed;
  s.released = counters.released;
  s.revoked = counters.revoked ? 1 : 0;
  s.bad_messages = counters.bad_messages;
  const bool failed = s.failures != 0 || s.recheck_failures != 0 || s.not_in_place != 0 ||
                      (s.allocs_counted && s.allocs_after_warmup != 0);
  s.exit_code = failed ? 1 : (s.frames == 0 && !opt.allow_empty) ? 3 : 0;

  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  const double fps = s.elapsed_s > 0 ? static_cast<double>(s.frames) / s.elapsed_s : 0.0;
  if (opt.json) {
    std::printf(
        "{\n  \"path\": \"%s\",\n  \"verify\": \"%s\",\n  \"subscriber_id\": %llu,\n  \"end_reason\": \"%s\",\n  "
        "\"elapsed_s\": %.3f,\n"
        "  \"frames\": %llu,\n  \"verified\": %llu,\n  \"integrity_failures\": %llu,\n  \"recheck_failures\": %llu,\n"
        "  \"not_in_place\": %llu,\n  \"zero_copy\": %s,\n  \"missed\": %llu,\n  \"held_at_end\": %llu,\n  "
        "\"changed_after_end\": %llu,\n"
        "  \"released\": %llu,\n  \"revoked\": %s,\n  \"bad_messages\": %llu,\n  \"bytes\": %llu,\n"
        "  \"frames_per_s\": %.3f,\n  \"mapping\": {\"address\": %llu, \"size\": %zu},\n  \"first_view_address\": "
        "%llu,\n  \"max_in_flight\": %u,\n  \"allocations_after_warmup\": %s,\n  \"first_failure\": %s,\n"
        "  \"exit_code\": %d\n}\n",
        opt.path.c_str(), opt.stable_only ? "stable" : "pattern", u(s.subscriber_id), s.end_reason.c_str(), s.elapsed_s,
        u(s.frames), u(s.verified), u(s.failures), u(s.recheck_failures), u(s.not_in_place),
        s.not_in_place == 0 ? "true" : "false", u(s.missed), u(s.held_at_end), u(s.changed_after_end), u(s.released),
        s.revoked != 0 ? "true" : "false", u(s.bad_messages), u(s.bytes), fps, u(reinterpret_cast<std::uintptr_t>(s.map_begin)),
        s.map_size, u(reinterpret_cast<std::uintptr_t>(s.first_view)), s.max_in_flight,
        s.allocs_counted ? std::to_string(s.allocs_after_warmup).c_str() : "null",
        s.first_failure.empty() ? "null" : ("\"" + s.first_failure + "\"").c_str(), s.exit_code);
  } else {
    std::printf("\nsummary: %.2f s, ended by %s\n", s.elapsed_s, s.end_reason.c_str());
    std::printf("  frames received      %llu  (%.1f frames/s, %.3f GB/s viewed in place)\n", u(s.frames), fps,
                s.elapsed_s > 0 ? static_cast<double>(s.bytes) / s.elapsed_s / 1e9 : 0.0);
    std::printf("  frames verified      %llu  (integrity failures %llu, changed while held %llu)\n", u(s.verified),
                u(s.failures), u(s.recheck_failures));
    std::printf("  zero copy            %s  (every view inside the read-only mapping %p + %zu bytes; %llu not)\n",
                s.not_in_place == 0 ? "yes" : "NO", s.map_begin, s.map_size, u(s.not_in_place));
    std::printf(
        "  missed               %llu  (frames the server skipped for this subscriber at its bound of %u, as the "
        "server counted them)\n",
        u(s.missed), s.max_in_flight);
    std::printf(
        "  released             %llu  (%llu frames held at the end, %llu of them reused by a live producer after it;"
        " revoked by the server: %s)\n",
        u(s.released), u(s.held_at_end), u(s.changed_after_end), s.revoked != 0 ? "yes" : "no");
    if (s.frames == 0)
      std::printf("  no frame received%s\n", opt.allow_empty ? " (--allow-empty)" : ": that is a failure (exit 3)");
    if (s.allocs_counted) std::printf("  allocations after warm-up: %llu\n", u(s.allocs_after_warmup));
    if (!s.first_failure.empty()) std::printf("  first failure        %s\n", s.first_failure.c_str());
    std::printf("result: %s\n", s.exit_code == 0 ? "PASS" : s.exit_code == 3 ? "NOTHING RECEIVED" : "FAIL");
  }
  std::fflush(stdout);
  return s.exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const auto error = parse_args(argc, argv, opt)) {
    std::fprintf(stderr, "shm_subscriber: %s\n", error->c_str());
    return 2;
  }
  if (opt.help) {
    std::fputs(usage, stdout);
    return 0;
  }
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  try {
    return run(opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shm_subscriber: %s\n", e.what());
    return 2;
  }
}
