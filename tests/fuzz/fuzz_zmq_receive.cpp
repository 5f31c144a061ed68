// libFuzzer harness for daq_pool/zmq/receiver.hpp's receive_frame (issue
// 22): the input is cut into the parts of one ZeroMQ message (0 to 5 parts
// of arbitrary bytes; often a header made valid for its payload, so that
// the checks past the header are reached), sent over an inproc PAIR, and
// received with receive_frame. Checked: a message that was sent is always
// received (never no_message / failed), all of its parts are consumed (the
// socket is empty after), the part count is right, and the verdict is the
// one an independent reading of the format gives.
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_zmq_receive).
#include <daq_pool/zmq.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_input.hpp"

namespace {

namespace dz = daq_pool::zmq;

/// One context and a connected PAIR for the whole run (libFuzzer calls the
/// harness millions of times; sockets are not made per input).
struct Pair {
  dz::Context ctx;
  dz::Socket tx{ctx, ZMQ_PAIR}, rx{ctx, ZMQ_PAIR};
  Pair() {
    rx.bind("inproc://fuzz_zmq_receive");
    tx.connect("inproc://fuzz_zmq_receive");
  }
};

Pair& pair() {
  static Pair p;
  return p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::size_t nparts = in.below(6);
  const bool fix_header = in.below(2) == 1;  // make part 1 a valid header for part 2
  std::vector<std::vector<std::byte>> parts(nparts);
  for (auto& part : parts) {
    const std::size_t len = in.u16() % 9000;
    part.resize(len);
    for (auto& b : part) b = static_cast<std::byte>(in.byte());
  }
  if (fix_header && nparts >= 2) {
    dz::WireHeader h;
    h.frame_number = in.u16();
    h.checksum_kind = static_cast<dz::Checksum>(in.below(3));
    h.flags = static_cast<std::uint16_t>(in.below(4));
    h.payload_bytes = static_cast<std::uint32_t>(parts[1].size());
    h.checksum = dz::payload_checksum(parts[1], h.checksum_kind);
    if (in.below(4) == 0) h.checksum ^= 1;  // sometimes wrong
    const auto bytes = dz::encode_header(h);
    parts[0].assign(bytes.begin(), bytes.end());
  }
  Pair& p = pair();
  for (std::size_t i = 0; i < nparts; ++i) {
    const int rc = ::zmq_send(p.tx.handle(), parts[i].data(), parts[i].size(), i + 1 < nparts ? ZMQ_SNDMORE : 0);
    FUZZ_CHECK(rc == static_cast<int>(parts[i].size()));
  }
  dz::ReceivedFrame f;
  const dz::ReceiveOutcome r = dz::receive_frame(p.rx.handle(), f, ZMQ_DONTWAIT);
  if (nparts == 0) {
    FUZZ_CHECK(r.status == dz::ReceiveStatus::no_message);
    return 0;
  }
  FUZZ_CHECK(r.status == dz::ReceiveStatus::received || r.status == dz::ReceiveStatus::bad_frame);
  FUZZ_CHECK(r.parts == nparts);
  // The model's verdict.
  dz::WireHeader h;
  dz::FrameError expected = dz::decode_header(parts[0], h);
  if (expected == dz::FrameError::none) {
    if (nparts == 1) {
      expected = dz::FrameError::missing_payload;
    } else if (nparts > 2) {
      expected = dz::FrameError::too_many_parts;
    } else if (parts[1].size() != h.payload_bytes) {
      expected = dz::FrameError::payload_size_mismatch;
    } else if (h.end_of_stream() && !parts[1].empty()) {
      expected = dz::FrameError::bad_end_of_stream;
    } else if (dz::payload_checksum(parts[1], h.checksum_kind) != h.checksum) {
      expected = dz::FrameError::checksum_mismatch;
    }
  }
  FUZZ_CHECK(r.frame_error == expected);
  FUZZ_CHECK((r.status == dz::ReceiveStatus::received) == (expected == dz::FrameError::none));
  if (r.status == dz::ReceiveStatus::received) {
    FUZZ_CHECK(f.payload().size() == parts[1].size());
    FUZZ_CHECK(parts[1].empty() || std::memcmp(f.payload().data(), parts[1].data(), parts[1].size()) == 0);
  }
  // Consumed whole: nothing of this message is left.
  dz::ReceivedFrame next;
  FUZZ_CHECK(dz::receive_frame(p.rx.handle(), next, ZMQ_DONTWAIT).status == dz::ReceiveStatus::no_message);
  return 0;
}
