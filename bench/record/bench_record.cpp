// bench_record (issue 21): how fast frames reach a real disk, every way in
// the same run, as ratios against the floor:
//   floor      own O_DIRECT loop: the file fallocated, then queue_depth
//              threads pwrite 8 MiB blocks from one aligned buffer (no index,
//              no pool): what the disk takes
//   pagecache  write() through the page cache, fdatasync at the end
//   threads    recording::Recorder (writer threads, O_DIRECT), from a pool
//   uring      recording::UringRecorder (io_uring, O_DIRECT), from a pool
//   h5chunk    hdf5::Hdf5Recorder (H5Dwrite_chunk), fdatasync at the end
//   h5write    the same frames with H5Dwrite (HDF5's pipeline), fdatasync
// Each mode writes one file of --size-mib under --dir (a real filesystem,
// not tmpfs), then deletes it. Reported per mode: GB/s, ratio to the floor,
// CPU seconds (user + system, all threads) per GB written.
//
// --sustain=SECONDS: instead, a camera thread produces --fps frames/s into
// a pool of --pool buffers (try_acquire: an empty pool is a frame lost, as a
// camera SDK overrun would be) and --backend records them, rotating to a new
// file every --rotate-mib (old files deleted) so that a long run stays within
// the disk's room; reports frames produced, recorded, lost.
//
//   bench_record --dir=/var/tmp --size-mib=4096 --frame-mib=8
//   bench_record --dir=/var/tmp --sustain=60 --fps=100 --backend=uring
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/recording/recorder.hpp>

#if defined(DAQ_BENCH_HAVE_URING)
#include <daq_pool/uring.hpp>
#endif
#if defined(DAQ_BENCH_HAVE_HDF5)
#include <daq_pool/hdf5.hpp>
#endif

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <utility>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
namespace rec = daq_pool::recording;

struct Args {
  std::string dir = "/var/tmp";
  std::uint64_t size_mib = 4096;
  std::uint64_t frame_mib = 8;
  std::size_t queue_depth = 4;
  std::string modes = "floor,pagecache,threads,uring,h5chunk,h5write";
  double sustain = 0;
  double fps = 100;
  std::size_t pool = 30;
  std::string backend = "uring";
  std::uint64_t rotate_mib = 4096;
  int repeat = 1;
};

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "bench_record: %s\n", what.c_str());
  std::exit(1);
}

void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::fdatasync(fd) != 0) die("fdatasync " + path + ": " + std::strerror(errno));
  ::close(fd);
}

struct Result {
  double seconds = 0;
  double cpu = 0;
  std::uint64_t bytes = 0;
  std::string note;
};

/// Frames for the recorders: a pool of queue_depth + 2 buffers, each filled
/// once with a pattern (a camera writes them by DMA: no per-frame fill here).
daq_pool::BufferPool filled_pool(std::size_t count, std::size_t frame) {
  daq_pool::BufferPool pool(count, frame);
  std::vector<daq_pool::PooledBuffer> all;
  for (std::size_t i = 0; i < count; ++i) {
    all.push_back(pool.acquire());
    for (std::size_t k = 0; k < frame; k += 8) std::memset(all.back().data() + k, static_cast<int>(i + k / 4096), 8);
  }
  return pool;
}

template <class Recorder>
Result run_recorder(const Args& a, const std::string& path) {
  const std::size_t frame = a.frame_mib << 20;
  const std::uint64_t frames = (a.size_mib << 20) / frame;
  daq_pool::BufferPool pool = filled_pool(a.queue_depth + 2, frame);
  rec::RecorderOptions o;
  o.frame_capacity = frame;
  o.queue_depth = a.queue_depth;
  const double c0 = cpu_seconds();
  const auto t0 = Clock::now();
  Recorder r(path, o);
  for (std::uint64_t f = 0; f < frames; ++f) {
    auto b = pool.acquire();
    b.set_size(frame);
    r.record(std::move(b).freeze(), f, 0);
  }
  r.close();
  Result res;
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  res.cpu = cpu_seconds() - c0;
  const auto st = r.stats();
  res.bytes = st.bytes_written;
  if (st.frames_lost != 0 || r.error()) die(path + ": " + r.error().value_or("frames lost"));
  res.note = st.direct_io ? "O_DIRECT" : "buffered: " + r.fallback_reason();
  return res;
}

Result run_floor(const Args& a, const std::string& path) {
  const std::size_t frame = a.frame_mib << 20;
  const std::uint64_t frames = (a.size_mib << 20) / frame;
  void* buf = std::aligned_alloc(4096, frame);
  std::memset(buf, 0x5a, frame);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
  if (fd < 0) die("open O_DIRECT " + path + ": " + std::strerror(errno));
  std::atomic<std::uint64_t> next{0};
  const double c0 = cpu_seconds();
  const auto t0 = Clock::now();
  // The whole file allocated first (timed): the writes then never extend
  // the file, which ext4 serializes. What the disk takes, at its best.
  (void)::fallocate(fd, 0, 0, static_cast<off_t>(frames * frame));
  std::vector<std::thread> ts;
  for (std::size_t t = 0; t < a.queue_depth; ++t)
    ts.emplace_back([&] {
      for (std::uint64_t k; (k = next.fetch_add(1)) < frames;)
        if (::pwrite(fd, buf, frame, static_cast<off_t>(k * frame)) != static_cast<ssize_t>(frame))
          die("pwrite " + path + ": " + std::strerror(errno));
    });
  for (auto& t : ts) t.join();
  ::fdatasync(fd);
  Result r;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu = cpu_seconds() - c0;
  r.bytes = frames * frame;
  r.note = "O_DIRECT, " + std::to_string(a.queue_depth) + " threads";
  ::close(fd);
  std::free(buf);
  return r;
}

Result run_pagecache(const Args& a, const std::string& path) {
  const std::size_t frame = a.frame_mib << 20;
  const std::uint64_t frames = (a.size_mib << 20) / frame;
  std::vector<char> buf(frame, 0x5a);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) die("open " + path);
  const double c0 = cpu_seconds();
  const auto t0 = Clock::now();
  for (std::uint64_t k = 0; k < frames; ++k)
    if (::write(fd, buf.data(), frame) != static_cast<ssize_t>(frame)) die("write " + path);
  ::fdatasync(fd);
  Result r;
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu = cpu_seconds() - c0;
  r.bytes = frames * frame;
  r.note = "write() + fdatasync";
  ::close(fd);
  return r;
}

#if defined(DAQ_BENCH_HAVE_HDF5)
Result run_h5(const Args& a, const std::string& path, bool direct_chunk) {
  const std::size_t frame = a.frame_mib << 20;
  const std::uint64_t frames = (a.size_mib << 20) / frame;
  // Frames as 2-byte pixels, 1024 wide.
  const std::uint64_t width = 1024;
  const std::uint64_t height = frame / 2 / width;
  daq_pool::BufferPool pool = filled_pool(2, frame);
  daq_pool::hdf5::Hdf5Options o;
  o.dtype = "<u2";
  o.height = height;
  o.width = width;
  o.flush_every = 0;
  o.swmr = true;
  const double c0 = cpu_seconds();
  const auto t0 = Clock::now();
  Result r;
  if (direct_chunk) {
    daq_pool::hdf5::Hdf5Recorder h(path, o);
    for (std::uint64_t f = 0; f < frames; ++f) {
      auto b = pool.acquire();
      b.set_size(frame);
      if (!h.record(std::move(b).freeze(), f, 0)) die(path + ": " + h.error().value_or("lost"));
    }
    h.close();
    r.note = "H5Dwrite_chunk + fdatasync";
  } else {
    // The same file as the recorder's: latest format, SWMR writing.
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST);
    hid_t file = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    const hsize_t dims[3] = {0, height, width};
    const hsize_t maxdims[3] = {H5S_UNLIMITED, height, width};
    const hsize_t chunk[3] = {1, height, width};
    hid_t space = H5Screate_simple(3, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 3, chunk);
    hid_t d = H5Dcreate2(file, "frames", H5T_STD_U16LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    const hsize_t one[3] = {1, height, width};
    hid_t mem = H5Screate_simple(3, one, nullptr);
    H5Fstart_swmr_write(file);
    for (std::uint64_t f = 0; f < frames; ++f) {
      auto b = pool.acquire();
      const hsize_t grow[3] = {f + 1, height, width};
      H5Dset_extent(d, grow);
      hid_t fs = H5Dget_space(d);
      const hsize_t start[3] = {f, 0, 0};
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, nullptr, one, nullptr);
      if (H5Dwrite(d, H5T_NATIVE_UINT16, mem, fs, H5P_DEFAULT, b.data()) < 0) die(path + ": H5Dwrite");
      H5Sclose(fs);
    }
    H5Sclose(mem);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(space);
    H5Fclose(file);
    r.note = "H5Dwrite + fdatasync";
  }
  sync_file(path);
  r.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  r.cpu = cpu_seconds() - c0;
  r.bytes = frames * frame;
  return r;
}
#endif

/// The sustained run: a camera thread at `fps` into a pool, the recorder
/// behind it, files rotated (each closed on a thread of its own, then
/// deleted, so that rotation never stalls the camera).
template <class Recorder>
int sustain(const Args& a) {
  const std::size_t frame = a.frame_mib << 20;
  daq_pool::BufferPool pool = filled_pool(a.pool, frame);
  rec::RecorderOptions o;
  o.frame_capacity = frame;
  o.queue_depth = a.queue_depth;
  const std::uint64_t per_file = (a.rotate_mib << 20) / frame;
  const auto name = [&](std::size_t n) {
    return a.dir + "/bench_record_sustain_" + std::to_string(::getpid()) + "_" + std::to_string(n) + ".dqr";
  };
  std::vector<std::shared_ptr<Recorder>> files;
  files.push_back(std::make_shared<Recorder>(name(0), o));
  std::vector<std::thread> closers;
  std::uint64_t produced = 0;
  std::uint64_t overruns = 0;
  std::uint64_t in_file = 0;
  const bool direct = files.back()->stats().direct_io;
  const auto period = std::chrono::duration<double>(1.0 / a.fps);
  // The camera never waits: at each exposure it takes a free buffer or
  // counts an overrun (an SDK losing the frame); the recorder's subscriber,
  // a thread of its own, takes the frames in order and records them
  // (record() waits while queue_depth frames are in flight: the pool's other
  // buffers are the slack).
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::pair<std::uint64_t, daq_pool::Bytes>> queue;
  bool done = false;
  std::thread subscriber([&] {
    for (;;) {
      std::unique_lock lock(m);
      cv.wait(lock, [&] { return done || !queue.empty(); });
      if (queue.empty()) return;
      auto [k, view] = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      if (in_file == per_file) {
        std::shared_ptr<Recorder> old = files.back();
        files.push_back(std::make_shared<Recorder>(name(files.size()), o));
        in_file = 0;
        closers.emplace_back([old, path = name(files.size() - 2)] {
          old->close();
          ::unlink(path.c_str());
        });
      }
      files.back()->record(std::move(view), k, 0);
      ++in_file;
    }
  });
  const auto t0 = Clock::now();
  const double c0 = cpu_seconds();
  std::uint64_t late = 0;
  for (std::uint64_t k = 0;; ++k) {
    const auto due = t0 + std::chrono::duration_cast<Clock::duration>(period * static_cast<double>(k));
    if (due - t0 > std::chrono::duration<double>(a.sustain)) break;
    std::this_thread::sleep_until(due);
    if (Clock::now() - due > period) ++late;  // this machine could not keep the camera's pace
    ++produced;
    auto b = pool.try_acquire();
    if (!b) {
      ++overruns;  // the camera found no free buffer: an SDK overrun
      continue;
    }
    b->set_size(frame);
    {
      std::lock_guard lock(m);
      queue.emplace_back(k, std::move(*b).freeze());
    }
    cv.notify_one();
  }
  {
    std::lock_guard lock(m);
    done = true;
  }
  cv.notify_one();
  subscriber.join();
  files.back()->close();
  for (auto& t : closers) t.join();
  ::unlink(name(files.size() - 1).c_str());
  const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  std::uint64_t written = 0;
  std::uint64_t lost = 0;
  for (const auto& f : files) {
    written += f->stats().bytes_written;
    lost += f->stats().frames_lost;
  }
  std::printf("sustained %.1f s, %.1f fps x %llu MiB, pool %zu, %s: produced %llu (late %llu), recorded %llu, camera "
              "overruns %llu, recorder lost %llu, %.2f GB/s, %s, CPU %.2f s/GB\n",
              secs, a.fps, static_cast<unsigned long long>(a.frame_mib), a.pool, a.backend.c_str(),
              static_cast<unsigned long long>(produced), static_cast<unsigned long long>(late),
              static_cast<unsigned long long>(written / frame),
              static_cast<unsigned long long>(overruns), static_cast<unsigned long long>(lost),
              static_cast<double>(written) / secs / 1e9, direct ? "O_DIRECT" : "buffered",
              (cpu_seconds() - c0) / (static_cast<double>(written) / 1e9));
  return overruns == 0 && lost == 0 ? 0 : 2;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    const auto val = [&](const char* key) -> const char* {
      const std::size_t n = std::strlen(key);
      return s.compare(0, n, key) == 0 ? s.c_str() + n : nullptr;
    };
    if (const char* v = val("--dir=")) a.dir = v;
    else if (const char* v = val("--size-mib=")) a.size_mib = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("--frame-mib=")) a.frame_mib = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("--queue-depth=")) a.queue_depth = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("--modes=")) a.modes = v;
    else if (const char* v = val("--sustain=")) a.sustain = std::strtod(v, nullptr);
    else if (const char* v = val("--fps=")) a.fps = std::strtod(v, nullptr);
    else if (const char* v = val("--pool=")) a.pool = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("--backend=")) a.backend = v;
    else if (const char* v = val("--rotate-mib=")) a.rotate_mib = std::strtoull(v, nullptr, 10);
    else if (const char* v = val("--repeat=")) a.repeat = std::atoi(v);
    else die("unknown argument '" + s + "' (see the comment at the top of bench_record.cpp)");
  }
  if (a.frame_mib == 0 || a.size_mib < a.frame_mib || a.queue_depth == 0) die("bad sizes");

  if (a.sustain > 0) {
#if defined(DAQ_BENCH_HAVE_URING)
    if (a.backend == "uring") return sustain<rec::UringRecorder>(a);
#endif
    if (a.backend == "threads") return sustain<rec::Recorder>(a);
    die("unknown or unavailable backend '" + a.backend + "'");
  }

  std::map<std::string, std::function<Result(const std::string&)>> run;
  run["floor"] = [&](const std::string& p) { return run_floor(a, p); };
  run["pagecache"] = [&](const std::string& p) { return run_pagecache(a, p); };
  run["threads"] = [&](const std::string& p) { return run_recorder<rec::Recorder>(a, p); };
#if defined(DAQ_BENCH_HAVE_URING)
  run["uring"] = [&](const std::string& p) { return run_recorder<rec::UringRecorder>(a, p); };
#endif
#if defined(DAQ_BENCH_HAVE_HDF5)
  run["h5chunk"] = [&](const std::string& p) { return run_h5(a, p, true); };
  run["h5write"] = [&](const std::string& p) { return run_h5(a, p, false); };
#endif
  std::printf("bench_record: %llu MiB per mode in %llu MiB frames, queue depth %zu, under %s, %d round(s) "
              "(modes interleaved round by round; the median is shown, min-max beside it)\n\n",
              static_cast<unsigned long long>(a.size_mib), static_cast<unsigned long long>(a.frame_mib),
              a.queue_depth, a.dir.c_str(), a.repeat);
  std::vector<std::string> order;
  const std::string list = a.modes + ",";
  for (std::size_t at = 0, c; (c = list.find(',', at)) != std::string::npos; at = c + 1)
    if (c > at) order.push_back(list.substr(at, c - at));
  std::map<std::string, std::vector<double>> rates;
  std::map<std::string, std::vector<double>> cpus;
  std::map<std::string, std::string> notes;
  // Round-robin: a disk whose speed drifts (a shared VM's) shifts every mode
  // alike instead of the ones measured last. Each round also starts one mode
  // later, so with --repeat a multiple of the number of modes every mode runs
  // in every position. The neighbour still matters: on the project's VM a
  // buffered mode right after an O_DIRECT one ran at half speed and 4x the
  // CPU (docs/recording.md, "Measured numbers"); --modes picks an order.
  for (int round = 0; round < a.repeat; ++round) {
    for (std::size_t k = 0; k < order.size(); ++k) {
      const std::string& m = order[(k + static_cast<std::size_t>(round)) % order.size()];
      if (run.count(m) == 0) continue;
      const std::string path = a.dir + "/bench_record_" + std::to_string(::getpid()) + "_" + m;
      const Result r = run[m](path);
      ::unlink(path.c_str());
      rates[m].push_back(static_cast<double>(r.bytes) / r.seconds / 1e9);
      cpus[m].push_back(r.cpu / (static_cast<double>(r.bytes) / 1e9));
      notes[m] = r.note;
      std::fprintf(stderr, "round %d %s: %.2f GB/s\n", round + 1, m.c_str(), rates[m].back());
    }
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
  };
  std::printf("| mode | GB/s (median) | min-max | vs floor | vs pagecache | CPU s/GB | how |\n"
              "|---|---:|---:|---:|---:|---:|---|\n");
  for (const std::string& m : order) {
    if (rates.count(m) == 0) {
      std::printf("| %s | - | - | - | - | - | not built |\n", m.c_str());
      continue;
    }
    const double g = median(rates[m]);
    const auto ratio = [&](const char* base) {
      if (rates.count(base) == 0) return std::string("-");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.2f", g / median(rates[base]));
      return std::string(buf);
    };
    const auto [lo, hi] = std::minmax_element(rates[m].begin(), rates[m].end());
    std::printf("| %s | %.2f | %.2f-%.2f | %s | %s | %.2f | %s |\n", m.c_str(), g, *lo, *hi, ratio("floor").c_str(),
                ratio("pagecache").c_str(), median(cpus[m]), notes[m].c_str());
  }
  std::fflush(stdout);
  return 0;
}
