// frame_receiver: the other end of `frame_pipeline --publish`. Connects to a
// ZeroMQ endpoint (PULL or SUB), receives every frame in place (no copy out
// of the message libzmq received), checks its header, size and payload
// checksum (daq_pool/zmq.hpp) and the demo's pattern byte by byte
// (frame_pattern.hpp), detects gaps by frame number, prints live progress
// and a summary (text or --json).
//
// Exit codes: 0 every frame good; 1 a bad frame (garbage, truncated, wrong
// checksum or pattern); 2 bad arguments or setup failure (the message names
// the flag; for --connect, the endpoint and ZeroMQ's reason).
#include "cli.hpp"            // frame_pipeline's number parsing, shared
#include "frame_pattern.hpp"  // the demo's frame content and its check

#include <daq_pool/zmq.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

namespace {

namespace dz = daq_pool::zmq;
using Clock = std::chrono::steady_clock;
using frame_pipeline::detail::parse_double;
using frame_pipeline::detail::parse_uint;

// ------------------------------------------------------------------ flags --

enum class Verify { pattern, checksum };

struct Options {
  std::string connect;
  bool subscribe = false;      // --mode=sub
  std::uint64_t frames = 0;    // 0: no limit
  double duration_s = 0;       // 0: no limit
  double idle_timeout_s = 10;  // stop after this long without a message
  std::uint64_t hwm = 4;       // ZMQ_RCVHWM
  double max_fps = 0;          // 0: as fast as frames come
  Verify verify = Verify::pattern;
  bool json = false, quiet = false, help = false;
};

constexpr const char* usage = R"(usage: frame_receiver --connect=ENDPOINT [flags]

Receives the frames of `frame_pipeline --publish` (or any sender of
daq_pool/zmq.hpp's wire format) and checks every one of them.

flags (--flag=value or --flag value)                                  default
  --connect=ENDPOINT     tcp://HOST:PORT or ipc://PATH of the sender     (required)
  --mode=MODE            pull (the sender uses PUSH) or sub (PUB)        pull
  --frames=N             stop after N good frames, in [1, 1e12]          none
  --duration=SECONDS     stop after this long, in (0, 86400]             none
  --idle-timeout=SECONDS stop after this long without a message,         10
                         in (0, 86400]
  --hwm=N                ZeroMQ receive high-water mark in frames,       4
                         in [0, 1000000] (0: unlimited); small, so that
                         a slow receiver pushes back on the sender soon
  --max-fps=RATE         process at most RATE frames/s (a slow           0 (unthrottled)
                         receiver), in [0, 1e6]
  --verify=WHAT          pattern: the demo's pattern, every byte, and    pattern
                                  the wire checksum
                         checksum: the wire checksum only (any sender)
  --json                 print the summary as JSON on stdout             off
                         (progress then goes to stderr)
  --quiet                no progress lines                               off
  --help, -h             this text

It also stops at the sender's end-of-stream message, and on Ctrl-C.
exit codes: 0 every frame good; 1 a bad frame; 2 bad arguments or setup.
)";

std::optional<std::string> parse_args(int argc, char** argv, Options& opt) {
  const auto bad = [](const std::string& flag, const std::string& value, const char* allowed) {
    return flag + ": got '" + value + "'; allowed: " + allowed;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      opt.help = true;
      continue;
    }
    if (arg == "--json" || arg == "--quiet") {
      (arg == "--json" ? opt.json : opt.quiet) = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return "unexpected argument '" + arg + "' (flags start with --)";
    const auto eq = arg.find('=');
    const std::string flag = arg.substr(0, eq);
    std::string value;
    static constexpr std::string_view valued[] = {"--connect",      "--mode", "--frames",  "--duration",
                                                  "--idle-timeout", "--hwm",  "--max-fps", "--verify"};
    bool known = false;
    for (const std::string_view v : valued) known = known || flag == v;
    if (!known) {
      if (flag == "--json" || flag == "--quiet" || flag == "--help") return flag + " takes no value";
      return "unknown flag '" + flag + "' (see --help)";
    }
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return flag + ": missing value (see --help)";
    }
    if (flag == "--connect") {
      if (value.empty()) return bad(flag, value, "an endpoint, tcp://HOST:PORT or ipc://PATH");
      opt.connect = value;
    } else if (flag == "--mode") {
      if (value != "pull" && value != "sub") return bad(flag, value, "pull or sub");
      opt.subscribe = value == "sub";
    } else if (flag == "--frames") {
      const auto v = parse_uint(value, false);
      if (!v || *v < 1 || *v > 1'000'000'000'000ull) return bad(flag, value, "an integer in [1, 1000000000000]");
      opt.frames = *v;
    } else if (flag == "--duration" || flag == "--idle-timeout") {
      const auto v = parse_double(value);
      if (!v || *v <= 0 || *v > 86400) return bad(flag, value, "seconds in (0, 86400]");
      (flag == "--duration" ? opt.duration_s : opt.idle_timeout_s) = *v;
    } else if (flag == "--hwm") {
      const auto v = parse_uint(value, false);
      if (!v || *v > 1'000'000) return bad(flag, value, "frames, an integer in [0, 1000000] (0 = unlimited)");
      opt.hwm = *v;
    } else if (flag == "--max-fps") {
      const auto v = parse_double(value);
      if (!v || *v < 0 || *v > 1e6) return bad(flag, value, "frames per second in [0, 1000000] (0 = unthrottled)");
      opt.max_fps = *v;
    } else if (flag == "--verify") {
      if (value != "pattern" && value != "checksum") return bad(flag, value, "pattern or checksum");
      opt.verify = value == "pattern" ? Verify::pattern : Verify::checksum;
    }
  }
  if (!opt.help && opt.connect.empty())
    return "--connect: missing (see --help); allowed: tcp://HOST:PORT or ipc://PATH";
  return std::nullopt;
}

// ---------------------------------------------------------------- signals --

std::atomic<bool> g_stop{false};
extern "C" void on_signal(int) { g_stop.store(true); }

// ------------------------------------------------------------ the counts --

struct Tally {
  std::uint64_t good = 0, bad = 0, bytes = 0;
  std::uint64_t gaps = 0, missing = 0, restarts = 0;
  bool any = false, end_of_stream = false;
  std::uint64_t first = 0, last = 0, sender_frames = 0;
  std::string first_bad;

  /// A good frame numbered `n`: gaps are jumps forward, restarts jumps back
  /// (a new sender numbering from 0 again).
  void sequence(std::uint64_t n) {
    if (!any) {
      first = n;
    } else if (n > last + 1) {
      ++gaps;
      missing += n - last - 1;
    } else if (n <= last) {
      ++restarts;
    }
    any = true;
    last = n;
  }

  void bad_frame(const std::string& why) {
    if (bad++ == 0) first_bad = why;
  }
};

std::string json_quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out + "\"";
}

// -------------------------------------------------------------------- run --

int run(const Options& opt) {
  std::FILE* info = opt.json ? stderr : stdout;
  std::optional<dz::Context> ctx;
  std::optional<dz::Socket> socket;
  try {
    ctx.emplace();
    socket.emplace(*ctx, opt.subscribe ? ZMQ_SUB : ZMQ_PULL);
    socket->set(ZMQ_RCVHWM, static_cast<int>(opt.hwm));
    socket->set(ZMQ_RCVTIMEO, 100);  // wake up to check the limits and Ctrl-C
    if (opt.subscribe) socket->set(ZMQ_SUBSCRIBE, std::span<const std::byte>());  // every frame
    socket->connect(opt.connect);
  } catch (const dz::zmq_error& e) {
    std::fprintf(stderr, "frame_receiver: --connect=%s: %s; allowed: tcp://HOST:PORT or ipc://PATH\n",
                 opt.connect.c_str(), e.what());
    return 2;
  }
  if (!opt.quiet) {
    std::fprintf(info, "frame_receiver: %s from %s, verifying %s\n", opt.subscribe ? "subscribing" : "pulling",
                 opt.connect.c_str(), opt.verify == Verify::pattern ? "the pattern of every byte" : "checksums");
    std::fflush(info);
  }

  Tally t;
  dz::ReceivedFrame frame;  // reused: each receive releases the previous payload
  const auto start = Clock::now();
  auto last_message = start, next_print = start + std::chrono::seconds(1);
  std::uint64_t printed_good = 0;
  auto printed_at = start;
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  std::string stop_reason;
  for (;;) {
    const auto now = Clock::now();
    if (g_stop.load()) {
      stop_reason = "signal";
    } else if (opt.frames != 0 && t.good >= opt.frames) {
      stop_reason = "frames";
    } else if (opt.duration_s > 0 && seconds(now - start) >= opt.duration_s) {
      stop_reason = "duration";
    } else if (seconds(now - last_message) >= opt.idle_timeout_s) {
      stop_reason = "idle";
    } else if (t.end_of_stream) {
      stop_reason = "end_of_stream";
    }
    if (!stop_reason.empty()) break;
    if (!opt.quiet && now >= next_print) {
      const double dt = seconds(now - printed_at);
      std::fprintf(info, "%6.1f s  %llu frames  %.1f fps  %.3f GB/s  gaps %llu (%llu missing)  bad %llu\n",
                   seconds(now - start), static_cast<unsigned long long>(t.good),
                   dt > 0 ? static_cast<double>(t.good - printed_good) / dt : 0.0,
                   seconds(now - start) > 0 ? static_cast<double>(t.bytes) / seconds(now - start) / 1e9 : 0.0,
                   static_cast<unsigned long long>(t.gaps), static_cast<unsigned long long>(t.missing),
                   static_cast<unsigned long long>(t.bad));
      std::fflush(info);
      printed_good = t.good;
      printed_at = now;
      next_print += std::chrono::seconds(1);
    }

    const dz::ReceiveOutcome r = dz::receive_frame(socket->handle(), frame);
    if (r.status == dz::ReceiveStatus::no_message) continue;
    if (r.status == dz::ReceiveStatus::failed) {
      std::fprintf(stderr, "frame_receiver: receiving failed: %s\n", ::zmq_strerror(r.error));
      stop_reason = "error";
      break;
    }
    last_message = Clock::now();
    if (r.status == dz::ReceiveStatus::bad_frame) {
      t.bad_frame(std::string("message of ") + std::to_string(r.parts) + " part(s): " + dz::to_string(r.frame_error));
      continue;
    }
    if (frame.end_of_stream()) {
      t.end_of_stream = true;
      t.sender_frames = frame.header.frame_number;
      if (t.any && t.sender_frames > t.last + 1) {  // frames lost after the last one received
        ++t.gaps;
        t.missing += t.sender_frames - t.last - 1;
      }
      continue;
    }
    if (opt.verify == Verify::pattern) {
      const frame_pipeline::FrameCheck c =
          frame_pipeline::verify_frame(frame.payload(), frame.payload().size(), false, 0);
      if (c.fault != frame_pipeline::FrameFault::ok) {
        t.bad_frame("frame " + std::to_string(frame.header.frame_number) + ": " + to_string(c.fault) +
                    " (byte offset " + std::to_string(c.offset) + ")");
        continue;
      }
    }
    ++t.good;
    t.bytes += frame.payload().size();
    t.sequence(frame.header.frame_number);
    if (opt.max_fps > 0) {
      frame.payload_message.reset();  // a slow consumer, but not one that sits on memory
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(t.good) / opt.max_fps));
      while (Clock::now() < due && !g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const double elapsed = seconds(Clock::now() - start);
  socket.reset();
  ctx.reset();

  const int exit_code = t.bad != 0 || stop_reason == "error" ? 1 : 0;
  const double fps = elapsed > 0 ? static_cast<double>(t.good) / elapsed : 0;
  const double gbps = elapsed > 0 ? static_cast<double>(t.bytes) / elapsed / 1e9 : 0;
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  if (opt.json) {
    std::printf(
        "{\n  \"endpoint\": %s,\n  \"mode\": \"%s\",\n  \"verify\": \"%s\",\n  \"stop_reason\": \"%s\",\n"
        "  \"elapsed_s\": %.3f,\n  \"frames_received\": %llu,\n  \"bad_frames\": %llu,\n  \"first_bad\": %s,\n"
        "  \"gaps\": %llu,\n  \"missing_frames\": %llu,\n  \"restarts\": %llu,\n  \"first_frame\": %s,\n"
        "  \"last_frame\": %s,\n  \"end_of_stream\": %s,\n  \"sender_frames\": %s,\n  \"bytes\": %llu,\n"
        "  \"frames_per_s\": %.3f,\n  \"gb_per_s\": %.6f,\n  \"exit_code\": %d\n}\n",
        json_quoted(opt.connect).c_str(), opt.subscribe ? "sub" : "pull",
        opt.verify == Verify::pattern ? "pattern" : "checksum", stop_reason.c_str(), elapsed, u(t.good), u(t.bad),
        t.bad != 0 ? json_quoted(t.first_bad).c_str() : "null", u(t.gaps), u(t.missing), u(t.restarts),
        t.any ? std::to_string(t.first).c_str() : "null", t.any ? std::to_string(t.last).c_str() : "null",
        t.end_of_stream ? "true" : "false", t.end_of_stream ? std::to_string(t.sender_frames).c_str() : "null",
        u(t.bytes), fps, gbps, exit_code);
  } else {
    std::printf("summary: %.2f s, stopped by %s\n", elapsed, stop_reason.c_str());
    std::printf("  frames received      %llu good, %llu bad\n", u(t.good), u(t.bad));
    if (t.any) std::printf("  frame numbers        %llu .. %llu\n", u(t.first), u(t.last));
    std::printf("  gaps                 %llu  (%llu frames missing)%s\n", u(t.gaps), u(t.missing),
                t.restarts != 0 ? (", " + std::to_string(t.restarts) + " restarts of the numbering").c_str() : "");
    if (t.end_of_stream) std::printf("  end of stream        the sender numbered %llu frames\n", u(t.sender_frames));
    std::printf("  throughput           %.1f frames/s  %.3f GB/s\n", fps, gbps);
    if (t.bad != 0) std::printf("  first bad frame      %s\n", t.first_bad.c_str());
    std::printf("result: %s\n", exit_code == 0 ? "PASS" : "FAIL (bad frames)");
  }
  std::fflush(stdout);
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  Options opt;
  if (const auto error = parse_args(argc, argv, opt)) {
    std::fprintf(stderr, "frame_receiver: %s\nusage: %s --connect=ENDPOINT [flags]; run with --help for the list\n",
                 error->c_str(), argv[0]);
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
    std::fprintf(stderr, "frame_receiver: unexpected error: %s\n", e.what());
    return 2;
  }
}
