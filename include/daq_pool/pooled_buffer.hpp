// PooledBuffer: exclusive, writable access to one buffer of a BufferPool,
// frozen into shared Bytes views without copying or allocating.
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

#include "daq_pool/bytes.hpp"
#include "daq_pool/detail/buffer.hpp"
#include "daq_pool/loaned.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

class BufferPool;
namespace detail {
struct BufferPoolAccess;
}

/// One buffer of a BufferPool, held exclusively: write into it, set how many
/// bytes are valid, then `freeze()` it into a shared immutable `Bytes` view.
/// Destroying it unfrozen returns the buffer to the pool at once.
///
/// Move-only. Right after acquire, size() is 0 and the whole capacity is
/// writable (also on the thousandth reuse). A PooledBuffer may be moved to
/// and destroyed on any thread; one object is not safe to use from two
/// threads at once. Like Loaned, it keeps the pool's storage alive. No member
/// allocates; a moved-from PooledBuffer may only be destroyed or assigned to.
class PooledBuffer {
 public:
  /// Takes over `other`'s buffer; `other` becomes empty. Never allocates.
  PooledBuffer(PooledBuffer&& other) noexcept = default;
  /// Returns the buffer held now (if any), then takes over `other`'s.
  PooledBuffer& operator=(PooledBuffer&&) noexcept = default;
  PooledBuffer(const PooledBuffer&) = delete;
  PooledBuffer& operator=(const PooledBuffer&) = delete;
  ~PooledBuffer() = default;

  /// The whole capacity, for writing (e.g. a DMA target); follow with
  /// set_size(). Not thread-safe; never allocates.
  std::span<std::byte> get_mut() noexcept { return {buf().data, buf().capacity}; }
  /// First byte, aligned to the pool's options.alignment. Never allocates.
  std::byte* data() noexcept { return buf().data; }
  /// First byte, read-only. Never allocates.
  const std::byte* data() const noexcept { return buf().data; }
  /// Valid bytes: 0 right after acquire. Never allocates.
  std::size_t size() const noexcept { return buf().size; }
  /// Bytes the buffer can hold (the pool's buffer_capacity). Never allocates.
  std::size_t capacity() const noexcept { return buf().capacity; }

  /// Declares the first `n` bytes valid (after writing through get_mut()).
  /// Throws std::length_error if n > capacity(), leaving the buffer as it
  /// was. Not thread-safe; never allocates (except the exception's message).
  void set_size(std::size_t n) {
    if (n > capacity()) throw_too_long("set_size", n);
    buf().size = n;
  }

  /// Copies `len` bytes from `src` into the buffer and sets size() to `len`
  /// (seed `copy_from_ptr`; `src` may be null if len is 0). Throws
  /// std::length_error if len > capacity(), leaving the buffer unchanged and
  /// usable. The source must not overlap the buffer. Not thread-safe; never
  /// allocates (except the exception's message).
  void copy_from_ptr(const void* src, std::size_t len) {
    detail::Buffer& b = buf();
    // The second test is implied by the first (capacities are at most
    // PTRDIFF_MAX) but lets g++ see a bounded memcpy even when the caller's
    // len is a huge constant (-Wstringop-overflow).
    if (len > b.capacity || len > static_cast<std::size_t>(PTRDIFF_MAX)) throw_too_long("copy_from_ptr", len);
    if (len != 0) std::memcpy(b.data, src, len);
    b.size = len;
  }

  /// copy_from_ptr(src.data(), src.size()): same effects, same errors.
  void copy_from(std::span<const std::byte> src) {
    if (src.size() > capacity()) throw_too_long("copy_from", src.size());
    copy_from_ptr(src.data(), src.size());
  }

  /// Turns the buffer into the first view of its first size() bytes, with no
  /// copy and no allocation: the loan is kept inside the buffer, and the
  /// view's refcount (set to 1) lives there too. `*this` becomes empty. The
  /// buffer returns to the pool when the last view is destroyed.
  /// Precondition: `*this` holds a buffer. Never allocates.
  Bytes freeze() && noexcept {
    detail::Buffer& b = buf();
    auto raw = detail::LoanAccess::into_raw(std::move(loan_));
    b.core = raw.first;
    b.slot = raw.second;
    // relaxed: nobody else can see this buffer yet; handing the view to
    // another thread needs synchronization of its own (a queue, a join...).
    b.refs.store(1, std::memory_order_relaxed);
    return Bytes(b.data, b.size, &b);
  }

  /// True while this object holds a buffer (false once moved from or frozen).
  explicit operator bool() const noexcept { return static_cast<bool>(loan_); }

 private:
  friend class BufferPool;
  friend class Bytes;
  friend struct detail::BufferPoolAccess;  // daq_pool/asio.hpp

  explicit PooledBuffer(Loaned<detail::Buffer>&& loan) noexcept : loan_(std::move(loan)) {}

  detail::Buffer& buf() noexcept { return *loan_; }
  const detail::Buffer& buf() const noexcept { return *loan_; }

  [[noreturn]] void throw_too_long(const char* what, std::size_t n) const {
    throw std::length_error(std::string("daq_pool::PooledBuffer::") + what + ": " + std::to_string(n) +
                            " bytes exceed the capacity of " + std::to_string(capacity()) + " bytes");
  }

  Loaned<detail::Buffer> loan_;
};

inline std::optional<PooledBuffer> Bytes::try_into_mut() && {
  if (ctrl_ == nullptr || !ctrl_->pooled) return std::nullopt;
  // acquire: pairs with the release half of the other views' decrements, so
  // their reads are finished before the caller writes into the buffer again.
  // Seeing 1 is stable: only this view could make another.
  if (ctrl_->refs.load(std::memory_order_acquire) != 1) return std::nullopt;
  auto* b = static_cast<detail::Buffer*>(ctrl_);
  data_ = nullptr;
  size_ = 0;
  ctrl_ = nullptr;
  b->refs.store(0, std::memory_order_relaxed);
  return std::optional<PooledBuffer>(
      PooledBuffer(detail::LoanAccess::from_raw(std::exchange(b->core, nullptr), std::exchange(b->slot, nullptr))));
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
