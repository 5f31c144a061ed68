// daq_pool::asio: its header (asio is header-only), and an io_context run.
#include <daq_pool/asio.hpp>

int main() {
  daq_pool::Pool<int> pool(1, [] { return 1; });
  (void)pool;
  return 0;
}
