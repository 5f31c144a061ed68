// docs/broadcast.md's example: one producer publishes frames to three
// subscribers, each with its own policy: a recorder that must not lose a
// frame (block), an analysis that may fall behind (drop_newest), a live view
// that wants the freshest frame (keep_latest). Then the per-subscriber
// counters and the channel's in-hands count.
#include <daq_pool/daq_pool.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

using namespace std::chrono_literals;

int main() {
  // --8<-- [start:setup]
  // Sizing: the producer's frame + each queue's capacity + one frame held
  // by each subscriber: 1 + (16 + 1) + (4 + 1) + (1 + 1) = 25 buffers.
  daq_pool::BufferPool pool(25, 1 << 16);
  daq_pool::Broadcast channel(8);  // at most 8 subscribers

  daq_pool::SubscriberOptions recorder_opts;
  recorder_opts.on_full = daq_pool::OnFull::block;  // the producer waits (up to its deadline)
  recorder_opts.capacity = 16;
  recorder_opts.name = "recorder";
  daq_pool::SubscriberOptions analysis_opts;
  analysis_opts.on_full = daq_pool::OnFull::drop_newest;  // skip frames while busy, counted
  analysis_opts.capacity = 4;
  analysis_opts.name = "analysis";
  daq_pool::SubscriberOptions viewer_opts;
  viewer_opts.on_full = daq_pool::OnFull::keep_latest;  // always the freshest frame
  viewer_opts.capacity = 1;
  viewer_opts.name = "viewer";

  daq_pool::Subscriber recorder = channel.subscribe(recorder_opts);
  daq_pool::Subscriber analysis = channel.subscribe(analysis_opts);
  daq_pool::Subscriber viewer = channel.subscribe(viewer_opts);
  // --8<-- [end:setup]

  // --8<-- [start:consumers]
  // Each subscriber on its own thread: receive() spins briefly, then sleeps
  // on a futex; it returns nothing once the channel is closed and drained.
  std::uint64_t recorded = 0, analysed = 0, viewed = 0;
  std::thread t_recorder([&] {
    while (std::optional<daq_pool::Received> frame = recorder.receive()) recorded += frame->size() > 0;
  });
  std::thread t_analysis([&] {
    while (std::optional<daq_pool::Received> frame = analysis.receive()) {
      std::this_thread::sleep_for(200us);  // slow: falls behind, frames are skipped
      ++analysed;
    }
  });
  std::thread t_viewer([&] {
    while (std::optional<daq_pool::Received> frame = viewer.receive()) {
      std::this_thread::sleep_for(1ms);  // a 1000 fps display, at most
      ++viewed;
    }
  });
  // --8<-- [end:consumers]

  // --8<-- [start:publish]
  for (std::uint64_t n = 0; n < 2000; ++n) {
    daq_pool::PooledBuffer buffer = pool.acquire();
    buffer.set_size(buffer.capacity());
    std::memcpy(buffer.data(), &n, sizeof n);
    // Each subscriber gets its own view of the same buffer; the tag travels
    // with it (Received::tag()). A full block subscriber may hold this call
    // up to 100 ms; then it misses the frame (counted as timed out).
    channel.publish_for(std::move(buffer).freeze(), 100ms, n);
  }
  channel.close();  // each subscriber receives what is queued, then the end
  // --8<-- [end:publish]
  t_recorder.join();
  t_analysis.join();
  t_viewer.join();

  // --8<-- [start:counters]
  for (const daq_pool::Subscriber* s : {&recorder, &analysis, &viewer}) {
    const daq_pool::SubscriberStats st = s->stats();
    std::printf("%-9s %-12s delivered %5llu  dropped %5llu  high water %zu of %zu\n", s->name().c_str(),
                daq_pool::to_string(st.on_full), static_cast<unsigned long long>(st.delivered),
                static_cast<unsigned long long>(st.dropped), st.high_water, st.capacity);
  }
  std::printf("frames in subscribers' hands: %llu; pool buffers free: %zu of %zu\n",
              static_cast<unsigned long long>(channel.in_hands()), pool.available(), pool.size());
  // --8<-- [end:counters]
  const bool ok = recorded == 2000 && recorder.stats().dropped == 0 && analysed > 0 && viewed > 0 &&
                  channel.in_hands() == 0 && pool.available() == pool.size();
  std::printf("%s\n", ok ? "OK" : "FAILED");
  return ok ? 0 : 1;
}
