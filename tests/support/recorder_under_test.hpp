// The recorder the recording tests run: the portable backend
// (recording::Recorder), or io_uring's (recording::UringRecorder) when the
// test is built for daq_pool::uring (DAQ_POOL_TEST_URING, tests/uring/).
#pragma once

#include <daq_pool/recording/recorder.hpp>

#if defined(DAQ_POOL_TEST_URING)
#include <daq_pool/uring.hpp>
namespace test_support {
using RecorderUnderTest = daq_pool::recording::UringRecorder;
}
#else
namespace test_support {
using RecorderUnderTest = daq_pool::recording::Recorder;
}
#endif
