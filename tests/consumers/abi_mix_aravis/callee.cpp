// Built with DAQ_POOL_DEBUG=1: its types are daq_pool::v0_debug::aravis::*.
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>

std::uint32_t socket_plus_width(const daq_pool::aravis::CameraSourceOptions& options,
                                const daq_pool::aravis::FakeCameraSettings& settings) {
  return static_cast<std::uint32_t>(options.gv_socket_buffer_bytes) + settings.width;
}
