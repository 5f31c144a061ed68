// libFuzzer harness for BufferPool / PooledBuffer / Bytes (issue 6): decodes
// the input into acquire / try / timed try / write / oversize copies /
// set_size / freeze / copy / slice (in and out of range) / try_into_mut /
// drop / heap copies / raw handles (into_raw, release_raw, from_raw whole, in
// part and out of range) / close, and checks every result against a reference
// model: which buffers are free, how many views each frozen buffer has, and
// the exact bytes every live view must show (a buffer reused while a view
// lives, or a write that leaks into a frozen buffer, changes them).
//
// Build and run: see tests/fuzz/CMakeLists.txt (ctest case fuzz_buffer_pool) or
//   clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined \
//     -Iinclude tests/fuzz/fuzz_buffer_pool.cpp -o fuzz_buffer_pool
//   ./fuzz_buffer_pool tests/fuzz/corpus/fuzz_buffer_pool -max_total_time=600
#include <daq_pool/daq_pool.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>
#include <utility>
#include <vector>

#include "fuzz_input.hpp"

namespace {

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;

constexpr std::size_t max_buffers = 6;
constexpr std::size_t max_views = 12;
constexpr std::size_t max_raws = 6;

/// A view as the model sees it: the bytes it must show, and which buffer
/// (by address of its first byte; nullptr: a heap copy or empty) it holds.
struct ViewModel {
  const std::byte* buffer = nullptr;
  std::vector<std::byte> bytes;
  const std::byte* base = nullptr;  // the storage every view of it lies in (for raw handles)
  std::size_t base_size = 0;
};

/// A raw handle as the model sees it: the view it was made from (its
/// storage's first byte and bytes, and where the view started).
struct RawModel {
  void* raw = nullptr;
  const std::byte* data = nullptr;  // the view's first byte when into_raw'd
  ViewModel view;
};

class Run {
 public:
  explicit Run(fuzz::Input& in) : in_(in) {}

  void go() {
    const std::size_t count = 1 + in_.below(4);
    capacity_ = 1 + in_.below(200);
    BufferPoolOptions o;
    o.alignment = std::size_t{1} << in_.below(13);  // 1 .. 4096
    o.prefault = (in_.byte() & 1) != 0;
    o.zero_on_release = (in_.byte() & 1) != 0;
    zero_on_release_ = o.zero_on_release;
    alignment_ = o.alignment;
    pool_.emplace(count, capacity_, o);
    FUZZ_CHECK(pool_->size() == count);
    FUZZ_CHECK(pool_->buffer_capacity() == capacity_);
    count_ = count;
    while (!in_.done()) {
      step();
      check_views();
    }
    // Drop everything, views last: every buffer comes back (checked while
    // the handle lives), and ASan sees no leak.
    for (auto& b : bufs_) b.reset();
    for (auto& v : views_) drop(v);
    for (auto& r : raws_) release(r);
    FUZZ_CHECK(pool_->available() == count_);
    const auto st = pool_->stats();
    FUZZ_CHECK(st.acquires == st.releases && st.in_use == 0);
  }

 private:
  /// Buffers neither held as PooledBuffer nor frozen with a view alive.
  std::size_t free_count() const {
    std::size_t held = 0;
    for (const auto& b : bufs_) held += b ? 1 : 0;
    return count_ - held - frozen_views_.size();
  }

  void took(std::optional<PooledBuffer>& dst, PooledBuffer b) {
    FUZZ_CHECK(b.size() == 0);  // reuse is clean (the Rust bug)
    FUZZ_CHECK(b.capacity() == capacity_);
    FUZZ_CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % alignment_ == 0);
    FUZZ_CHECK(frozen_views_.count(b.data()) == 0);  // reused while a view lives
    for (const auto& o : bufs_)
      if (o) FUZZ_CHECK(o->data() != b.data());  // lent twice
    if (zero_on_release_ && written_.count(b.data()) != 0)
      for (std::byte x : b.get_mut()) FUZZ_CHECK(x == std::byte{0});
    dst.reset();
    dst.emplace(std::move(b));
  }

  void drop(Bytes& v) {
    auto it = model_.find(&v);
    if (it != model_.end()) {
      release_view(it->second.buffer);
      model_.erase(it);
    }
    v.reset();
  }

  /// Puts `back`, a view that took over a handle's reference, into `dst`:
  /// it must show the handle's bytes; an empty one holds nothing (the
  /// reference went with it).
  void adopt(Bytes& dst, Bytes back, ViewModel m) {
    FUZZ_CHECK(back.size() == m.bytes.size());
    drop(dst);
    if (m.bytes.empty()) {
      FUZZ_CHECK(back.empty() && back.use_count() == 0);
      release_view(m.buffer);
      dst = std::move(back);
      return;
    }
    dst = std::move(back);
    model_[&dst] = std::move(m);
  }

  /// Drops a raw handle (if the slot holds one) through release_raw.
  void release(std::optional<RawModel>& r) {
    if (!r) return;
    Bytes::release_raw(r->raw);
    release_view(r->view.buffer);
    r.reset();
  }

  void release_view(const std::byte* buffer) {
    if (buffer == nullptr) return;
    auto f = frozen_views_.find(buffer);
    FUZZ_CHECK(f != frozen_views_.end());
    if (--f->second == 0) frozen_views_.erase(f);  // the last view returns it
  }

  void add_view(Bytes& dst, Bytes v, ViewModel m) {
    drop(dst);
    if (m.buffer != nullptr) ++frozen_views_[m.buffer];
    dst = std::move(v);
    model_[&dst] = std::move(m);
  }

  void check_views() {
    for (auto& v : views_) {
      auto it = model_.find(&v);
      if (it == model_.end()) {
        FUZZ_CHECK(v.empty());
        continue;
      }
      const ViewModel& m = it->second;
      FUZZ_CHECK(v.size() == m.bytes.size());
      FUZZ_CHECK(m.bytes.empty() || std::memcmp(v.data(), m.bytes.data(), m.bytes.size()) == 0);
      FUZZ_CHECK(v.is_pooled() == (m.buffer != nullptr));
      if (m.buffer != nullptr) FUZZ_CHECK(v.use_count() == views_of(m.buffer));
    }
    FUZZ_CHECK(pool_->available() == free_count());
  }

  std::vector<std::byte> payload(std::size_t n) {
    std::vector<std::byte> p(n);
    const std::byte seed{static_cast<unsigned char>(in_.byte())};
    for (std::size_t i = 0; i < n; ++i) p[i] = seed ^ std::byte{static_cast<unsigned char>(i * 31)};
    return p;
  }

  void step() {
    auto& b = bufs_[in_.below(max_buffers)];
    auto& v = views_[in_.below(max_views)];
    auto& r = raws_[in_.below(max_raws)];
    switch (in_.byte() % 16) {
      case 0: {  // try_acquire
        const bool want = !closed_ && free_count() > 0;
        auto got = pool_->try_acquire();
        FUZZ_CHECK(got.has_value() == want);
        if (got) took(b, std::move(*got));
        break;
      }
      case 1: {  // timed try, tiny or non-positive timeout
        const bool want = !closed_ && free_count() > 0;
        auto got = pool_->try_acquire_for(std::chrono::microseconds(static_cast<int>(in_.below(30)) - 5));
        FUZZ_CHECK(got.has_value() == want);
        if (got) took(b, std::move(*got));
        break;
      }
      case 2: {  // blocking acquire where it can't block forever
        if (closed_) {
          bool threw = false;
          try {
            (void)pool_->acquire();
          } catch (const daq_pool::pool_closed&) {
            threw = true;
          }
          FUZZ_CHECK(threw);
        } else if (free_count() > 0) {
          took(b, pool_->acquire());
        }
        break;
      }
      case 3: {  // copy_from, possibly longer than the capacity
        if (!b) break;
        const std::size_t n = in_.below(capacity_ + 8);
        const auto src = payload(n);
        const std::size_t size0 = b->size();
        const std::vector<std::byte> before(b->data(), b->data() + b->capacity());
        if (n > capacity_) {
          bool threw = false;
          try {
            b->copy_from(src);
          } catch (const std::length_error&) {
            threw = true;
          }
          FUZZ_CHECK(threw);
          // Unchanged and still usable.
          FUZZ_CHECK(b->size() == size0);
          FUZZ_CHECK(std::memcmp(b->data(), before.data(), before.size()) == 0);
        } else {
          if (in_.byte() & 1)
            b->copy_from(src);
          else
            b->copy_from_ptr(src.data(), src.size());
          FUZZ_CHECK(b->size() == n);
          FUZZ_CHECK(n == 0 || std::memcmp(b->data(), src.data(), n) == 0);
        }
        written_[b->data()] = true;
        break;
      }
      case 4: {  // set_size after writing through get_mut()
        if (!b) break;
        const std::size_t n = in_.below(capacity_ + 4);
        auto span = b->get_mut();
        FUZZ_CHECK(span.size() == capacity_);
        if (!span.empty()) span[in_.below(span.size())] = std::byte{static_cast<unsigned char>(in_.byte())};
        written_[b->data()] = true;
        const std::size_t size0 = b->size();
        if (n > capacity_) {
          bool threw = false;
          try {
            b->set_size(n);
          } catch (const std::length_error&) {
            threw = true;
          }
          FUZZ_CHECK(threw);
          FUZZ_CHECK(b->size() == size0);
        } else {
          b->set_size(n);
          FUZZ_CHECK(b->size() == n);
        }
        break;
      }
      case 5: {  // freeze
        if (!b) break;
        const std::byte* data = b->data();
        std::vector<std::byte> bytes(data, data + b->size());
        sizes_at_freeze_[data] = b->size();
        PooledBuffer taken = std::move(*b);
        b.reset();
        Bytes frozen = std::move(taken).freeze();
        FUZZ_CHECK(frozen.data() == data);
        FUZZ_CHECK(frozen.use_count() == 1);
        const std::size_t frozen_size = bytes.size();
        add_view(v, std::move(frozen), ViewModel{data, std::move(bytes), data, frozen_size});
        break;
      }
      case 6: {  // copy a view
        auto& dst = views_[in_.below(max_views)];
        if (&dst == &v) break;
        auto it = model_.find(&v);
        if (it == model_.end()) break;
        ViewModel m = it->second;
        Bytes copy = v;
        FUZZ_CHECK(copy == v);
        add_view(dst, std::move(copy), std::move(m));
        break;
      }
      case 7: {  // slice, in or out of range
        auto& dst = views_[in_.below(max_views)];
        if (&dst == &v) break;
        auto it = model_.find(&v);
        const std::size_t size = it == model_.end() ? 0 : it->second.bytes.size();
        const std::size_t off = in_.below(size + 3);
        const std::size_t len = in_.below(size + 3);
        if (off > size || len > size - off) {
          bool threw = false;
          try {
            (void)v.slice(off, len);
          } catch (const std::out_of_range&) {
            threw = true;
          }
          FUZZ_CHECK(threw);
          break;
        }
        Bytes s = v.slice(off, len);
        FUZZ_CHECK(s.size() == len);
        if (len == 0) {
          FUZZ_CHECK(s.use_count() == 0);  // an empty slice holds nothing
          drop(dst);
          dst = std::move(s);
          break;
        }
        ViewModel m{it->second.buffer,
                    std::vector<std::byte>(it->second.bytes.begin() + static_cast<std::ptrdiff_t>(off),
                                           it->second.bytes.begin() + static_cast<std::ptrdiff_t>(off + len)),
                    it->second.base, it->second.base_size};
        add_view(dst, std::move(s), std::move(m));
        break;
      }
      case 8:
      case 9:
        drop(v);
        break;
      case 10: {  // try_into_mut
        auto it = model_.find(&v);
        const std::byte* buffer = it == model_.end() ? nullptr : it->second.buffer;
        const bool want = buffer != nullptr && views_of(buffer) == 1;
        const std::size_t frozen_size = want ? sizes_at_freeze_[buffer] : 0;
        auto m = std::move(v).try_into_mut();
        FUZZ_CHECK(m.has_value() == want);
        if (!m) {
          if (it != model_.end()) FUZZ_CHECK(v.size() == it->second.bytes.size());  // unchanged
          break;
        }
        FUZZ_CHECK(v.empty() && v.use_count() == 0);
        FUZZ_CHECK(m->data() == buffer);
        FUZZ_CHECK(m->size() == frozen_size);
        model_.erase(it);
        frozen_views_.erase(buffer);
        written_[buffer] = true;
        if (!b) {
          b.emplace(std::move(*m));
        } else {
          m.reset();  // destroyed unfrozen: straight back to the pool
        }
        break;
      }
      case 11: {  // Bytes::copy_from: the heap fallback
        const std::size_t n = in_.below(64);
        const auto src = payload(n);
        Bytes h = Bytes::copy_from(src);
        FUZZ_CHECK(h.size() == n && !h.is_pooled());
        FUZZ_CHECK(!Bytes(h).try_into_mut());
        if (n == 0) {
          drop(v);
          v = std::move(h);
          break;
        }
        const std::byte* base = h.data();
        add_view(v, std::move(h), ViewModel{nullptr, src, base, n});
        break;
      }
      case 12:
        pool_->close();
        closed_ = true;
        break;
      case 14: {  // into_raw: the view's reference moves into a handle
        auto it = model_.find(&v);
        if (it == model_.end()) {
          FUZZ_CHECK(std::move(v).into_raw() == nullptr);  // an empty view gives no handle
          break;
        }
        release(r);
        const std::byte* data = v.data();
        const std::size_t uses = v.use_count();
        void* raw = std::move(v).into_raw();
        FUZZ_CHECK(raw != nullptr && v.empty() && v.use_count() == 0);
        r.emplace(RawModel{raw, data, std::move(it->second)});
        model_.erase(it);  // the handle keeps the view's count in frozen_views_
        if (r->view.buffer != nullptr) FUZZ_CHECK(views_of(r->view.buffer) == uses);
        break;
      }
      case 15: {  // consume a handle: release it, or take the view back
        if (!r) break;
        const std::size_t n = r->view.bytes.size();
        switch (in_.byte() % 4) {
          case 0:
            release(r);
            break;
          case 1: {  // the view as it was
            Bytes back = Bytes::from_raw(r->raw, std::span<const std::byte>(r->data, n));
            ViewModel m = std::move(r->view);
            r.reset();
            adopt(v, std::move(back), std::move(m));
            break;
          }
          case 2: {  // a range past the view's storage: refused, handle intact
            const std::size_t past = r->view.base_size + 1 + in_.below(4);
            bool threw = false;
            try {
              (void)Bytes::from_raw(r->raw, std::span<const std::byte>(r->view.base, past));
            } catch (const std::out_of_range&) {
              threw = true;
            }
            FUZZ_CHECK(threw);
            break;
          }
          default: {  // the whole storage, then back to the view's part of it
            Bytes back = Bytes::from_raw(r->raw);
            ViewModel m = std::move(r->view);
            const auto off = static_cast<std::size_t>(r->data - m.base);
            r.reset();
            FUZZ_CHECK(back.data() == m.base && back.size() == m.base_size);
            if (m.buffer != nullptr) FUZZ_CHECK(back.size() == sizes_at_freeze_[m.buffer]);
            Bytes part = back.slice(off, n);
            back.reset();
            adopt(v, std::move(part), std::move(m));
            break;
          }
        }
        break;
      }
      default:
        b.reset();  // an unfrozen buffer goes straight back
        break;
    }
  }

  /// Views alive of a frozen buffer (0: not frozen).
  std::size_t views_of(const std::byte* buffer) const {
    auto f = frozen_views_.find(buffer);
    return f == frozen_views_.end() ? 0 : f->second;
  }

  fuzz::Input& in_;
  std::optional<BufferPool> pool_;
  std::array<std::optional<RawModel>, max_raws> raws_;
  std::array<std::optional<PooledBuffer>, max_buffers> bufs_;
  std::array<Bytes, max_views> views_;
  std::map<const Bytes*, ViewModel> model_;
  std::map<const std::byte*, std::size_t> frozen_views_;     // views alive per frozen buffer
  std::map<const std::byte*, std::size_t> sizes_at_freeze_;  // size() when frozen
  std::map<const std::byte*, bool> written_;
  std::size_t count_ = 0;
  std::size_t capacity_ = 0;
  std::size_t alignment_ = 1;
  bool zero_on_release_ = false;
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
