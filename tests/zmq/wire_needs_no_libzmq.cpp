// Compiled against a poisoned <zmq.h> (tests/zmq/no_libzmq/): the wire-format
// header is the one an implementer in another language reads, and a program
// that only encodes or decodes headers must not need libzmq.
#include <daq_pool/zmq/wire.hpp>
#include <daq_pool/zmq/wire.hpp>  // include guard

int main() {
  daq_pool::zmq::WireHeader h;
  h.frame_number = 7;
  const auto bytes = daq_pool::zmq::encode_header(h);
  daq_pool::zmq::WireHeader back;
  return daq_pool::zmq::decode_header(bytes, back) == daq_pool::zmq::FrameError::none && back.frame_number == 7 ? 0
                                                                                                                  : 1;
}
