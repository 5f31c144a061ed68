// libFuzzer harness for Pool<T> (issue 6): decodes the input into a sequence
// of operations — acquire / try / timed try with tiny timeouts / release in
// any order / moves / clones / grow / acquire_or_grow / close / dropping
// handles / bad arguments — and checks every result against a reference
// model: which slots are free, what each item holds, and the counters.
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_pool) or
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
//     -Iinclude tests/fuzz/fuzz_pool.cpp -o fuzz_pool
//   ./fuzz_pool tests/fuzz/corpus/fuzz_pool -max_total_time=600
#include <daq_pool/daq_pool.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "fuzz_input.hpp"

namespace {

using daq_pool::Loaned;
using daq_pool::Pool;
using daq_pool::PoolOptions;

/// The pooled item: which slot it was built for (never changes while the
/// slot lives) and a value the holder writes.
struct Item {
  std::uint32_t built = 0;  // factory call number
  std::uint32_t value = 0;

  Item(std::uint32_t b, std::uint32_t v) noexcept : built(b), value(v) {}
  Item(const Item&) = default;
  /// try_clone copy-assigns into the new slot: only the value travels.
  Item& operator=(const Item& o) noexcept {
    value = o.value;
    return *this;
  }
};

constexpr std::size_t max_loans = 12;

/// What the model knows of one slot, keyed by its slot index.
struct SlotModel {
  bool exists = false;
  bool lent = false;
  std::uint32_t built = 0;
  std::uint32_t value = 0;  // expected item value
};

class Run {
 public:
  explicit Run(fuzz::Input& in) : in_(in) {}

  void go() {
    const std::size_t size = 1 + in_.below(6);
    const std::size_t growth = in_.below(4);  // 0: fixed size
    bound_ = growth == 0 ? size : size + growth * 2;
    with_reset_ = (in_.byte() & 1) != 0;
    pools_[0].emplace(
        size,
        [this] {
          return Item{++built_, 0};
        },
        with_reset_ ? std::function<void(Item&)>([](Item& it) { it.value = 0; }) : std::function<void(Item&)>(),
        PoolOptions{growth == 0 ? 0 : bound_});
    for (std::size_t i = 0; i < size; ++i) add_slot(i);
    check_counters();
    while (!in_.done()) step();
    // Drop everything in a decoded order, then the handles: nothing may
    // leak (ASan) and the counters must still agree while a handle lives.
    for (auto& l : loans_) release(l);
    if (live_pool() != nullptr) check_counters();
  }

 private:
  Pool<Item>* live_pool() {
    for (auto& p : pools_)
      if (p) return &*p;
    return nullptr;
  }

  void add_slot(std::size_t index) {
    if (slots_.size() <= index) slots_.resize(index + 1);
    slots_[index].exists = true;
    slots_[index].lent = false;
    slots_[index].value = 0;
    ++size_;
  }

  std::size_t free_count() const {
    std::size_t n = 0;
    for (const auto& s : slots_) n += (s.exists && !s.lent) ? 1 : 0;
    return n;
  }

  /// Records a new loan, checking the item against the model.
  void took(std::optional<Loaned<Item>>& dst, Loaned<Item> loan) {
    const std::size_t i = loan.slot_index();
    FUZZ_CHECK(i < slots_.size() && slots_[i].exists);
    FUZZ_CHECK(!slots_[i].lent);  // a slot lent twice
    if (slots_[i].built == 0) slots_[i].built = loan->built;
    FUZZ_CHECK(loan->built == slots_[i].built);  // the item moved or was rebuilt
    FUZZ_CHECK(loan->value == slots_[i].value);  // stale or foreign contents
    slots_[i].lent = true;
    ++acquires_;
    ++out_;
    high_water_ = std::max(high_water_, out_);
    release(dst);
    dst.emplace(std::move(loan));
  }

  void release(std::optional<Loaned<Item>>& l) {
    if (!l) return;
    const std::size_t i = l->slot_index();
    FUZZ_CHECK(slots_[i].lent);
    slots_[i].lent = false;
    if (with_reset_) slots_[i].value = 0;
    ++releases_;
    --out_;
    l.reset();  // destroys the Loaned: returns the slot
  }

  void check_counters() {
    Pool<Item>* p = live_pool();
    if (p == nullptr) return;
    FUZZ_CHECK(p->size() == size_);
    FUZZ_CHECK(p->max_size() == bound_);
    FUZZ_CHECK(p->available() == free_count());
    FUZZ_CHECK(p->is_closed() == closed_);
    const auto st = p->stats();
    FUZZ_CHECK(st.size == size_);
    FUZZ_CHECK(st.available == free_count());
    FUZZ_CHECK(st.in_use == out_);
    FUZZ_CHECK(st.acquires == acquires_);
    FUZZ_CHECK(st.releases == releases_);
    FUZZ_CHECK(st.high_water == high_water_);
    FUZZ_CHECK(st.grows == grows_);
    FUZZ_CHECK(st.retired == 0);
  }

  /// After a failed acquisition: nothing was free, or the pool is closed.
  void expect_none() { FUZZ_CHECK(closed_ || free_count() == 0); }
  /// After a successful one: something was free and the pool open.
  bool expect_some() const { return !closed_ && free_count() > 0; }

  void step() {
    Pool<Item>* p = live_pool();
    auto& l = loans_[in_.below(max_loans)];
    const std::uint8_t op = in_.byte();
    if (p == nullptr) {
      release(l);  // every handle gone: only the loans remain
      return;
    }
    switch (op % 16) {
      case 0: {  // try_acquire
        const bool want = expect_some();
        auto got = p->try_acquire();
        FUZZ_CHECK(got.has_value() == want);
        if (got) took(l, std::move(*got));
        break;
      }
      case 1: {  // timed try with a tiny timeout (or zero / negative)
        const bool want = expect_some();
        const auto t = std::chrono::microseconds(static_cast<int>(in_.below(40)) - 8);
        auto got = p->try_acquire_for(t);
        FUZZ_CHECK(got.has_value() == want);
        if (got) took(l, std::move(*got));
        break;
      }
      case 2: {  // try_acquire_until a deadline already past, on another clock
        const bool want = expect_some();
        auto got = p->try_acquire_until(std::chrono::system_clock::now() - std::chrono::seconds(1));
        FUZZ_CHECK(got.has_value() == want);
        if (got) took(l, std::move(*got));
        break;
      }
      case 3: {  // blocking acquire, only where it can't block forever
        if (closed_) {
          bool threw = false;
          try {
            (void)p->acquire();
          } catch (const daq_pool::pool_closed&) {
            threw = true;
          }
          FUZZ_CHECK(threw);
        } else if (free_count() > 0) {
          took(l, p->acquire());
        } else {
          // Empty and open: a huge timeout would wait until closed; a
          // tiny one must time out.
          FUZZ_CHECK(!p->try_acquire_for(std::chrono::nanoseconds(1)));
        }
        break;
      }
      case 4:
      case 5:
        release(l);
        break;
      case 6: {  // write into the held item
        if (!l) break;
        const std::uint32_t v = in_.byte() + 1u;
        (*l)->value = v;
        slots_[l->slot_index()].value = v;
        break;
      }
      case 7: {  // move a loan onto another (returning the target's item)
        auto& dst = loans_[in_.below(max_loans)];
        if (&dst == &l) break;
        release(dst);
        if (!l) break;
        dst.emplace(std::move(*l));
        FUZZ_CHECK(!*l);  // a moved-from loan holds nothing
        l.reset();        // and destroying it returns nothing
        break;
      }
      case 8: {  // grow
        const std::size_t n = in_.below(5);
        const std::size_t want = closed_ ? 0 : std::min(n, bound_ - size_);
        const std::size_t before = size_;
        const std::size_t added = p->grow(n);
        FUZZ_CHECK(added == want);
        for (std::size_t i = 0; i < added; ++i) add_slot(before + i);
        grows_ += added;
        break;
      }
      case 9: {  // acquire_or_grow
        const bool free = !closed_ && free_count() > 0;
        const bool can_grow = !closed_ && size_ < bound_;
        auto got = p->acquire_or_grow();
        FUZZ_CHECK(got.has_value() == (free || can_grow));
        if (got) {
          if (!free) {
            add_slot(size_);
            ++grows_;
          }
          took(l, std::move(*got));
        }
        break;
      }
      case 10: {  // try_clone of a held item
        if (!l) break;
        const bool want = expect_some();
        auto& dst = loans_[in_.below(max_loans)];
        if (&dst == &l) break;
        const std::uint32_t v = (*l)->value;
        auto got = l->try_clone();
        FUZZ_CHECK(got.has_value() == want);
        if (got) {
          // The new slot's item, copy-assigned from the held one.
          FUZZ_CHECK((*got)->value == v);
          const std::size_t i = got->slot_index();
          FUZZ_CHECK(i < slots_.size() && slots_[i].exists && !slots_[i].lent);
          if (slots_[i].built == 0) slots_[i].built = (*got)->built;
          FUZZ_CHECK((*got)->built == slots_[i].built);
          slots_[i].lent = true;
          ++acquires_;
          ++out_;
          high_water_ = std::max(high_water_, out_);
          slots_[i].value = v;
          release(dst);
          dst.emplace(std::move(*got));
        } else {
          expect_none();
        }
        break;
      }
      case 11: {  // clone_item: copy out, return at once
        if (!l) break;
        const std::uint32_t v = (*l)->value;
        const std::size_t i = l->slot_index();
        Loaned<Item> taken = std::move(*l);
        l.reset();
        slots_[i].lent = false;
        if (with_reset_) slots_[i].value = 0;
        ++releases_;
        --out_;
        const Item copy = std::move(taken).clone_item();
        FUZZ_CHECK(copy.value == v);
        break;
      }
      case 12:
        p->close();
        closed_ = true;
        break;
      case 13: {  // copy or drop a handle (the last one closes the pool)
        auto& a = pools_[in_.below(2)];
        auto& b = pools_[in_.below(2)];
        if (&a == &b) {
          a.reset();
          if (live_pool() == nullptr) closed_ = true;
        } else if (a && !b) {
          b.emplace(*a);
        }
        break;
      }
      case 14:
        bad_arguments();
        break;
      default:
        check_counters();
        break;
    }
    // Whatever happened, every loan still sees its own item.
    for (auto& x : loans_)
      if (x) FUZZ_CHECK((*x)->value == slots_[x->slot_index()].value);
  }

  /// Invalid construction arguments: std::invalid_argument, nothing built.
  void bad_arguments() {
    const std::uint32_t before = built_;
    auto factory = [this] { return Item{++built_, 0}; };
    bool threw = false;
    try {
      switch (in_.below(4)) {
        case 0:
          Pool<Item>(0, factory);
          break;
        case 1:
          Pool<Item>(Pool<Item>::max_slots + 1 + in_.below(3), factory);
          break;
        case 2:
          Pool<Item>(3, factory, {}, PoolOptions{1 + in_.below(2)});
          break;
        default:
          Pool<Item>(1, std::function<Item()>{});
          break;
      }
    } catch (const std::invalid_argument&) {
      threw = true;
    }
    FUZZ_CHECK(threw);
    FUZZ_CHECK(built_ == before);
  }

  fuzz::Input& in_;
  std::array<std::optional<Pool<Item>>, 2> pools_;
  std::array<std::optional<Loaned<Item>>, max_loans> loans_;
  std::vector<SlotModel> slots_;
  std::uint32_t built_ = 0;
  std::size_t bound_ = 0;
  std::size_t size_ = 0;
  std::size_t out_ = 0;
  std::size_t high_water_ = 0;
  std::uint64_t acquires_ = 0;
  std::uint64_t releases_ = 0;
  std::uint64_t grows_ = 0;
  bool with_reset_ = false;
  bool closed_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
#if DAQ_POOL_DEBUG
  // The harness closes pools with loans out all the time; the debug checks
  // stay on, their report at close goes quiet.
  daq_pool::debug::print_outstanding_at_close.store(false);
#endif
  fuzz::Input in(data, size);
  Run(in).go();
  return 0;
}
