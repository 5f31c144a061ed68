// daq_pool::zmq: its header, and a call into libzmq.
#include <daq_pool/zmq.hpp>

int main() {
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  return major >= 4 ? 0 : 1;
}
