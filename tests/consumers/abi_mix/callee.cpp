// Built with DAQ_POOL_DEBUG=1: its Pool<int> is daq_pool::v0_debug::Pool<int>.
#include <daq_pool/pool.hpp>

int take_one(daq_pool::Pool<int>& pool) { return *pool.acquire(); }
