// daq_pool/hdf5.hpp: frames from a BufferPool recorded with H5Dwrite_chunk,
// then read back and checked by h5py in a real Python process
// (tests/hdf5/read_h5.py), every frame, number and timestamp; a SWMR reader
// process following the file while it is written; frames of the wrong size
// refused and counted; a file that can't be created named in the error.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/hdf5.hpp>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "dqr_files.hpp"
#include "hdf5_frames.hpp"
#include "watchdog.hpp"

extern char** environ;  // NOLINT(readability-redundant-declaration): posix_spawn's environment

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::hdf5::Hdf5Options;
using daq_pool::hdf5::Hdf5Recorder;

namespace {

constexpr std::uint64_t kHeight = 48;
constexpr std::uint64_t kWidth = 64;

/// Frame `f`, kHeight x kWidth.
Bytes make_frame(BufferPool& pool, std::uint64_t f) { return test_support::u16_frame(pool, f, kHeight * kWidth); }

/// A Python process running read_h5.py, its stdout in a pipe; stopped and
/// reaped by PID (SIGKILL after `limit`) whatever happens.
class Reader {
 public:
  /// `progress`: with `follow`, the file where the reader writes how many
  /// frames it has seen (see wait_until_seen).
  Reader(const std::string& path, std::uint64_t n, bool follow, const std::string& progress = {}) {
    REQUIRE(::pipe(out_) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, out_[0]);
    std::vector<std::string> args = {HDF5_PYTHON, HDF5_READER, path, std::to_string(n)};
    if (follow) args.emplace_back("--follow");
    if (!progress.empty()) args.emplace_back("--progress=" + progress);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = ::posix_spawn(&pid_, HDF5_PYTHON, &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out_[1]);
    REQUIRE(rc == 0);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  ~Reader() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_[0]);
  }

  /// Waits (at most `limit`) for the exit; returns the exit code (-1: killed
  /// or timed out) and the output.
  int wait(std::string& output, std::chrono::seconds limit = std::chrono::seconds(90)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    char buf[4096];
    for (;;) {
      const ssize_t n = ::read(out_[0], buf, sizeof buf);
      if (n <= 0) break;
      output.append(buf, static_cast<std::size_t>(n));
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  pid_t pid_ = -1;
  int out_[2] = {-1, -1};
};

/// Waits (at most `limit`) until the reader's progress file says it has
/// seen at least `n` frames. True if it has.
bool wait_until_seen(const std::string& progress, std::uint64_t n,
                     std::chrono::seconds limit = std::chrono::seconds(60)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(progress);
    std::uint64_t seen = 0;
    if (in >> seen && seen >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

Hdf5Options options(std::uint64_t flush_every) {
  Hdf5Options o;
  o.dtype = "<u2";
  o.height = kHeight;
  o.width = kWidth;
  o.flush_every = flush_every;
  return o;
}

}  // namespace

TEST_CASE("every frame written with H5Dwrite_chunk reads back in h5py") {
  test_support::Watchdog dog("hdf5 read back", std::chrono::seconds(180));
  test_support::TempDir dir("hdf5");
  const std::string path = dir.file("frames.h5");
  constexpr std::uint64_t frames = 50;
  BufferPool pool(2, kHeight * kWidth * 2);
  {
    Hdf5Recorder rec(path, options(16));
    for (std::uint64_t f = 0; f < frames; ++f)
      REQUIRE(rec.record(make_frame(pool, f + 7), f + 7, static_cast<std::int64_t>((f + 7) * 10)));
    CHECK(pool.available() == pool.size());  // each view released when its chunk is written
    rec.close();
    CHECK(rec.stats().frames_written == frames);
    CHECK(rec.stats().frames_lost == 0);
    CHECK_FALSE(rec.error());
  }
  Reader reader(path, frames, false);
  std::string out;
  const int rc = reader.wait(out);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("frames=50 checked=50") != std::string::npos);
}

TEST_CASE("a SWMR reader process follows the file while it is written") {
  test_support::Watchdog dog("hdf5 swmr", std::chrono::seconds(180));
  test_support::TempDir dir("hdf5");
  const std::string path = dir.file("swmr.h5");
  constexpr std::uint64_t frames = 60;
  BufferPool pool(2, kHeight * kWidth * 2);
  Hdf5Recorder rec(path, options(1));
  // The first frame is in before the reader opens: its datasets exist and
  // SWMR writing has started.
  REQUIRE(rec.record(make_frame(pool, 0), 0, 0));
  const std::string progress = dir.file("seen");
  Reader reader(path, frames, true, progress);
  // The writer waits for the reader at two points (it has seen frame 0, then
  // the first half), so the reader sees the file grow at least three times
  // however slowly it starts (h5py's import takes seconds on a loaded
  // machine): a check of following, not of timing.
  REQUIRE(wait_until_seen(progress, 1));
  for (std::uint64_t f = 1; f < frames; ++f) {
    if (f == frames / 2) REQUIRE(wait_until_seen(progress, f));
    REQUIRE(rec.record(make_frame(pool, f), f, static_cast<std::int64_t>(f * 10)));
  }
  std::string out;
  const int rc = reader.wait(out);
  rec.close();
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("frames=60 checked=60") != std::string::npos);
  // It saw the file grow more than once: it followed, not read at the end.
  const auto g = out.find("growths=");
  REQUIRE(g != std::string::npos);
  CHECK(std::stoi(out.substr(g + 8)) > 1);
}

TEST_CASE("wrong-size frames are refused and counted; a bad path is named") {
  test_support::TempDir dir("hdf5");
  BufferPool pool(2, kHeight * kWidth * 2 + 10);
  Hdf5Recorder rec(dir.file("sizes.h5"), options(0));
  auto b = pool.acquire();
  b.set_size(100);
  CHECK_FALSE(rec.record(std::move(b).freeze(), 0, 0));
  CHECK(rec.record(make_frame(pool, 1), 1, 10));
  CHECK(rec.stats().frames_lost == 1);
  CHECK(rec.stats().frames_written == 1);
  REQUIRE(rec.wrong_size());
  CHECK(rec.wrong_size()->find("has 100 bytes") != std::string::npos);
  CHECK(pool.available() == pool.size());
  rec.close();

  const std::string bad = dir.file("no/such/dir/x.h5");
  std::string msg;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);  // the failure is expected: no HDF5 stack dump
  try {
    Hdf5Recorder r(bad, options(1));
  } catch (const daq_pool::hdf5::hdf5_error& e) {
    msg = e.what();
  }
  CHECK(msg.find(bad) != std::string::npos);
  Hdf5Options o = options(1);
  o.dtype = "<c8";
  CHECK_THROWS_AS(Hdf5Recorder(dir.file("c.h5"), o), std::invalid_argument);
}
