// daq_pool::gstreamer: its header, and calls into libgstreamer and libgstapp.
#include <daq_pool/gstreamer.hpp>

int main() {
  guint major = 0, minor = 0, micro = 0, nano = 0;
  gst_version(&major, &minor, &micro, &nano);
  return major == 1 && gst_app_src_get_type() != 0 ? 0 : 1;
}
