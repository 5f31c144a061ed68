// libFuzzer harness for daq_pool/shm.hpp's message handling (issue 14): the
// server's table of views in flight (hold, unhold, release_all, and every
// message a subscriber could send: valid, duplicate, stale, out-of-range
// "done"s, and arbitrary bytes) and the subscriber's handling of frame
// messages (valid, for a busy slot, outside the mapping, arbitrary bytes),
// both over a real shared-memory BufferPool. A reference model predicts
// every verdict and which buffers are out; a view released twice would
// return a buffer twice (the debug check aborts) or break the model.
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_shm_server).
#include <daq_pool/shm.hpp>

#include <sys/mman.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "fuzz_input.hpp"

namespace {

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::shm::detail::FlightTable;
namespace protocol = daq_pool::shm::protocol;

constexpr std::size_t producer_slots = 4;
constexpr std::size_t subscriber_views = 6;

/// An independent reading of "is this a done message": 24 bytes, the
/// little-endian header, the reserved field zero.
std::optional<std::pair<std::uint32_t, std::uint64_t>> model_done(const std::vector<std::byte>& m) {
  const auto u = [&m](std::size_t at, std::size_t n) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(m[at + i]) << (8 * i);
    return v;
  };
  if (m.size() != 24 || u(0, 4) != 0x48535144u || u(4, 2) != 1 || u(6, 2) != 3 || u(12, 4) != 0) return std::nullopt;
  return std::make_pair(static_cast<std::uint32_t>(u(8, 4)), u(16, 8));
}

class Run {
 public:
  explicit Run(fuzz::Input& in) : in_(in) {}

  void go() {
    count_ = 1 + in_.below(4);
    daq_pool::BufferPoolOptions o;
    o.shared_memory = true;
    o.alignment = std::size_t{64} << in_.below(7);
    pool_.emplace(count_, 1 + in_.below(5000), o);
    region_ = *pool_->shared_memory();
    slots_ = 1 + in_.below(6);
    table_.init(slots_);
    start_subscriber();
    while (!in_.done()) {
      step();
      check();
    }
    table_.release_all();
    held_.clear();
    for (Bytes& p : producer_) p.reset();
    for (SubView& v : sub_views_) v = SubView{};
    FUZZ_CHECK(pool_->available() == count_);
    state_->release();  // the subscriber side's mapping goes with its last holder
  }

 private:
  struct Held {
    std::size_t buffer;
    std::uint64_t sequence;
  };

  std::size_t buffer_of(const Bytes& v) const {
    return static_cast<std::size_t>(v.data() - region_.base) / region_.stride;
  }

  void start_subscriber() {
    void* m = ::mmap(nullptr, region_.size, PROT_READ, MAP_SHARED, region_.fd, 0);
    FUZZ_CHECK(m != MAP_FAILED);
    hello_.region_size = region_.size;
    hello_.buffer_capacity = region_.capacity;
    hello_.buffer_stride = region_.stride;
    hello_.buffer_count = static_cast<std::uint32_t>(region_.count);
    hello_.max_in_flight = static_cast<std::uint32_t>(1 + in_.below(4));
    // No socket: every "done" the views send fails, and is counted.
    state_ = new daq_pool::shm::detail::SubscriberState(daq_pool::shm::detail::UniqueFd(), m, region_.size, hello_);
    map_ = static_cast<const std::byte*>(m);
  }

  /// Delivers a done-like message and checks the verdict against the model.
  void deliver(const std::vector<std::byte>& m) {
    Bytes released;
    const FlightTable::Verdict v = table_.on_message(m, released);
    const auto done = model_done(m);
    if (!done) {
      FUZZ_CHECK(v == FlightTable::Verdict::malformed);
    } else if (done->first >= slots_) {
      FUZZ_CHECK(v == FlightTable::Verdict::out_of_range);
    } else if (const auto it = held_.find(done->first); it == held_.end() || it->second.sequence != done->second) {
      FUZZ_CHECK(v == FlightTable::Verdict::stale);
    } else {
      FUZZ_CHECK(v == FlightTable::Verdict::done);
      FUZZ_CHECK(!released.empty() && buffer_of(released) == it->second.buffer);
      held_.erase(it);
    }
    if (v != FlightTable::Verdict::done) FUZZ_CHECK(released.empty());
  }

  void step() {
    switch (in_.below(10)) {
      case 0: {  // the producer freezes a fresh buffer
        Bytes& p = producer_[in_.below(producer_slots)];
        p.reset();
        if (std::optional<daq_pool::PooledBuffer> b = pool_->try_acquire()) {
          b->set_size(1 + in_.below(b->capacity()));
          std::memset(b->data(), static_cast<int>(in_.byte()), b->size());
          p = std::move(*b).freeze();
        }
        break;
      }
      case 1: {  // publish: hold a view for the subscriber
        const Bytes& p = producer_[in_.below(producer_slots)];
        if (p.empty()) break;
        const std::uint64_t seq = ++sequence_;
        const std::optional<std::uint32_t> slot = table_.hold(p, seq);
        FUZZ_CHECK(slot.has_value() == (held_.size() < slots_));
        if (slot) {
          FUZZ_CHECK(*slot < slots_ && held_.count(*slot) == 0);
          held_[*slot] = Held{buffer_of(p), seq};
        }
        break;
      }
      case 2:  // the producer drops its view
        producer_[in_.below(producer_slots)].reset();
        break;
      case 3: {  // a valid done for a held frame, sometimes sent twice
        if (held_.empty()) break;
        auto it = held_.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(in_.below(held_.size())));
        const auto m = protocol::encode(protocol::Done{it->first, it->second.sequence});
        const std::vector<std::byte> bytes(m.begin(), m.end());
        deliver(bytes);
        if (in_.byte() & 1) deliver(bytes);  // the duplicate: stale
        break;
      }
      case 4: {  // a done with a slot and a sequence from the input (near the real ones)
        const std::uint32_t slot = in_.byte() < 200 ? static_cast<std::uint32_t>(in_.below(slots_ + 2)) : 0xFFFFFFFFu;
        const std::uint64_t seq = sequence_ - in_.below(4) + (in_.byte() & 1);
        const auto m = protocol::encode(protocol::Done{slot, seq});
        deliver(std::vector<std::byte>(m.begin(), m.end()));
        break;
      }
      case 5: {  // arbitrary bytes, sometimes a done with one byte changed
        std::vector<std::byte> m;
        if (in_.byte() & 1) {
          const auto d = protocol::encode(protocol::Done{static_cast<std::uint32_t>(in_.below(slots_)), sequence_});
          m.assign(d.begin(), d.end());
          m[in_.below(m.size())] = static_cast<std::byte>(in_.byte());
        } else {
          m.resize(in_.below(40));
          for (std::byte& b : m) b = static_cast<std::byte>(in_.byte());
        }
        deliver(m);
        break;
      }
      case 6: {  // a frame message could not be sent: take the view back
        if (held_.empty()) break;
        auto it = held_.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(in_.below(held_.size())));
        const Bytes back = table_.unhold(it->first);
        FUZZ_CHECK(!back.empty() && buffer_of(back) == it->second.buffer);
        held_.erase(it);
        break;
      }
      case 7:  // the subscriber is gone
        if (in_.below(4) == 0) {
          FUZZ_CHECK(table_.release_all() == held_.size());
          held_.clear();
        }
        break;
      case 8:  // the subscriber side: a frame message
        take_frame();
        break;
      case 9:  // the subscriber drops a view
        sub_views_[in_.below(subscriber_views)] = SubView{};
        break;
    }
  }

  void take_frame() {
    protocol::FrameMessage f;
    f.slot = static_cast<std::uint32_t>(in_.below(hello_.max_in_flight + 1));
    f.sequence = ++sub_sequence_;
    const std::size_t pick = in_.below(4);
    f.offset = pick == 0 ? in_.u16() : region_.stride * in_.below(region_.count + 1);
    f.size = pick == 1 ? static_cast<std::uint64_t>(-1) - in_.below(3) : in_.u16() + in_.below(2);
    auto bytes = protocol::encode(f);
    std::size_t len = bytes.size();
    if (in_.below(8) == 0) bytes[in_.below(bytes.size())] = static_cast<std::byte>(in_.byte());
    if (in_.below(8) == 0) len = in_.below(bytes.size() + 1);
    const std::optional<protocol::FrameMessage> parsed = protocol::decode_frame(std::span(bytes.data(), len));
    bool busy = false;  // some view of that slot's frame is still out
    for (const SubView& v : sub_views_) busy = busy || (parsed && !v.view.empty() && v.slot == parsed->slot);
    std::optional<daq_pool::shm::Frame> frame = state_->take(std::span(bytes.data(), len));
    const bool fits = parsed && parsed->slot < hello_.max_in_flight && parsed->size != 0 &&
                      parsed->offset <= region_.size && parsed->size <= region_.size - parsed->offset;
    FUZZ_CHECK(frame.has_value() == (fits && !busy));
    if (!frame) return;
    FUZZ_CHECK(frame->bytes.data() == map_ + parsed->offset);
    FUZZ_CHECK(frame->bytes.size() == parsed->size);
    FUZZ_CHECK(!frame->bytes.is_pooled());
    // Read every byte: ASan catches a view outside the mapping.
    std::uint64_t sum = 0;
    for (const std::byte b : frame->bytes) sum += static_cast<std::uint64_t>(b);
    (void)sum;
    SubView& into = sub_views_[in_.below(subscriber_views)];
    into = SubView{std::move(frame->bytes), parsed->slot};
    // A copy (or a slice) may live elsewhere too: the slot is busy until all
    // are gone, and only the last drop frees it.
    if (in_.byte() & 1) {
      SubView& copy = sub_views_[in_.below(subscriber_views)];
      if (&copy != &into) copy = SubView{into.view.slice(0, 1 + in_.below(into.view.size())), into.slot};
    }
  }

  void check() {
    FUZZ_CHECK(table_.in_flight() == held_.size());
    // A buffer is out while the producer or the table holds a view of it.
    std::vector<bool> out(count_, false);
    for (const Bytes& p : producer_)
      if (!p.empty()) out[buffer_of(p)] = true;
    for (const auto& [slot, h] : held_) out[h.buffer] = true;
    std::size_t n = 0;
    for (const bool o : out) n += o ? 1 : 0;
    FUZZ_CHECK(pool_->available() == count_ - n);
  }

  fuzz::Input& in_;
  std::optional<BufferPool> pool_;
  daq_pool::SharedMemoryRegion region_;
  std::size_t count_ = 0, slots_ = 0;
  FlightTable table_;
  std::map<std::uint32_t, Held> held_;
  std::array<Bytes, producer_slots> producer_{};
  std::uint64_t sequence_ = 0;
  // The subscriber side.
  protocol::Hello hello_;
  daq_pool::shm::detail::SubscriberState* state_ = nullptr;
  const std::byte* map_ = nullptr;
  struct SubView {
    Bytes view;
    std::uint32_t slot = 0;  // the frame slot its control block belongs to
  };
  std::array<SubView, subscriber_views> sub_views_{};
  std::uint64_t sub_sequence_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
#if DAQ_POOL_DEBUG
  daq_pool::debug::print_outstanding_at_close.store(false);  // loans out at close are expected here
#endif
  fuzz::Input in(data, size);
  Run(in).go();
  return 0;
}
