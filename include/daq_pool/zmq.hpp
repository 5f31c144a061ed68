// daq_pool/zmq.hpp (umbrella): frames leave the machine over ZeroMQ without a copy.
//
// A `Bytes` view is sent as one ZeroMQ message part with zmq_msg_init_data:
// libzmq keeps a pointer to the pooled buffer and a free function, writes the
// bytes straight from the buffer into the kernel, and calls the free function
// when it is done; the free function drops the view's reference, so the
// buffer goes back to its pool then, possibly long after the send call
// returned. On top of that, a framed stream: every frame is a two-part
// message, a 32-byte little-endian header (frame number, payload size,
// timestamp, format version, payload checksum) and the payload. The wire
// format is daq_pool/zmq/wire.hpp (no libzmq needed), described in prose in
// docs/zmq.md, so that any client can read it; examples/python/
// receive_frames.py does.
//
// This umbrella includes the parts, one concept each:
//   zmq/wire.hpp      the wire format: constants, header, encode/decode, checksum
//   zmq/socket.hpp    Context, Socket, zmq_error
//   zmq/sender.hpp    send_view, FrameSender (zero copy)
//   zmq/receiver.hpp  Message, ReceivedFrame, receive_frame
//   zmq/monitor.hpp   SocketMonitor, PeerSet: connections and handshake failures
//   zmq/curve.hpp     CURVE keys, key files, CurveAuthenticator (the ZAP handler)
//
// Optional integration: needs libzmq (pkg-config libzmq; link the CMake
// target daq_pool::zmq). Only the C API (<zmq.h>) is used; cppzmq users pass
// `socket.handle()`. The rest of daq_pool never includes this header.
//
// Which thread gives a sent buffer back: see daq_pool/zmq/sender.hpp.
#pragma once

#include "daq_pool/zmq/wire.hpp"
#include "daq_pool/zmq/socket.hpp"
#include "daq_pool/zmq/sender.hpp"
#include "daq_pool/zmq/receiver.hpp"
#include "daq_pool/zmq/monitor.hpp"
#include "daq_pool/zmq/curve.hpp"
