// CURVE on the frame stream (daq_pool/zmq/curve.hpp) with real peers over
// tcp://127.0.0.1: a receiver whose key is in the allow-list gets every
// frame, byte for byte; one with an unknown key and one without CURVE get
// none and each learns why (a handshake failure event); and the bytes on
// the wire, seen by a TCP relay between the two, contain the frame's
// content in a plaintext run and not in a CURVE run. Key files round-trip
// through ZeroMQ's certificate format and malformed ones are refused with
// the file and the reason named.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/zmq.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "frame_pattern.hpp"
#include "watchdog.hpp"
#include "../support/temp_dir.hpp"

namespace dz = daq_pool::zmq;
using daq_pool::BufferPool;
using daq_pool::Bytes;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

using test_support::TempDir;

Bytes make_frame(BufferPool& pool, std::size_t bytes, std::uint64_t number) {
  daq_pool::PooledBuffer b = pool.acquire();
  frame_pipeline::fill_frame(b.get_mut().first(bytes), number);
  b.set_size(bytes);
  return std::move(b).freeze();
}

/// A TCP relay on 127.0.0.1: accepts one connection, connects to `target`
/// and copies bytes both ways, keeping a copy of what flows from the target
/// (the sender) to the client (the receiver). Stops when asked or when
/// either side closes; bounded in bytes kept.
class Relay {
 public:
  explicit Relay(std::uint16_t target_port) : target_port_(target_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(listen_fd_, 1) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~Relay() {
    stop_.store(true);
    thread_.join();
    ::close(listen_fd_);
  }
  std::uint16_t port() const noexcept { return port_; }
  /// What the sender sent through the relay (call after the receiver got its frames).
  std::vector<unsigned char> captured() {
    const std::lock_guard lock(mutex_);
    return captured_;
  }

  static constexpr std::size_t max_captured = 64u << 20;

 private:
  void run() {
    pollfd p{listen_fd_, POLLIN, 0};
    while (!stop_.load() && ::poll(&p, 1, 50) == 0) {
    }
    if (stop_.load()) return;
    const int client = ::accept(listen_fd_, nullptr, nullptr);
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(target_port_);
    if (client < 0 || ::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (client >= 0) ::close(client);
      ::close(server);
      return;
    }
    std::vector<unsigned char> buf(1 << 16);
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    bool open = true;
    while (open && !stop_.load()) {
      if (::poll(fds, 2, 50) <= 0) continue;
      for (int i = 0; i < 2 && open; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buf.data(), buf.size());
        if (n <= 0) {
          open = false;
          break;
        }
        if (i == 1) {
          const std::lock_guard lock(mutex_);
          const std::size_t keep = std::min<std::size_t>(static_cast<std::size_t>(n), max_captured - captured_.size());
          captured_.insert(captured_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(keep));
        }
        for (ssize_t done = 0; done < n;) {
          const ssize_t w = ::write(fds[1 - i].fd, buf.data() + done, static_cast<std::size_t>(n - done));
          if (w <= 0) {
            open = false;
            break;
          }
          done += w;
        }
      }
    }
    ::close(client);
    ::close(server);
  }

  std::uint16_t target_port_, port_ = 0;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<unsigned char> captured_;
  std::thread thread_;
};

std::uint16_t port_of(const std::string& endpoint) {
  return static_cast<std::uint16_t>(std::stoi(endpoint.substr(endpoint.rfind(':') + 1)));
}

enum class Security { plain, curve_allowed, curve_unknown, no_curve_against_curve };

struct RunResult {
  std::uint64_t good = 0, bad = 0;
  std::vector<std::string> receiver_failures;  // describe_handshake_failure texts
  dz::ZapCounts zap;
  std::vector<unsigned char> wire;             // via the relay, if used
};

/// A CURVE (or plain) PUSH sender and one PULL receiver in this process,
/// `frames` frames of `frame_bytes`. The sender sends only once the
/// receiver's handshake passed; for a receiver that must be refused, the
/// run waits (bounded) for the refusal events on both sides and then checks
/// that nothing arrives while the sender offers frames with ZMQ_DONTWAIT.
RunResult run(Security sec, std::uint64_t frames, std::size_t frame_bytes, bool through_relay) {
  RunResult out;
  const dz::CurveKeyPair server = dz::generate_curve_key_pair();
  const dz::CurveKeyPair allowed = dz::generate_curve_key_pair();
  const dz::CurveKeyPair stranger = dz::generate_curve_key_pair();
  BufferPool pool(4, frame_bytes);
  {
    dz::Context ctx;
    std::optional<dz::CurveAuthenticator> auth;
    if (sec != Security::plain) auth.emplace(ctx, std::vector<std::string>{allowed.public_key});
    dz::Socket push(ctx, ZMQ_PUSH);
    push.set(ZMQ_SNDHWM, 4);
    if (sec != Security::plain) dz::make_curve_server(push, server);
    push.bind("tcp://127.0.0.1:*");
    dz::SocketMonitor push_events(ctx, push);
    const std::string endpoint = push.last_endpoint();
    std::optional<Relay> relay;
    if (through_relay) relay.emplace(port_of(endpoint));
    const std::string connect_to =
        through_relay ? "tcp://127.0.0.1:" + std::to_string(relay->port()) : endpoint;

    dz::Socket pull(ctx, ZMQ_PULL);
    pull.set(ZMQ_RCVTIMEO, 100);
    pull.set_int64(ZMQ_MAXMSGSIZE, dz::max_message_bytes(frame_bytes));
    if (sec == Security::curve_allowed) dz::make_curve_client(pull, allowed, server.public_key);
    if (sec == Security::curve_unknown) dz::make_curve_client(pull, stranger, server.public_key);
    dz::SocketMonitor pull_events(ctx, pull);
    pull.connect(connect_to);

    // Wait (bounded) for the handshake's outcome on the receiver's side.
    const bool must_refuse = sec == Security::curve_unknown || sec == Security::no_curve_against_curve;
    bool passed = false;
    const auto give_up = Clock::now() + 30s;
    while (!passed && out.receiver_failures.empty() && Clock::now() < give_up) {
      dz::SocketEvent e;
      while (pull_events.poll(e)) {
        if (e.event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) passed = true;
        if (dz::is_handshake_failure(e.event)) out.receiver_failures.push_back(dz::describe_handshake_failure(e, true));
      }
      std::this_thread::sleep_for(5ms);
    }
    REQUIRE(passed != must_refuse);

    dz::FrameSender sender(push.handle());
    std::thread receiver([&] {
      dz::ReceivedFrame f;
      const auto deadline = Clock::now() + 60s;
      std::uint64_t idle = 0;
      while (out.good < frames && Clock::now() < deadline && idle < (must_refuse ? 5u : 600u)) {
        const dz::ReceiveOutcome r = dz::receive_frame(pull.handle(), f);
        if (r.status == dz::ReceiveStatus::no_message) {
          ++idle;
          continue;
        }
        idle = 0;
        const bool ok = r.status == dz::ReceiveStatus::received &&
                        frame_pipeline::verify_frame(f.payload(), frame_bytes, false, 0).fault ==
                            frame_pipeline::FrameFault::ok &&
                        f.header.frame_number == out.good;
        ++(ok ? out.good : out.bad);
      }
    });
    for (std::uint64_t i = 0; i < frames; ++i) {
      Bytes v = make_frame(pool, frame_bytes, i);
      // A refused receiver is no peer: PUSH has nowhere to send (would_block).
      const dz::SendOutcome r = sender.send(v, i, dz::now_ns(), must_refuse ? ZMQ_DONTWAIT : 0);
      if (!must_refuse) REQUIRE(r.status == dz::SendStatus::sent);
      if (must_refuse) CHECK(r.status == dz::SendStatus::would_block);
    }
    receiver.join();
    if (auth) out.zap = auth->counts();
    if (relay) out.wire = relay->captured();
    pull.close();
    push.close();
  }
  CHECK(pool.available() == pool.size());
  return out;
}

/// True if `haystack` contains 64 bytes of frame `number`'s pattern.
bool contains_frame_content(const std::vector<unsigned char>& haystack, std::size_t frame_bytes, std::uint64_t number) {
  std::vector<std::byte> frame(frame_bytes);
  frame_pipeline::fill_frame(frame, number);
  const auto* needle = reinterpret_cast<const unsigned char*>(frame.data()) + frame_bytes / 2;
  return std::search(haystack.begin(), haystack.end(), needle, needle + 64) != haystack.end();
}

/// The message of what `f` throws ("" if it doesn't).
template <class F>
std::string thrown(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("CURVE: the allowed key gets every frame, byte for byte") {
  test_support::Watchdog watchdog("test_zmq_curve", 120s);
  REQUIRE(dz::curve_available());
  const RunResult r = run(Security::curve_allowed, 50, 64 * 1024, false);
  CHECK(r.good == 50);
  CHECK(r.bad == 0);
  CHECK(r.zap.accepted == 1);
  CHECK(r.zap.refused == 0);
}

TEST_CASE("CURVE: an unknown client key gets no frame, and the receiver is told it was refused") {
  test_support::Watchdog watchdog("test_zmq_curve", 120s);
  const RunResult r = run(Security::curve_unknown, 20, 64 * 1024, false);
  CHECK(r.good == 0);
  CHECK(r.bad == 0);
  CHECK(r.zap.accepted == 0);
  CHECK(r.zap.refused >= 1);
  REQUIRE(!r.receiver_failures.empty());
  CHECK(r.receiver_failures.front().find("refused this receiver's CURVE key") != std::string::npos);
}

TEST_CASE("CURVE: a client without CURVE gets no frame, and is told of the security mismatch") {
  test_support::Watchdog watchdog("test_zmq_curve", 120s);
  const RunResult r = run(Security::no_curve_against_curve, 20, 64 * 1024, false);
  CHECK(r.good == 0);
  CHECK(r.bad == 0);
  CHECK(r.zap.accepted == 0);
  REQUIRE(!r.receiver_failures.empty());
  INFO(r.receiver_failures.front());
  CHECK(r.receiver_failures.front().find("failed") != std::string::npos);
}

TEST_CASE("on the wire: the frame's bytes appear in a plaintext run, never in a CURVE run") {
  test_support::Watchdog watchdog("test_zmq_curve", 120s);
  const std::size_t frame_bytes = 64 * 1024;
  const RunResult plain = run(Security::plain, 8, frame_bytes, true);
  REQUIRE(plain.good == 8);
  REQUIRE(plain.wire.size() >= 8 * frame_bytes);
  // The check can fail: it finds the content in plaintext.
  for (std::uint64_t n = 0; n < 8; ++n) CHECK(contains_frame_content(plain.wire, frame_bytes, n));

  const RunResult curve = run(Security::curve_allowed, 8, frame_bytes, true);
  REQUIRE(curve.good == 8);  // the relay passed every byte, and the receiver decrypted them
  REQUIRE(curve.wire.size() >= 8 * frame_bytes);
  for (std::uint64_t n = 0; n < 8; ++n) CHECK_FALSE(contains_frame_content(curve.wire, frame_bytes, n));
  // Nor the header's magic "DAQZ".
  const unsigned char magic[] = {'D', 'A', 'Q', 'Z'};
  CHECK(std::search(plain.wire.begin(), plain.wire.end(), magic, magic + 4) != plain.wire.end());
  CHECK(std::search(curve.wire.begin(), curve.wire.end(), magic, magic + 4) == curve.wire.end());
}

TEST_CASE("key files: ZeroMQ's certificate format round-trips; malformed files are refused by name") {
  TempDir dir("daq-pool-curve");
  const dz::CurveKeyPair k = dz::generate_curve_key_pair();
  dz::save_certificates(dir / "sender", k);
  const dz::CurveKeyPair secret = dz::load_certificate(dir / "sender.key_secret", true);
  CHECK(secret.public_key == k.public_key);
  CHECK(secret.secret_key == k.secret_key);
  CHECK((std::filesystem::status(dir / "sender.key_secret").permissions() & std::filesystem::perms::group_read) ==
        std::filesystem::perms::none);
  const dz::CurveKeyPair pub = dz::load_certificate(dir / "sender.key", false);
  CHECK(pub.public_key == k.public_key);
  CHECK(pub.secret_key.empty());
  {
    const std::string what = thrown([&] { (void)dz::load_certificate(dir / "sender.key", true); });
    INFO(what);
    CHECK(what.find("sender.key") != std::string::npos);
    CHECK(what.find("no secret-key") != std::string::npos);
  }
  {
    const std::string what = thrown([&] { (void)dz::load_certificate(dir / "absent.key", false); });
    INFO(what);
    CHECK(what.find("absent.key") != std::string::npos);
  }
  {
    std::ofstream(dir / "bad.key") << "metadata\ncurve\n    public-key = \"tooshort\"\n";
  }
  {
    const std::string what = thrown([&] { (void)dz::load_certificate(dir / "bad.key", false); });
    INFO(what);
    CHECK(what.find("not 40 Z85") != std::string::npos);
  }
  {
    // A secret that does not belong to the public key.
    const dz::CurveKeyPair other = dz::generate_curve_key_pair();
    std::ofstream(dir / "mixed.key_secret")
        << "curve\n    public-key = \"" << k.public_key << "\"\n    secret-key = \"" << other.secret_key << "\"\n";
  }
  {
    const std::string what = thrown([&] { (void)dz::load_certificate(dir / "mixed.key_secret", true); });
    INFO(what);
    CHECK(what.find("does not belong") != std::string::npos);
  }

  // Allow-lists: a directory of *.key, one certificate, a list of keys.
  TempDir clients("daq-pool-curve");
  const dz::CurveKeyPair c1 = dz::generate_curve_key_pair(), c2 = dz::generate_curve_key_pair();
  dz::save_certificates(clients / "c1", c1);
  dz::save_certificates(clients / "c2", c2);
  std::vector<std::string> expected{c1.public_key, c2.public_key};
  std::sort(expected.begin(), expected.end());
  CHECK(dz::load_allowed_keys(clients.path()) == expected);  // *.key_secret files are not read
  CHECK(dz::load_allowed_keys(clients / "c1.key") == std::vector<std::string>{c1.public_key});
  {
    std::ofstream(dir / "list.txt") << "# receivers\n" << c2.public_key << "  # beamline PC\n\n" << c1.public_key << "\n";
  }
  CHECK(dz::load_allowed_keys(dir / "list.txt") == expected);
  {
    std::ofstream(dir / "badlist.txt") << c1.public_key << "\nnot-a-key\n";
  }
  {
    const std::string what = thrown([&] { (void)dz::load_allowed_keys(dir / "badlist.txt"); });
    INFO(what);
    CHECK(what.find("badlist.txt, line 2") != std::string::npos);
  }
}
