// Built with DAQ_POOL_DEBUG=0 (MIXED) or 1 (the control); see CMakeLists.txt.
#include <daq_pool/pool.hpp>

int take_one(daq_pool::Pool<int>& pool);

int main() {
  daq_pool::Pool<int> pool(1, [] { return 7; });
  return take_one(pool) == 7 ? 0 : 1;
}
