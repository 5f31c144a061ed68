// daq_pool::hdf5: its header and the HDF5 library (its version queried).
#include <daq_pool/hdf5.hpp>

int main() {
  unsigned major = 0;
  unsigned minor = 0;
  unsigned release = 0;
  return H5get_libversion(&major, &minor, &release) >= 0 && (major > 1 || minor >= 10) ? 0 : 1;
}
