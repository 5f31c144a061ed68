// Bytes: an immutable, shared, refcounted view of a frozen pooled buffer (or
// of a heap copy), three words wide.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "daq_pool/detail/buffer.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

class PooledBuffer;

/// An immutable view of bytes whose storage is shared by all its copies: a
/// frozen pooled buffer (`PooledBuffer::freeze()`), or a heap block
/// (`Bytes::copy_from()`). When the last view of a pooled buffer is
/// destroyed, on whichever thread, the buffer returns to its pool.
///
/// Copying is one relaxed atomic increment, destroying one acq_rel atomic
/// decrement; neither allocates. A view may be copied, moved, sliced and
/// destroyed on any thread, and different views of one buffer may be used
/// concurrently (the bytes are immutable); one Bytes *object* is not safe to
/// assign from two threads at once (like shared_ptr). Views keep the pool's
/// storage alive: they may outlive every BufferPool handle.
class Bytes {
 public:
  /// An empty view (size 0, data nullptr, holds nothing). Never allocates.
  Bytes() noexcept = default;

  /// Another view of the same bytes. Thread-safe; never allocates.
  Bytes(const Bytes& other) noexcept : data_(other.data_), size_(other.size_), ctrl_(other.ctrl_) { retain(); }

  /// Takes over `other`'s view; `other` becomes empty. Never allocates.
  Bytes(Bytes&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        ctrl_(std::exchange(other.ctrl_, nullptr)) {}

  /// Drops the view held now, then shares `other`'s. Never allocates.
  Bytes& operator=(const Bytes& other) noexcept {
    Bytes copy(other);
    swap(copy);
    return *this;
  }
  /// Drops this view (returning its buffer if it was the last), then takes
  /// over `other`'s; `other` becomes empty. Never allocates.
  Bytes& operator=(Bytes&& other) noexcept {
    Bytes taken(std::move(other));
    swap(taken);
    return *this;
  }

  /// Drops this view; the last view of a pooled buffer returns it to the
  /// pool (running its reset on this thread). Never allocates.
  ~Bytes() { release(); }

  /// Drops this view now; `*this` becomes empty. Never allocates.
  void reset() noexcept {
    release();
    data_ = nullptr;
    size_ = 0;
    ctrl_ = nullptr;
  }

  /// Exchanges two views (no refcount traffic). Never allocates.
  void swap(Bytes& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(ctrl_, other.ctrl_);
  }

  /// First byte (nullptr for an empty default view). Never allocates.
  const std::byte* data() const noexcept { return data_; }
  /// Number of bytes in this view. Never allocates.
  std::size_t size() const noexcept { return size_; }
  /// size() == 0. Never allocates.
  bool empty() const noexcept { return size_ == 0; }
  /// The bytes as a span. Never allocates.
  std::span<const std::byte> span() const noexcept { return {data_, size_}; }
  /// Byte `i`; precondition: i < size() (unchecked).
  const std::byte& operator[](std::size_t i) const noexcept { return data_[i]; }
  /// Iteration over the bytes. Never allocates.
  const std::byte* begin() const noexcept { return data_; }
  /// One past the last byte. Never allocates.
  const std::byte* end() const noexcept { return data_ + size_; }

  /// A view of [offset, offset + length) of this view, sharing its storage
  /// (one relaxed increment; never allocates). A zero-length slice is an
  /// empty view that holds nothing. Throws std::out_of_range if the range is
  /// not inside this view. Thread-safe.
  Bytes slice(std::size_t offset, std::size_t length) const {
    if (offset > size_ || length > size_ - offset)
      throw std::out_of_range("daq_pool::Bytes::slice: [offset " + std::to_string(offset) + ", length " +
                              std::to_string(length) + ") is outside a view of " + std::to_string(size_) + " bytes");
    if (length == 0) return Bytes();
    retain();
    return Bytes(data_ + offset, length, ctrl_);
  }

  /// Number of views (this one included) sharing this storage; 0 for a view
  /// that holds nothing. Thread-safe; stale the moment it is read.
  std::size_t use_count() const noexcept { return ctrl_ == nullptr ? 0 : ctrl_->refs.load(std::memory_order_relaxed); }

  /// True if this view's storage is a pooled buffer (false: heap copy or
  /// empty). Never allocates.
  bool is_pooled() const noexcept { return ctrl_ != nullptr && ctrl_->pooled; }

  /// A view of a heap copy of `src`: the fallback when the pool is exhausted,
  /// so that consumers see the same type either way. The ONE allocating path
  /// of Bytes: exactly one allocation (header and data together), freed by
  /// the last view. An empty `src` gives an empty view and allocates
  /// nothing. Throws std::bad_alloc. Thread-safe.
  static Bytes copy_from(std::span<const std::byte> src) {
    if (src.empty()) return Bytes();
    detail::BytesControl* c = detail::make_heap_block(src.data(), src.size());
    return Bytes(detail::heap_block_data(c), src.size(), c);
  }

  /// If this is the only view of a pooled buffer, turns it back into the
  /// exclusive, writable PooledBuffer (the whole buffer, with the size it had
  /// when frozen; `*this` becomes empty). Otherwise returns nothing and
  /// leaves `*this` unchanged. Thread-safe; never allocates.
  std::optional<PooledBuffer> try_into_mut() &&;

  // ---- raw handles, for C callbacks ---------------------------------------
  // A C library that takes foreign memory (ZeroMQ's zmq_msg_init_data,
  // FFmpeg's av_buffer_create, GStreamer's gst_buffer_new_wrapped_full)
  // keeps a `void*` and calls a free function with it later, on a thread of
  // its own, possibly after the call that handed the memory over returned
  // and after every daq_pool object of the caller is gone. A raw handle is
  // that `void*`: it owns one reference to the view's storage (the pooled
  // buffer or heap block), which keeps the bytes, the buffer and the pool's
  // storage alive until the reference is dropped. Ownership rules:
  //  - into_raw() moves the view's reference into the handle (the view
  //    becomes empty); nothing is copied or allocated;
  //  - every handle is consumed exactly once: by release_raw() (drop the
  //    reference, from any thread, e.g. inside the C library's free
  //    callback) or by from_raw() (turn it back into a view);
  //  - the handle says nothing about which bytes the view covered: pass the
  //    data pointer and size to the C library alongside it (they stay valid
  //    as long as the handle lives).

  /// Moves this view's reference into an opaque handle for a C API's
  /// `void* user_data`; `*this` becomes empty. nullptr for a view that holds
  /// nothing (empty). The handle must be consumed exactly once, by
  /// release_raw() or from_raw(). Never allocates, never touches the count.
  [[nodiscard]] void* into_raw() && noexcept {
    void* raw = ctrl_;
    data_ = nullptr;
    size_ = 0;
    ctrl_ = nullptr;
    return raw;
  }

  /// Drops the reference a handle from into_raw() holds; the last reference
  /// of a pooled buffer returns it to its pool (running the pool's reset on
  /// the calling thread). nullptr is a no-op. Thread-safe: call it from any
  /// thread, e.g. a C library's free callback. Never allocates, never throws.
  static void release_raw(void* raw) noexcept { Bytes(nullptr, 0, static_cast<detail::BytesControl*>(raw)).reset(); }

  /// Turns a handle from into_raw() back into a view of the whole storage it
  /// refers to: a frozen buffer's bytes (its size when frozen) or a heap
  /// copy's. nullptr gives an empty view. Consumes the handle. Never
  /// allocates.
  static Bytes from_raw(void* raw) noexcept {
    auto* c = static_cast<detail::BytesControl*>(raw);
    if (c == nullptr) return Bytes();
    const std::span<const std::byte> all = detail::storage_of(c);
    return Bytes(all.data(), all.size(), c);
  }

  /// Turns a handle back into a view of `part`, which must lie inside the
  /// handle's storage (e.g. the data pointer and size a C free callback gets
  /// back). Consumes the handle, except when it throws std::out_of_range
  /// (part outside the storage, or a non-empty part with a null handle):
  /// then the handle still holds its reference. Never allocates (except the
  /// exception's message).
  static Bytes from_raw(void* raw, std::span<const std::byte> part) {
    auto* c = static_cast<detail::BytesControl*>(raw);
    if (c == nullptr) {
      if (!part.empty()) throw std::out_of_range("daq_pool::Bytes::from_raw: a null handle holds no bytes");
      return Bytes();
    }
    const std::span<const std::byte> all = detail::storage_of(c);
    // Compare addresses as integers: pointers into different objects have no
    // order in C++.
    const auto first = reinterpret_cast<std::uintptr_t>(all.data());
    const auto at = reinterpret_cast<std::uintptr_t>(part.data());
    if (at < first || at - first > all.size() || part.size() > all.size() - (at - first))
      throw std::out_of_range("daq_pool::Bytes::from_raw: part (" + std::to_string(part.size()) +
                              " bytes) is not inside the handle's " + std::to_string(all.size()) + " bytes");
    if (part.empty()) {
      release_raw(raw);  // an empty view holds nothing
      return Bytes();
    }
    return Bytes(part.data(), part.size(), c);
  }

  /// Compares contents (not identity). Never allocates.
  friend bool operator==(const Bytes& a, const Bytes& b) noexcept {
    return a.size_ == b.size_ && (a.size_ == 0 || std::memcmp(a.data_, b.data_, a.size_) == 0);
  }

 private:
  friend class PooledBuffer;

  /// Adopts one reference already counted in `ctrl`.
  Bytes(const std::byte* data, std::size_t size, detail::BytesControl* ctrl) noexcept
      : data_(data), size_(size), ctrl_(ctrl) {}

  void retain() const noexcept {
    // relaxed: a new view is made only from an existing one, which already
    // keeps the storage alive; nothing is published by the increment (the
    // shared_ptr argument).
    if (ctrl_ != nullptr) ctrl_->refs.fetch_add(1, std::memory_order_relaxed);
  }

  void release() noexcept {
    // acq_rel. Release: this view's reads of the bytes happen before its
    // decrement, hence before the last decrement, the pool's reset and the
    // next writer (who acquires the slot from the pool's free list). Acquire:
    // the thread that makes the last decrement sees every other view's
    // decrement, so its reset/scrub and the return happen after all reads.
    if (ctrl_ != nullptr && ctrl_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) ctrl_->release(ctrl_);
  }

  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  detail::BytesControl* ctrl_ = nullptr;
};

static_assert(sizeof(Bytes) <= 3 * sizeof(void*), "a Bytes view is three words: data, size, control");

/// Exchanges two views. Never allocates.
inline void swap(Bytes& a, Bytes& b) noexcept { a.swap(b); }

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE

// PooledBuffer completes Bytes::try_into_mut.
#include "daq_pool/pooled_buffer.hpp"
