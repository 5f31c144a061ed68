// daq_pool/shm.hpp: frames shared with other processes without a copy, the
// umbrella header of daq_pool::shm (protocol version 2).
//
//   daq_pool/shm/protocol.hpp    the messages and the shared control region,
//                                byte by byte (no system library)
//   daq_pool/shm/server.hpp      shm::Server: serves a shared-memory
//                                BufferPool's frames
//   daq_pool/shm/subscriber.hpp  shm::Subscriber: receives them in place
//   daq_pool/shm/detail/         POSIX helpers, the rings, the flight table
//
// Optional integration: Linux only, no library (link daq_pool::shm). The rest
// of daq_pool never includes it. Guide, sizing, leases, the protocol and
// measured numbers: docs/shm.md.
#pragma once

#include "daq_pool/shm/protocol.hpp"
#include "daq_pool/shm/server.hpp"
#include "daq_pool/shm/subscriber.hpp"
