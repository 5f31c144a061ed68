// Hdf5Recorder's faults, each provoked for real in a child process, as
// tests/test_recorder_faults.cpp does for the .dqr recorders:
//  - file too large: setrlimit(RLIMIT_FSIZE) (SIGXFSZ ignored) -> EFBIG;
//  - disk full mid-run: a 1 MiB tmpfs mounted in a user namespace -> ENOSPC.
// Every fault: an error naming the file and the reason, the lost frames
// counted (written + lost == offered), every view released (the pool full
// again), no HDF5 error stack on stderr, and the child finishing (alarm(60)
// kills a hung child and the parent sees the failure; no watchdog thread,
// so that the parent forks single-threaded, as ThreadSanitizer requires).
// The file is not checked after the fault: hdf5.hpp promises no readable
// prefix (HDF5's metadata may be half written), unlike the .dqr recorders.
// After ENOSPC the child also shuts HDF5 down (H5close, what its exit
// handler does); after EFBIG it can't: H5Fclose fails there, and HDF5 1.10.8
// then crashes in H5close on the file id it kept (see Hdf5Recorder::close).
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/hdf5.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "catch.hpp"
#include "death_test.hpp"
#include "fault_child.hpp"
#include "hdf5_frames.hpp"
#include "temp_dir.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::hdf5::Hdf5Options;
using daq_pool::hdf5::Hdf5Recorder;

namespace {

constexpr std::uint64_t kHeight = 128;
constexpr std::uint64_t kWidth = 256;
constexpr std::size_t kFrameBytes = kHeight * kWidth * 2;  // 64 KiB of <u2
constexpr std::uint64_t kFrames = 40;                      // 2.5 MiB offered

/// Frame `f`, kHeight x kWidth.
Bytes make_frame(BufferPool& pool, std::uint64_t f) { return test_support::u16_frame(pool, f, kHeight * kWidth); }

/// Records kFrames frames into `path` (flushing every 4) from a pool of 2
/// buffers, then prints what happened as key=value lines on stderr (the
/// parent parses them).
void record_and_report(const std::string& path) try {
  Hdf5Options o;
  o.dtype = "<u2";
  o.height = kHeight;
  o.width = kWidth;
  o.flush_every = 4;
  BufferPool pool(2, kFrameBytes);
  std::uint64_t refused = 0;
  {
    Hdf5Recorder rec(path, o);
    for (std::uint64_t f = 0; f < kFrames; ++f)
      if (!rec.record(make_frame(pool, f), f, static_cast<std::int64_t>(f))) ++refused;
    std::fprintf(stderr, "pool_full_before_close=%d\n", pool.available() == pool.size() ? 1 : 0);
    rec.close();
    const auto st = rec.stats();
    std::fprintf(stderr, "written=%llu\nlost=%llu\nrefused=%llu\nerrors=%llu\n",
                 static_cast<unsigned long long>(st.frames_written), static_cast<unsigned long long>(st.frames_lost),
                 static_cast<unsigned long long>(refused), static_cast<unsigned long long>(st.errors));
    std::fprintf(stderr, "error=%s\n", rec.error().value_or("").c_str());
  }
  std::fprintf(stderr, "pool_full=%d\n", pool.available() == pool.size() ? 1 : 0);
} catch (const std::exception& e) {
  std::fprintf(stderr, "exception=%s\n", e.what());
  std::_Exit(4);
}

/// The checks every fault shares; `reason` is strerror's text for its errno.
void check_fault(const test_support::ChildResult& r, const std::string& path, const char* reason) {
  INFO(r.err);
  REQUIRE(r.exited_ok);
  auto kv = test_support::parse_report(r.err);
  REQUIRE(kv.count("written") == 1);
  const auto written = std::stoull(kv["written"]);
  const auto lost = std::stoull(kv["lost"]);
  CHECK(written + lost == kFrames);
  CHECK(std::stoull(kv["refused"]) == lost);  // every lost frame refused by record(), none later
  CHECK(written >= 4);                        // the fault comes mid-run...
  CHECK(lost >= 20);                          // ...and stops the recording
  CHECK(kv["error"].find(path) != std::string::npos);
  CHECK(kv["error"].find(reason) != std::string::npos);
  CHECK(kv["pool_full_before_close"] == "1");
  CHECK(kv["pool_full"] == "1");
  CHECK(r.err.find("HDF5-DIAG") == std::string::npos);  // no error stack spewed on the application's stderr
}

}  // namespace

TEST_CASE("hdf5, file too large (EFBIG from RLIMIT_FSIZE): error names the file, frames lost counted, pool full") {
  test_support::TempDir dir("hdf5_faults");
  const std::string path = dir.file("efbig.h5");
  const auto r = test_support::in_child([&] {
    ::alarm(60);
    std::signal(SIGXFSZ, SIG_IGN);  // else the kernel kills the writer; ignored, the write fails with EFBIG
    const rlim_t limit = 10 * kFrameBytes + kFrameBytes / 2;  // room for ~10 frames and the metadata
    const struct rlimit rl{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &rl);
    record_and_report(path);
  });
  check_fault(r, path, "File too large");
}

TEST_CASE("hdf5, disk full mid-run (ENOSPC on a 1 MiB tmpfs): error names the file, frames lost counted, pool full") {
  test_support::TempDir dir("hdf5_faults");
  const std::string path = dir.file("full.h5");
  const auto r = test_support::in_child([&] {
    ::alarm(60);
    test_support::enter_userns_mount(dir.path(), "tmpfs", "size=1m");
    record_and_report(path);
    std::fprintf(stderr, "h5close=%d\n", H5close() >= 0 ? 1 : 0);  // nothing left open, no crash
  });
  if (test_support::userns_unavailable(r)) return;
  check_fault(r, path, "No space left on device");
  CHECK(test_support::parse_report(r.err)["h5close"] == "1");
}
