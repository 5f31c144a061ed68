// A poisoned <zmq.h>: tests/zmq/CMakeLists.txt puts this directory first on
// the include path of zmq_wire_needs_no_libzmq, so a wire-format header that
// (directly or not) includes libzmq's header fails to compile.
#error "daq_pool/zmq/wire.hpp must not need libzmq (<zmq.h> was included)"
