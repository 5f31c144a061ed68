// Built with DAQ_POOL_DEBUG=0 (MIXED) or 1 (the control); see ../abi_mix/CMakeLists.txt (COMPONENT=aravis).
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>

std::uint32_t socket_plus_width(const daq_pool::aravis::CameraSourceOptions& options,
                                const daq_pool::aravis::FakeCameraSettings& settings);

int main() {
  const daq_pool::aravis::CameraSourceOptions options;
  const daq_pool::aravis::FakeCameraSettings settings;
  return socket_plus_width(options, settings) != 0 ? 0 : 1;
}
