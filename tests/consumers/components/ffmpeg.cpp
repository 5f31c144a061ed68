// daq_pool::ffmpeg: its header, and a call into libavutil.
#include <daq_pool/ffmpeg.hpp>

int main() { return av_version_info() != nullptr ? 0 : 1; }
