// The recorder's faults, each provoked for real in a child process:
//  - file too large: setrlimit(RLIMIT_FSIZE) (SIGXFSZ ignored) -> EFBIG;
//  - disk full mid-run: a 1 MiB tmpfs mounted in a user namespace -> ENOSPC;
//  - SIGKILL mid-recording: the parent kills a recording child, then the
//    file opens and yields every frame its index lists, each verified, at
//    least every frame the child had reported written;
//  - O_DIRECT refused: ramfs (mounted in a user namespace) refuses O_DIRECT
//    with EINVAL -> the buffered fallback, reported; or, with the fallback
//    off, a recording_error naming the file.
// Every fault: a clear error naming the file, the lost frames counted
// (written + lost == offered), every view released (the pool full again),
// and the child finishing (no hang: each child arms alarm(60), which kills
// it, and the parent then sees the failure; no watchdog thread, so that the
// parent forks single-threaded, as ThreadSanitizer requires).
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/recording/dqr_reader.hpp>
#include <daq_pool/recording/recorder.hpp>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "death_test.hpp"
#include "dqr_files.hpp"
#include "fault_child.hpp"
#include "recorder_under_test.hpp"

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::recording::DqrReader;
using Recorder = test_support::RecorderUnderTest;
using daq_pool::recording::RecorderOptions;
using test_support::pattern;
using test_support::TempDir;
using test_support::enter_userns_mount;
using test_support::userns_unavailable;

namespace {

constexpr std::size_t kCapacity = 64 * 1024 + 300;  // a tail on every frame

Bytes make_frame(BufferPool& pool, std::uint64_t frame) {
  auto b = pool.acquire();
  for (std::size_t i = 0; i < kCapacity; ++i) b.data()[i] = pattern(frame, i);
  b.set_size(kCapacity);
  return std::move(b).freeze();
}

/// Records `frames` frames into `path` from a pool of queue_depth + 1
/// buffers, then prints what happened as key=value lines on stderr (the
/// parent parses them).
void record_and_report(const std::string& path, std::uint64_t frames, RecorderOptions o = {}) try {
  o.frame_capacity = kCapacity;
  o.queue_depth = 3;
  BufferPool pool(o.queue_depth + 1, kCapacity);
  std::uint64_t refused = 0;
  {
    Recorder rec(path, o);
    for (std::uint64_t f = 0; f < frames; ++f)
      if (!rec.record(make_frame(pool, f), f, static_cast<std::int64_t>(f))) ++refused;
    rec.close();
    const auto st = rec.stats();
    std::fprintf(stderr, "written=%llu\nlost=%llu\nrefused=%llu\nerrors=%llu\ndirect=%d\n",
                 static_cast<unsigned long long>(st.frames_written), static_cast<unsigned long long>(st.frames_lost),
                 static_cast<unsigned long long>(refused), static_cast<unsigned long long>(st.errors),
                 st.direct_io ? 1 : 0);
    std::fprintf(stderr, "error=%s\nfallback=%s\n", rec.error().value_or("").c_str(), rec.fallback_reason().c_str());
  }
  std::fprintf(stderr, "pool_full=%d\n", pool.available() == pool.size() ? 1 : 0);
} catch (const std::exception& e) {
  std::fprintf(stderr, "exception=%s\n", e.what());
  std::_Exit(4);
}

/// Every frame `path` lists is intact; returns how many.
std::size_t verify_file(const std::string& path) {
  DqrReader r(path);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < r.size(); ++i) {
    const auto& e = r.index()[i];
    const auto v = r.read(i);
    bool same = v.size() == kCapacity && e.timestamp_ns == static_cast<std::int64_t>(e.frame_number);
    for (std::size_t k = 0; same && k < v.size(); ++k) same = v[k] == pattern(e.frame_number, k);
    if (!same) ++bad;
  }
  CHECK(bad == 0);
  return r.size();
}

}  // namespace

TEST_CASE("file too large (EFBIG from RLIMIT_FSIZE): error names the file, frames lost counted, pool full") {
  TempDir dir("recorder_faults");
  const std::string path = dir.file("efbig.dqr");
  const auto stride = daq_pool::recording::dqr::stride_for(kCapacity, 4096);
  constexpr std::uint64_t frames = 40;
  const auto r = test_support::in_child([&] {
    ::alarm(60);
    std::signal(SIGXFSZ, SIG_IGN);  // else the kernel kills the writer; ignored, the write fails with EFBIG
    const rlim_t limit = 4096 + 10 * stride + stride / 2;  // room for 10.5 records
    const struct rlimit rl{limit, limit};
    ::setrlimit(RLIMIT_FSIZE, &rl);
    record_and_report(path, frames);
  });
  INFO(r.err);
  REQUIRE(r.exited_ok);
  auto kv = test_support::parse_report(r.err);
  const auto written = std::stoull(kv["written"]);
  const auto lost = std::stoull(kv["lost"]);
  CHECK(written + lost == frames);
  CHECK(written >= 7);  // at least the first records before the limit (3 in flight may fail out of order)
  CHECK(written <= 10);
  CHECK(lost >= 30);
  CHECK(kv["error"].find(path) != std::string::npos);
  CHECK(kv["error"].find("File too large") != std::string::npos);
  CHECK(kv["error"].find("offset") != std::string::npos);
  CHECK(kv["pool_full"] == "1");
  CHECK(verify_file(path) == written);
}

TEST_CASE("disk full mid-run (ENOSPC on a 1 MiB tmpfs): error names the file, frames lost counted, pool full") {
  TempDir dir("recorder_faults");
  constexpr std::uint64_t frames = 40;
  const std::string path = dir.file("full.dqr");
  const auto r = test_support::in_child([&] {
    ::alarm(60);
    enter_userns_mount(dir.path(), "tmpfs", "size=1m");
    record_and_report(path, frames);
    // The mount goes with the child's namespace: verify the file here.
    DqrReader rd(path);
    std::size_t bad = 0;
    for (std::size_t i = 0; i < rd.size(); ++i) {
      const auto v = rd.read(i);
      for (std::size_t k = 0; k < v.size(); ++k)
        if (v[k] != pattern(rd.index()[i].frame_number, k)) {
          ++bad;
          break;
        }
    }
    std::fprintf(stderr, "listed=%zu\nbad=%zu\n", rd.size(), bad);
  });
  if (userns_unavailable(r)) return;
  INFO(r.err);
  REQUIRE(r.exited_ok);
  auto kv = test_support::parse_report(r.err);
  const auto written = std::stoull(kv["written"]);
  const auto lost = std::stoull(kv["lost"]);
  CHECK(written + lost == frames);
  CHECK(written >= 5);
  CHECK(lost >= 20);
  CHECK(kv["error"].find(path) != std::string::npos);
  CHECK(kv["error"].find("No space left on device") != std::string::npos);
  CHECK(kv["pool_full"] == "1");
  CHECK(std::stoull(kv["listed"]) == written);
  CHECK(kv["bad"] == "0");
}

TEST_CASE("SIGKILL mid-recording: the file yields every frame its index lists, verified") {
  TempDir dir("recorder_faults");
  const std::string path = dir.file("killed.dqr");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::alarm(60);
    ::close(fds[0]);
    RecorderOptions o;
    o.frame_capacity = kCapacity;
    o.queue_depth = 4;
    BufferPool pool(5, kCapacity);
    Recorder rec(path, o);
    // Bounded: at most 20000 frames (1.3 GB offered, but the parent kills
    // the child after ~100 and the file stays far below 1 GiB).
    for (std::uint64_t f = 0; f < 20000; ++f) {
      rec.record(make_frame(pool, f), f, static_cast<std::int64_t>(f));
      const std::uint64_t w = rec.stats().frames_written;
      if (::write(fds[1], &w, sizeof w) != sizeof w) std::_Exit(3);
    }
    std::_Exit(2);  // never reached if the parent kills in time
  }
  ::close(fds[1]);
  std::uint64_t reported = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (reported < 100 && std::chrono::steady_clock::now() < deadline) {
    std::uint64_t w = 0;
    if (::read(fds[0], &w, sizeof w) != sizeof w) break;
    reported = w;
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(fds[0]);
  REQUIRE(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  REQUIRE(reported >= 100);
  DqrReader r(path);
  const std::size_t listed = verify_file(path);
  // Every frame the child saw written is listed; at most queue_depth more
  // (in flight at the kill) may have committed after its last report.
  CHECK(listed >= reported);
  CHECK(listed <= reported + 4 + 1);
  CHECK(r.holes() <= 4);
  // Frames are listed in record order, and the record order is frame order.
  for (std::size_t i = 0; i < r.size(); ++i) CHECK(r.index()[i].frame_number == r.index()[i].record);
}

TEST_CASE("O_DIRECT refused (ramfs, EINVAL): buffered fallback reported, or an error naming the file") {
  TempDir dir("recorder_faults");
  const std::string path = dir.file("ramfs.dqr");
  const auto r = test_support::in_child([&] {
    ::alarm(60);
    enter_userns_mount(dir.path(), "ramfs", nullptr);
    record_and_report(path, 20);
    std::fprintf(stderr, "listed=%zu\nbuffered_flag=%d\n", DqrReader(path).size(),
                 (DqrReader(path).header().flags & daq_pool::recording::dqr::kFlagBuffered) != 0 ? 1 : 0);
    RecorderOptions strict;
    strict.frame_capacity = 4096;
    strict.allow_buffered_fallback = false;
    try {
      Recorder rec(dir.file("strict.dqr"), strict);
      std::fprintf(stderr, "strict=accepted\n");
    } catch (const daq_pool::recording::recording_error& e) {
      std::fprintf(stderr, "strict=%s\n", e.what());
    }
  });
  if (userns_unavailable(r)) return;
  INFO(r.err);
  REQUIRE(r.exited_ok);
  auto kv = test_support::parse_report(r.err);
  CHECK(kv["written"] == "20");
  CHECK(kv["lost"] == "0");
  CHECK(kv["direct"] == "0");
  CHECK(kv["fallback"].find("O_DIRECT refused") != std::string::npos);
  CHECK(kv["pool_full"] == "1");
  CHECK(kv["listed"] == "20");
  CHECK(kv["buffered_flag"] == "1");
  CHECK(kv["strict"].find(dir.file("strict.dqr")) != std::string::npos);
  CHECK(kv["strict"].find("O_DIRECT refused") != std::string::npos);
}
