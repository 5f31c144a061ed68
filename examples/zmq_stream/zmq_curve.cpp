// docs/zmq.md's security example: a CURVE-encrypted frame stream whose
// sender admits only the receiver keys of its allow-list. Key files in
// ZeroMQ's certificate format are written to a temporary directory and read
// back, as two programs on two machines would; the sender's ZAP handler
// (CurveAuthenticator) runs on a thread it owns; a second receiver with a
// key not on the list is refused and says so. Runs as a test.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/zmq.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>

namespace dz = daq_pool::zmq;

int main() {
  // --8<-- [start:keys]
  // Once, on each side: a key pair, NAME.key (public) + NAME.key_secret.
  // (The command-line tools: frame_receiver --gen-key=NAME.)
  std::string dir = std::filesystem::temp_directory_path() / "daq-pool-curve-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return 2;
  dz::save_certificates(dir + "/sender", dz::generate_curve_key_pair());
  dz::save_certificates(dir + "/analysis", dz::generate_curve_key_pair());
  dz::save_certificates(dir + "/stranger", dz::generate_curve_key_pair());
  // --8<-- [end:keys]

  constexpr std::size_t frame_bytes = 1 << 20;
  daq_pool::BufferPool pool(4, frame_bytes);
  int received = 0;
  std::string refusal;
  {
    // --8<-- [start:sender]
    dz::Context context;
    // The allow-list: the receivers' public key files (or a directory of them).
    dz::CurveAuthenticator zap(context, dz::load_allowed_keys(dir + "/analysis.key"));
    dz::Socket push(context, ZMQ_PUSH);
    dz::set_liveness(push);  // heartbeats + TCP keepalive: a dead receiver's buffers come back in seconds
    dz::make_curve_server(push, dz::load_certificate(dir + "/sender.key_secret", /*need_secret=*/true));
    push.bind("tcp://127.0.0.1:*");
    dz::FrameSender sender(push.handle(), dz::Checksum::sampled, /*budget=*/2);
    // --8<-- [end:sender]
    const std::string endpoint = push.last_endpoint();

    // --8<-- [start:receiver]
    const auto receive = [&](const std::string& key_file, int frames_wanted) {
      dz::Socket pull(context, ZMQ_PULL);
      pull.set(ZMQ_RCVTIMEO, 100);
      pull.set_int64(ZMQ_MAXMSGSIZE, dz::max_message_bytes(frame_bytes));  // bounded input
      dz::make_curve_client(pull, dz::load_certificate(key_file, true),
                            dz::load_certificate(dir + "/sender.key", false).public_key);
      dz::SocketMonitor events(context, pull);
      pull.connect(endpoint);
      dz::ReceivedFrame frame;
      int got = 0;
      for (int idle = 0; got < frames_wanted && idle < 50;) {
        for (dz::SocketEvent e; events.poll(e);)
          if (dz::is_handshake_failure(e.event)) refusal = dz::describe_handshake_failure(e, true);
        const dz::ReceiveOutcome r = dz::receive_frame(pull.handle(), frame);
        if (r.status != dz::ReceiveStatus::received) {
          ++idle;
          continue;
        }
        if (frame.end_of_stream()) break;
        ++got;
      }
      return got;
    };
    // --8<-- [end:receiver]

    std::thread stranger([&] { (void)receive(dir + "/stranger.key_secret", 1); });  // refused: gets nothing
    std::thread analysis([&] { received = receive(dir + "/analysis.key_secret", 10); });
    for (std::uint64_t n = 0; n < 10;) {
      daq_pool::PooledBuffer buffer = pool.acquire();
      std::memset(buffer.data(), static_cast<int>(n), frame_bytes);
      buffer.set_size(frame_bytes);
      daq_pool::Bytes frame = std::move(buffer).freeze();
      const dz::SendOutcome out = sender.send(frame, n);
      if (out.status == dz::SendStatus::sent) {
        ++n;
      } else if (out.status == dz::SendStatus::over_budget) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));  // ZeroMQ holds 2: let it write them
      } else {
        return 1;
      }
    }
    analysis.join();
    stranger.join();
  }
  std::filesystem::remove_all(dir);
  std::printf("received %d of 10 encrypted frames; the stranger was told: %s\n", received, refusal.c_str());
  return received == 10 && refusal.find("refused this receiver's CURVE key") != std::string::npos ? 0 : 1;
}
