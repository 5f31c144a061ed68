// frame_receiver: the other end of `frame_pipeline --publish`. Connects to a
// ZeroMQ endpoint (PULL or SUB), receives every frame in place (no copy out
// of the message libzmq received), checks its header, size and payload
// checksum (daq_pool/zmq.hpp) and the demo's pattern byte by byte
// (frame_pattern.hpp), detects gaps by frame number, prints live progress
// and a summary (text or --json).
//
// With --server-key and --key it is a CURVE client (daq_pool/zmq/curve.hpp):
// the stream is encrypted and the sender admits it only if its public key
// is in the sender's allow-list; --gen-key writes a key pair.
//
// Exit codes: 0 every frame good; 1 a bad frame (garbage, truncated, wrong
// checksum or pattern); 2 bad arguments or setup failure (the message names
// the flag; for --connect, the endpoint and ZeroMQ's reason); 3 no frame
// received (unless --allow-empty; the message says why if the sender
// refused this receiver).
#include "cli.hpp"            // frame_pipeline's number parsing, shared
#include "frame_pattern.hpp"  // the demo's frame content and its check

#include <daq_pool/zmq.hpp>

#include <netdb.h>
#include <sys/socket.h>

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
  std::string server_key, key, gen_key;            // --server-key, --key, --gen-key
  std::uint64_t max_frame_bytes = 64ull << 20;     // ZMQ_MAXMSGSIZE from it
  bool json = false, quiet = false, help = false, allow_empty = false;
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
  --server-key=FILE      the sender's public key file (NAME.key, ZeroMQ   off (plain TCP)
                         certificate format): encrypt with CURVE and
                         accept only that sender; needs --key
  --key=FILE             this receiver's secret key file                 off
                         (NAME.key_secret); give NAME.key to the sender
                         for its --publish-allow list
  --gen-key=BASE         write a new key pair to BASE.key (public) and
                         BASE.key_secret (mode 0600), print the public
                         key, and exit
  --max-frame-bytes=N    refuse larger messages (ZMQ_MAXMSGSIZE: libzmq  67108864 (64 MiB)
                         drops the connection before allocating them),
                         in [64, 4294967295]
  --allow-empty          exit 0 even if no frame arrived                 off
  --json                 print the summary as JSON on stdout             off
                         (progress then goes to stderr)
  --quiet                no progress lines                               off
  --help, -h             this text

It also stops at the sender's end-of-stream message, and on Ctrl-C.
Gaps in the numbering count as missing frames, except where the sender marks
its frames as shared among several PULL receivers (then they are the others'
share, reported apart).
exit codes: 0 every frame good; 1 a bad frame; 2 bad arguments or setup;
3 no frame received (see --allow-empty).
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
    if (arg == "--json" || arg == "--quiet" || arg == "--allow-empty") {
      (arg == "--json" ? opt.json : arg == "--quiet" ? opt.quiet : opt.allow_empty) = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return "unexpected argument '" + arg + "' (flags start with --)";
    const auto eq = arg.find('=');
    const std::string flag = arg.substr(0, eq);
    std::string value;
    static constexpr std::string_view valued[] = {
        "--connect", "--mode",       "--frames",  "--duration", "--idle-timeout",   "--hwm",
        "--max-fps", "--verify",     "--server-key", "--key",  "--gen-key", "--max-frame-bytes"};
    bool known = false;
    for (const std::string_view v : valued) known = known || flag == v;
    if (!known) {
      if (flag == "--json" || flag == "--quiet" || flag == "--help" || flag == "--allow-empty")
        return flag + " takes no value";
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
    } else if (flag == "--server-key" || flag == "--key" || flag == "--gen-key") {
      if (value.empty()) return bad(flag, value, "a file name");
      (flag == "--server-key" ? opt.server_key : flag == "--key" ? opt.key : opt.gen_key) = value;
    } else if (flag == "--max-frame-bytes") {
      const auto v = parse_uint(value, false);
      if (!v || *v < 64 || *v > dz::max_payload_bytes) return bad(flag, value, "bytes, an integer in [64, 4294967295]");
      opt.max_frame_bytes = *v;
    }
  }
  if (!opt.gen_key.empty()) return std::nullopt;  // nothing else needed
  if (opt.server_key.empty() != opt.key.empty())
    return std::string(opt.key.empty() ? "--server-key" : "--key") + " given without " +
           (opt.key.empty() ? "--key" : "--server-key") +
           "; allowed: both (CURVE: the sender's public key file and this receiver's secret key file) or neither";
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
  std::uint64_t others_share = 0;  // numbers skipped while the sender shared them among receivers
  bool any = false, end_of_stream = false, last_shared = false;
  std::uint64_t first = 0, last = 0, sender_frames = 0;
  std::string first_bad;

  /// A good frame numbered `n`: gaps are jumps forward, restarts jumps back
  /// (a new sender numbering from 0 again). A jump next to a frame the
  /// sender marked shared (flag_shared_numbering: PUSH to several PULL
  /// receivers) is the other receivers' share, not a loss.
  void sequence(std::uint64_t n, bool shared) {
    if (!any) {
      first = n;
    } else if (n > last + 1) {
      if (shared || last_shared) {
        others_share += n - last - 1;
      } else {
        ++gaps;
        missing += n - last - 1;
      }
    } else if (n <= last) {
      ++restarts;
    }
    any = true;
    last = n;
    last_shared = shared;
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

// ------------------------------------------------------------- endpoints --

/// For tcp://HOST:PORT whose HOST does not resolve, a sentence saying so
/// (zmq_connect accepts it and retries in silence forever); else "".
std::string unresolvable_host(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return "";
  std::string host = endpoint.substr(6, endpoint.rfind(':') == std::string::npos ? std::string::npos
                                                                                  : endpoint.rfind(':') - 6);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host == "*") return "";
  const auto semicolon = host.find(';');  // tcp://SOURCE;HOST:PORT
  if (semicolon != std::string::npos) host = host.substr(semicolon + 1);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc == 0) {
    ::freeaddrinfo(found);
    return "";
  }
  return "host '" + host + "' does not resolve (" + ::gai_strerror(rc) + "); allowed: tcp://HOST:PORT with HOST an "
         "IP address or a name this machine resolves";
}

// -------------------------------------------------------------------- run --

int run(const Options& opt) {
  std::FILE* info = opt.json ? stderr : stdout;
  dz::CurveKeyPair my_keys, server_keys;
  if (!opt.key.empty()) {
    try {
      my_keys = dz::load_certificate(opt.key, true);
      server_keys = dz::load_certificate(opt.server_key, false);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "frame_receiver: %s: %s\n", my_keys.public_key.empty() ? "--key" : "--server-key",
                   e.what());
      return 2;
    }
  }
  if (const std::string why = unresolvable_host(opt.connect); !why.empty()) {
    std::fprintf(stderr, "frame_receiver: --connect=%s: %s\n", opt.connect.c_str(), why.c_str());
    return 2;
  }
  std::optional<dz::Context> ctx;
  std::optional<dz::Socket> socket;
  std::optional<dz::SocketMonitor> monitor;
  try {
    ctx.emplace();
    socket.emplace(*ctx, opt.subscribe ? ZMQ_SUB : ZMQ_PULL);
    socket->set(ZMQ_RCVHWM, static_cast<int>(opt.hwm));
    socket->set(ZMQ_RCVTIMEO, 100);  // wake up to check the limits and Ctrl-C
    // A peer's length prefix may not make libzmq allocate more than this.
    socket->set_int64(ZMQ_MAXMSGSIZE, dz::max_message_bytes(opt.max_frame_bytes));
    // TCP keepalive only: ZMTP heartbeats on a receiver that reads slower
    // than frames arrive crash libzmq 4.3.4 (see daq_pool::zmq::set_liveness);
    // the sender's heartbeats drop a dead connection from its side.
    dz::Liveness keepalive_only;
    keepalive_only.heartbeat_ms = 0;
    dz::set_liveness(*socket, keepalive_only);
    if (opt.subscribe) socket->set(ZMQ_SUBSCRIBE, std::span<const std::byte>());  // every frame
    if (!opt.key.empty()) dz::make_curve_client(*socket, my_keys, server_keys.public_key);
    monitor.emplace(*ctx, *socket);
    socket->connect(opt.connect);
  } catch (const dz::zmq_error& e) {
    std::fprintf(stderr, "frame_receiver: --connect=%s: %s; allowed: tcp://HOST:PORT or ipc://PATH\n",
                 opt.connect.c_str(), e.what());
    return 2;
  }
  if (!opt.quiet) {
    std::fprintf(info, "frame_receiver: %s from %s (%s), verifying %s\n", opt.subscribe ? "subscribing" : "pulling",
                 opt.connect.c_str(), opt.key.empty() ? "plain TCP, unencrypted" : "CURVE, encrypted",
                 opt.verify == Verify::pattern ? "the pattern of every byte" : "checksums");
    std::fflush(info);
  }

  Tally t;
  dz::ReceivedFrame frame;  // reused: each receive releases the previous payload
  const auto start = Clock::now();
  auto last_message = start, next_print = start + std::chrono::seconds(1);
  std::uint64_t printed_good = 0;
  auto printed_at = start;
  const auto seconds = [](Clock::duration d) { return std::chrono::duration<double>(d).count(); };
  std::string stop_reason, refusal;
  int refusal_rank = 0;
  for (;;) {
    const auto now = Clock::now();
    // Handshake failures: say why at once (libzmq retries in silence).
    for (dz::SocketEvent e; monitor->poll(e);) {
      if (!dz::is_handshake_failure(e.event)) continue;
      const std::string why = dz::describe_handshake_failure(e, true);
      if (why != refusal) std::fprintf(stderr, "frame_receiver: %s\n", why.c_str());
      // Keep the most telling reason (libzmq retries; a later attempt may
      // fail with less detail).
      if (dz::handshake_failure_rank(e.event) >= refusal_rank) {
        refusal = why;
        refusal_rank = dz::handshake_failure_rank(e.event);
      }
    }
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
      if (t.any && t.sender_frames > t.last + 1) {  // frames after the last one received
        if (frame.header.shared_numbering() || t.last_shared) {
          t.others_share += t.sender_frames - t.last - 1;
        } else {
          ++t.gaps;
          t.missing += t.sender_frames - t.last - 1;
        }
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
    t.sequence(frame.header.frame_number, frame.header.shared_numbering());
    if (opt.max_fps > 0) {
      frame.payload_message.reset();  // a slow consumer, but not one that sits on memory
      const auto due = start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(static_cast<double>(t.good) / opt.max_fps));
      while (Clock::now() < due && !g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  const double elapsed = seconds(Clock::now() - start);
  monitor.reset();
  socket.reset();
  ctx.reset();

  const bool empty = t.good == 0 && !opt.allow_empty;
  const int exit_code = t.bad != 0 || stop_reason == "error" ? 1 : empty ? 3 : 0;
  if (empty)
    std::fprintf(stderr, "frame_receiver: no frame received from %s%s%s (exit 3; --allow-empty accepts that)\n",
                 opt.connect.c_str(), refusal.empty() ? "" : ": ", refusal.c_str());
  const double fps = elapsed > 0 ? static_cast<double>(t.good) / elapsed : 0;
  const double gbps = elapsed > 0 ? static_cast<double>(t.bytes) / elapsed / 1e9 : 0;
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  if (opt.json) {
    std::printf(
        "{\n  \"endpoint\": %s,\n  \"mode\": \"%s\",\n  \"verify\": \"%s\",\n  \"stop_reason\": \"%s\",\n"
        "  \"elapsed_s\": %.3f,\n  \"frames_received\": %llu,\n  \"bad_frames\": %llu,\n  \"first_bad\": %s,\n"
        "  \"gaps\": %llu,\n  \"missing_frames\": %llu,\n  \"restarts\": %llu,\n  \"first_frame\": %s,\n"
        "  \"last_frame\": %s,\n  \"end_of_stream\": %s,\n  \"sender_frames\": %s,\n  \"bytes\": %llu,\n"
        "  \"frames_per_s\": %.3f,\n  \"gb_per_s\": %.6f,\n  \"others_share\": %llu,\n  \"security\": \"%s\",\n"
        "  \"refusal\": %s,\n  \"exit_code\": %d\n}\n",
        json_quoted(opt.connect).c_str(), opt.subscribe ? "sub" : "pull",
        opt.verify == Verify::pattern ? "pattern" : "checksum", stop_reason.c_str(), elapsed, u(t.good), u(t.bad),
        t.bad != 0 ? json_quoted(t.first_bad).c_str() : "null", u(t.gaps), u(t.missing), u(t.restarts),
        t.any ? std::to_string(t.first).c_str() : "null", t.any ? std::to_string(t.last).c_str() : "null",
        t.end_of_stream ? "true" : "false", t.end_of_stream ? std::to_string(t.sender_frames).c_str() : "null",
        u(t.bytes), fps, gbps, u(t.others_share), opt.key.empty() ? "plain" : "curve",
        refusal.empty() ? "null" : json_quoted(refusal).c_str(), exit_code);
  } else {
    std::printf("summary: %.2f s, stopped by %s\n", elapsed, stop_reason.c_str());
    std::printf("  frames received      %llu good, %llu bad\n", u(t.good), u(t.bad));
    if (t.any) std::printf("  frame numbers        %llu .. %llu\n", u(t.first), u(t.last));
    std::printf("  gaps                 %llu  (%llu frames missing)%s\n", u(t.gaps), u(t.missing),
                t.restarts != 0 ? (", " + std::to_string(t.restarts) + " restarts of the numbering").c_str() : "");
    if (t.others_share != 0)
      std::printf("  other receivers      %llu frames went to the other PULL receivers (not lost)\n",
                  u(t.others_share));
    if (t.end_of_stream) std::printf("  end of stream        the sender numbered %llu frames\n", u(t.sender_frames));
    std::printf("  throughput           %.1f frames/s  %.3f GB/s\n", fps, gbps);
    if (t.bad != 0) std::printf("  first bad frame      %s\n", t.first_bad.c_str());
    std::printf("result: %s\n", exit_code == 0 ? "PASS" : exit_code == 3 ? "FAIL (no frame received)" : "FAIL (bad frames)");
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
  if (!opt.gen_key.empty()) {
    try {
      const dz::CurveKeyPair keys = dz::generate_curve_key_pair();
      dz::save_certificates(opt.gen_key, keys);
      std::printf("wrote %s.key (public: give it to the other side) and %s.key_secret (keep it here)\npublic key %s\n",
                  opt.gen_key.c_str(), opt.gen_key.c_str(), keys.public_key.c_str());
      return 0;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "frame_receiver: --gen-key=%s: %s\n", opt.gen_key.c_str(), e.what());
      return 2;
    }
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
