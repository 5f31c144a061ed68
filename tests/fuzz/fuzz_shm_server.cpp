// libFuzzer harness for daq_pool::shm's server side of protocol version 2
// (issue 20): the release ring a subscriber writes and the server reads
// (ServerRing::drain_releases) with the server's flight table, over a real
// shared-memory BufferPool. The fuzzer plays a subscriber that releases
// honestly, forges releases (any slot, sequence, reserved word), scribbles
// any byte of its control region and sets release_head to anything. A
// reference model predicts every verdict from an independent decoding of
// the entry bytes: a release drops a view only for a slot held with that
// sequence, never twice; an impossible release_head is refused (the caller
// disconnects) and every view then comes back; the pool always has exactly
// count - held buffers free.
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_shm_server).
#include <daq_pool/shm/server.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <vector>

#include "fuzz_input.hpp"

namespace {

using daq_pool::BufferPool;
using daq_pool::Bytes;
using daq_pool::shm::detail::FlightTable;
using daq_pool::shm::detail::ServerRing;
namespace protocol = daq_pool::shm::protocol;
namespace c = protocol::control;

class Run {
 public:
  explicit Run(fuzz::Input& in) : in_(in) {}
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;
  ~Run() { std::free(region_); }

  void go() {
    max_in_flight_ = static_cast<std::uint32_t>(1 + in_.below(6));
    slots_ = c::ring_slots_for(max_in_flight_);
    count_ = max_in_flight_ + 1 + in_.below(3);
    daq_pool::BufferPoolOptions o;
    o.shared_memory = true;
    pool_.emplace(count_, 64 + in_.below(4000), o);
    bytes_ = c::region_bytes(slots_);
    region_ = static_cast<std::byte*>(std::aligned_alloc(64, (bytes_ + 63) / 64 * 64));
    std::memset(region_, 0, bytes_);
    ring_.init(region_, max_in_flight_, slots_);
    table_.init(max_in_flight_);
    for (int step = 0; step < 400 && !in_.done(); ++step) {
      switch (in_.below(7)) {
        case 0: publish(); break;
        case 1: honest_release(); break;
        case 2: forged_release(); break;
        case 3: scribble(); break;
        case 4: set_head(); break;
        default:
          if (!drain()) return;  // disconnected: checked there
      }
      FUZZ_CHECK(table_.in_flight() == held_.size());
      FUZZ_CHECK(pool_->available() == count_ - held_.size());
    }
    disconnect();
  }

 private:
  void publish() {
    if (table_.full()) return;
    std::optional<daq_pool::PooledBuffer> b = pool_->try_acquire();
    FUZZ_CHECK(b.has_value());  // count_ > max_in_flight_: a buffer is always free
    b->set_size(1);
    const Bytes view = std::move(*b).freeze();
    const std::uint64_t sequence = ++sequence_;
    const std::optional<std::uint32_t> slot = table_.hold(view, sequence, 0);
    FUZZ_CHECK(slot.has_value() && held_.count(*slot) == 0);
    held_[*slot] = sequence;
    protocol::FrameDescriptor d;
    d.sequence = sequence;
    d.size = 1;
    d.slot = *slot;
    (void)ring_.push_frame(d);
  }

  void write_entry(std::uint32_t slot, std::uint64_t sequence, std::uint32_t reserved) {
    std::byte* at = region_ + c::release_entry_at(head_, slots_);
    protocol::encode(protocol::Release{slot, sequence}, at);
    daq_pool::detail::store_le(at + 4, reserved);
    ++head_;
    daq_pool::shm::detail::word64(region_, c::release_head_at).store(head_);
  }

  void honest_release() {
    if (held_.empty() || head_ - tail_ >= slots_) return;
    auto it = held_.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(in_.below(held_.size())));
    write_entry(it->first, it->second, 0);
  }

  void forged_release() {
    if (head_ - tail_ >= slots_) return;
    const std::uint32_t slot = in_.below(4) == 0 ? 0xFFFFFFFFu : static_cast<std::uint32_t>(in_.below(8));
    const std::uint64_t sequence = in_.below(4) == 0 ? sequence_ : in_.below(static_cast<std::size_t>(sequence_) + 2);
    write_entry(slot, sequence, in_.below(5) == 0 ? in_.byte() : 0u);
  }

  void scribble() {
    const std::size_t at = (std::size_t{in_.byte()} << 8 | in_.byte()) % bytes_;
    region_[at] = static_cast<std::byte>(in_.byte());
    // Our copy of release_head follows the word (a scribble of it is a head change).
    head_ = daq_pool::shm::detail::word64(region_, c::release_head_at).load();
  }

  void set_head() {
    const std::uint64_t choices[] = {tail_, tail_ + 1, tail_ + slots_, tail_ + slots_ + 1, tail_ - 1,
                                     ~std::uint64_t{0}, std::uint64_t{1} << 63};
    head_ = choices[in_.below(7)];
    daq_pool::shm::detail::word64(region_, c::release_head_at).store(head_);
  }

  /// Drains like the server; false once it refused the head (then disconnected).
  bool drain() {
    const std::uint64_t head = daq_pool::shm::detail::word64(region_, c::release_head_at).load();
    const bool impossible = head - tail_ > slots_;
    const std::size_t limit = 1 + in_.below(8);
    std::size_t calls = 0;
    std::vector<Bytes> dropped;
    dropped.reserve(limit);
    std::size_t consumed = 0;
    const bool ok = ring_.drain_releases(
        [&](std::uint32_t slot, std::uint64_t sequence, bool reserved_ok) {
          // What the bytes say, read independently.
          const std::byte* at = region_ + c::release_entry_at(tail_ + calls, slots_);
          std::uint64_t w0 = 0, w1 = 0;
          for (int i = 7; i >= 0; --i) {
            w0 = w0 << 8 | std::to_integer<std::uint64_t>(at[i]);
            w1 = w1 << 8 | std::to_integer<std::uint64_t>(at[8 + i]);
          }
          FUZZ_CHECK(slot == static_cast<std::uint32_t>(w0) && sequence == w1 && reserved_ok == ((w0 >> 32) == 0));
          const auto it = held_.find(slot);
          const bool valid = reserved_ok && it != held_.end() && it->second == sequence;
          Bytes out;
          const FlightTable::Verdict v = table_.release(slot, sequence, reserved_ok, out);
          FUZZ_CHECK((v == FlightTable::Verdict::released) == valid);
          FUZZ_CHECK(out.empty() != valid);
          if (valid) {
            held_.erase(it);
            dropped.push_back(std::move(out));
          }
          ++calls;
        },
        limit, &consumed);
    FUZZ_CHECK(ok == !impossible);
    if (!ok) {
      FUZZ_CHECK(calls == 0);
      disconnect();
      return false;
    }
    FUZZ_CHECK(consumed == calls);
    FUZZ_CHECK(calls == std::min<std::uint64_t>(head - tail_, limit));
    tail_ += calls;
    FUZZ_CHECK(daq_pool::shm::detail::word64(region_, c::release_tail_at).load() == tail_ || calls == 0);
    dropped.clear();
    head_ = head;
    return true;
  }

  void disconnect() {
    Bytes out[8];
    std::size_t n = 0;
    while ((n = table_.take_all(out, 8)) != 0)
      for (std::size_t k = 0; k < n; ++k) out[k] = Bytes();
    held_.clear();
    FUZZ_CHECK(table_.in_flight() == 0);
    FUZZ_CHECK(pool_->available() == count_);
  }

  fuzz::Input& in_;
  std::uint32_t max_in_flight_ = 1, slots_ = 1;
  std::size_t count_ = 0, bytes_ = 0;
  std::optional<BufferPool> pool_;
  std::byte* region_ = nullptr;
  ServerRing ring_;
  FlightTable table_;
  std::map<std::uint32_t, std::uint64_t> held_;  // slot -> sequence
  std::uint64_t sequence_ = 0, head_ = 0, tail_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
#if DAQ_POOL_DEBUG
  daq_pool::debug::print_outstanding_at_close.store(false);
#endif
  fuzz::Input in(data, size);
  Run(in).go();
  return 0;
}
