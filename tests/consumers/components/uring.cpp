// daq_pool::uring: its header and liburing (a ring set up and torn down).
#include <daq_pool/uring.hpp>

int main() {
  io_uring ring{};
  if (::io_uring_queue_init(4, &ring, 0) == 0) ::io_uring_queue_exit(&ring);
  return 0;
}
