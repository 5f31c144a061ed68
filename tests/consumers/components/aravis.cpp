// daq_pool::aravis: its header, and a call into libaravis.
#include <daq_pool/aravis.hpp>

int main() { return arv_get_major_version() == 0 ? 0 : 1; }
