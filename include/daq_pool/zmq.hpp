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
// Which thread runs the free function (read from libzmq 4.3.4's source:
// src/msg.cpp msg_t::close, src/encoder.hpp, src/dist.cpp, src/lb.cpp,
// src/pipe.cpp, src/stream_engine_base.cpp):
//   - libzmq's I/O thread of the socket's context, normally: its TCP/IPC
//     engine writes the payload from the buffer into the kernel and closes
//     the message when the last byte is written (encoder_base_t::encode, on
//     the engine's next output event); also when a connection goes away
//     with messages still queued (pipe_t::process_pipe_term_ack drains them)
//     and when linger expires at zmq_close / zmq_ctx_term;
//   - the thread calling zmq_msg_send, before it returns, when libzmq drops
//     the message at once: PUB with no subscriber or every subscriber at its
//     high-water mark (dist_t::distribute), PUSH whose peer died in the
//     middle of a multipart message (lb_t::sendpipe, socket_base_t::send);
//   - the thread calling zmq_msg_close on a message whose send failed (this
//     header does that itself, then gives the view back to the caller);
//   - libzmq's reaper thread, for the unflushed parts of an incomplete
//     multipart message of a socket being closed (pipe_t::rollback; never a
//     payload of this header's frames, which is always the last part);
//   - over inproc:// the receiving application thread, when it closes the
//     message it received (it holds the very same buffer: read-only!).
// Never after zmq_ctx_term() returned for the socket's context (it waits for
// every socket to be closed and every pipe to be torn down), except for
// messages an application thread still holds (inproc). The free function
// touches only the view's reference (Bytes::release_raw: one atomic
// decrement; the last one runs the pool's reset on that thread, which with
// BufferPoolOptions::zero_on_release scrubs the buffer there) and two
// process-wide counters; it never allocates, blocks or calls into libzmq.
#pragma once

#include "daq_pool/zmq/wire.hpp"
#include "daq_pool/zmq/socket.hpp"
#include "daq_pool/zmq/sender.hpp"
#include "daq_pool/zmq/receiver.hpp"
#include "daq_pool/zmq/monitor.hpp"
#include "daq_pool/zmq/curve.hpp"
