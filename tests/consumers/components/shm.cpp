// daq_pool::shm: its header (Linux system calls only).
#include <daq_pool/shm.hpp>

int main() { return 0; }
