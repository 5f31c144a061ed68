// Aravis issue #367, as a test. There, Aravis's GStreamer source wraps an
// ArvBuffer's memory in a GstBuffer and re-queues the same memory to the
// camera at once, so a frame still in use downstream gets overwritten. Here:
// few buffers, a camera much faster than its consumers, and consumer threads
// that hold views for random times. Every view must still show its own
// frame's pattern when it is checked again just before it is dropped; no two
// live frames may share a buffer; and the camera underruns (drops frames,
// counted) instead of overwriting.
#include <daq_pool/aravis.hpp>
#include <daq_pool/aravis/fake_camera.hpp>
#include <daq_pool/buffer_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "aravis_test_support.hpp"
#include "catch.hpp"
#include "watchdog.hpp"

using namespace std::chrono_literals;
using daq_pool::aravis::CameraSource;
using daq_pool::aravis::FakeCameraPattern;
using daq_pool::aravis::Frame;

namespace {

/// The frames handed to the consumers, and the buffers currently held by a
/// live frame (to prove no buffer is handed out twice at once).
struct Shared {
  std::mutex mutex;
  std::condition_variable changed;
  std::deque<Frame> queue;
  bool done = false;
  std::multiset<const std::byte*> live;  // data() of every frame some thread still holds
  std::string first_failure;
  std::uint64_t checked_twice = 0;

  void fail(const std::string& what) {
    std::lock_guard lock(mutex);
    if (first_failure.empty()) first_failure = what;
  }
};

/// Holds each frame for a random time, checking its pattern when it arrives
/// and again just before dropping it.
void consume(Shared& shared, const FakeCameraPattern& pattern, unsigned seed) {
  std::mt19937 random(seed);
  std::uniform_int_distribution<int> hold_us(0, 15000);
  for (;;) {
    Frame frame;
    {
      std::unique_lock lock(shared.mutex);
      shared.changed.wait(lock, [&] { return !shared.queue.empty() || shared.done; });
      if (shared.queue.empty()) return;
      frame = std::move(shared.queue.front());
      shared.queue.pop_front();
    }
    if (const char* why = pattern.check(frame))
      shared.fail("frame " + std::to_string(frame.frame_id) + " on arrival: " + why);
    std::this_thread::sleep_for(std::chrono::microseconds(hold_us(random)));
    // The moment #367 breaks: the camera has long since produced newer
    // frames, so a re-queued buffer would now hold one of them.
    if (const char* why = pattern.check(frame))
      shared.fail("frame " + std::to_string(frame.frame_id) + " overwritten while held: " + why);
    {
      std::lock_guard lock(shared.mutex);
      shared.live.erase(shared.live.find(frame.data.data()));
      ++shared.checked_twice;
    }
    frame = Frame{};  // the last view of it (unless the other consumer holds a copy): back to the pool
  }
}

}  // namespace

TEST_CASE("#367: a buffer is never re-queued while a view of it lives; the camera underruns instead") {
  test_support::Watchdog watchdog("#367 scenario", std::chrono::seconds(120));
  daq_pool::aravis::FakeCameraSettings settings;
  settings.width = 256;
  settings.height = 256;
  settings.frame_rate = 500;  // far faster than three buffers held ~7 ms each can take
  auto camera = aravis_test::open_fake_camera(settings);
  const FakeCameraPattern pattern = FakeCameraPattern::of(camera.get());
  constexpr std::size_t buffers = 3;
  CameraSource source(camera.get(), daq_pool::BufferPool(buffers, daq_pool::aravis::payload_bytes(camera.get())));

  Shared shared;
  std::vector<std::thread> consumers;
  for (unsigned i = 0; i < 2; ++i) consumers.emplace_back([&, i] { consume(shared, pattern, 367 + i); });

  source.start();
  constexpr std::uint64_t frames = 300;
  std::uint64_t delivered = 0, fanned_out = 0;
  std::size_t most_live = 0;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (delivered < frames && std::chrono::steady_clock::now() < until) {
    std::optional<Frame> frame = source.next(1s);
    if (!frame) continue;
    ++delivered;
    std::lock_guard lock(shared.mutex);
    // Exclusive ownership: a buffer comes back from the camera only when no
    // one holds a view of it.
    if (shared.live.count(frame->data.data()) != 0) {
      shared.first_failure = "frame " + std::to_string(frame->frame_id) + " delivered in a buffer still held";
      break;
    }
    // Every third frame goes to both consumers: its last view then dies on
    // whichever finishes last.
    const bool both = delivered % 3 == 0;
    shared.live.insert(frame->data.data());
    if (both) {
      shared.live.insert(frame->data.data());
      shared.queue.push_back(*frame);
      ++fanned_out;
    }
    shared.queue.push_back(std::move(*frame));
    most_live = std::max(most_live, std::set<const std::byte*>(shared.live.begin(), shared.live.end()).size());
    shared.changed.notify_all();
  }
  {
    std::lock_guard lock(shared.mutex);
    shared.done = true;
  }
  shared.changed.notify_all();
  for (std::thread& t : consumers) t.join();
  source.stop();

  const daq_pool::aravis::CameraSourceStats st = source.stats();
  std::printf(
      "#367: %llu frames (%llu to both consumers), %llu checked twice, underruns %llu, starved %llu, "
      "most buffers held at once %zu of %zu\n",
      static_cast<unsigned long long>(delivered), static_cast<unsigned long long>(fanned_out),
      static_cast<unsigned long long>(shared.checked_twice), static_cast<unsigned long long>(st.underruns),
      static_cast<unsigned long long>(st.starved), most_live, buffers);
  INFO(shared.first_failure);
  CHECK(shared.first_failure.empty());
  CHECK(delivered == frames);
  CHECK(shared.checked_twice == delivered + fanned_out);
  CHECK(shared.live.empty());
  // The consumers held every buffer at times, and the camera dropped frames
  // rather than write into one of them.
  CHECK(st.underruns > 0);
  CHECK(st.starved > 0);
  CHECK(source.pool().available() + st.queued == buffers);
}
