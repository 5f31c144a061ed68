// The pieces under BufferPool and Bytes: the control header that every Bytes
// points to (its refcount and how to let go of the storage), the pooled
// Buffer that embeds that header, the heap block of Bytes::copy_from, and the
// memory the buffers live in.
//
// Why a control header with a function pointer instead of a virtual base:
// pooled buffers and heap blocks share one Bytes type and one refcount code
// path; the only difference, what happens at the last release, is one
// indirect call. No vtable, no RTTI, nothing allocated per view.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

#include "daq_pool/debug.hpp"
#include "daq_pool/detail/atomic.hpp"
#include "daq_pool/detail/config.hpp"
#include "daq_pool/detail/pool_core.hpp"
#include "daq_pool/loaned.hpp"
#include "daq_pool/options.hpp"

#if DAQ_POOL_DEBUG
#include <cstdio>
#include <cstdlib>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define DAQ_POOL_HAVE_MMAP 1
#endif

#if defined(__linux__) && defined(DAQ_POOL_HAVE_MMAP)
#include <fcntl.h>
#include <cerrno>
#define DAQ_POOL_HAVE_MEMFD 1
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// What every Bytes view points to: the number of views sharing the storage
/// and the function that lets the storage go when the last one drops.
struct BytesControl {
  using Release = void (*)(BytesControl*) noexcept;

  BytesControl(Release r, bool is_pooled) noexcept : release(r), pooled(is_pooled) {}
  BytesControl(const BytesControl&) = delete;
  BytesControl& operator=(const BytesControl&) = delete;

  atomic<std::size_t> refs{0};  // views alive; the storage is released when it drops to 0
  Release release;              // called once, by the thread that drops the last view
  bool pooled;                  // true: this is a detail::Buffer (try_into_mut may work)
  bool borrowed = false;        // true: this is a detail::BorrowedBlock (storage_of reads its span)
};

// ---- heap-backed views (Bytes::copy_from) ----------------------------------

/// The header of a heap block: the control header and the length of the
/// copy, which Bytes::from_raw needs to check a range against.
struct HeapBlock : BytesControl {
  HeapBlock(Release r, std::size_t n) noexcept : BytesControl(r, false), size(n) {}
  std::size_t size;
};

/// Offset of the data behind the header in a heap block: max_align_t-aligned,
/// like any malloc'd memory.
inline constexpr std::size_t heap_data_offset =
    (sizeof(HeapBlock) + alignof(std::max_align_t) - 1) / alignof(std::max_align_t) * alignof(std::max_align_t);

inline void release_heap_block(BytesControl* c) noexcept {
  static_cast<HeapBlock*>(c)->~HeapBlock();
  ::operator delete(static_cast<void*>(c));
}

/// One allocation holding the header and a copy of [src, src + n); the
/// header's refcount is 1. Throws std::bad_alloc / std::length_error.
inline BytesControl* make_heap_block(const std::byte* src, std::size_t n) {
  if (n > std::numeric_limits<std::size_t>::max() - heap_data_offset)
    throw std::length_error("daq_pool::Bytes::copy_from: src.size() is too large");
  void* mem = ::operator new(heap_data_offset + n);
  auto* c = ::new (mem) HeapBlock(&release_heap_block, n);
  std::memcpy(static_cast<std::byte*>(mem) + heap_data_offset, src, n);
  c->refs.store(1, std::memory_order_relaxed);
  return c;
}

inline const std::byte* heap_block_data(const BytesControl* c) noexcept {
  return reinterpret_cast<const std::byte*>(c) + heap_data_offset;
}

// ---- borrowed views (bytes daq_pool does not own) --------------------------

/// The control header of bytes that belong to someone else, e.g. a frame in
/// another process's shared memory mapped here (daq_pool/shm.hpp's
/// Subscriber): the views of [data, data + size) share its refcount, and the
/// last one to drop calls `release`, which tells the owner (the subscriber
/// sends "done"). Its maker keeps it alive until then and may reuse it
/// afterwards (new data, size and refs), so lending foreign bytes as Bytes
/// allocates nothing. With refs set to 1 it is a raw handle: Bytes::from_raw
/// makes the first view. Views of it are neither pooled nor heap copies
/// (is_pooled() is false, try_into_mut() gives nothing).
struct BorrowedBlock : BytesControl {
  explicit BorrowedBlock(Release r) noexcept : BytesControl(r, false) { borrowed = true; }
  const std::byte* data = nullptr;
  std::size_t size = 0;
};

// ---- the buffers' memory ---------------------------------------------------

/// std::bad_alloc that says which allocation failed (what() is a message
/// naming pool_size and buffer_capacity instead of "std::bad_alloc").
class buffer_alloc_error : public std::bad_alloc {
 public:
  explicit buffer_alloc_error(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

#if defined(DAQ_POOL_HAVE_MEMFD)
inline const char* strerror_r_result(int rc, const char* buf) noexcept { return rc == 0 ? buf : "unknown error"; }
inline const char* strerror_r_result(const char* message, const char*) noexcept { return message; }

/// errno value `err` in words. Thread-safe, unlike std::strerror (strerror_r
/// is the GNU or the XSI one, depending on the C library's mode).
inline std::string errno_text(int err) {
  char buf[128] = {};
  return strerror_r_result(::strerror_r(err, buf, sizeof buf), buf);
}
#endif

inline std::size_t page_size() noexcept {
#if defined(DAQ_POOL_HAVE_MMAP)
  const long p = ::sysconf(_SC_PAGESIZE);
  return p > 0 ? static_cast<std::size_t>(p) : 4096;
#else
  return 4096;
#endif
}

/// The memory of all buffers of one BufferPool, validated and reserved at
/// construction. Without a user allocator: one anonymous mapping holding
/// every buffer, each capacity rounded up to max(alignment, 64) bytes after
/// the previous one (so buffers never share a cache line), unmapped when the
/// last buffer is gone. With one: one `allocate`
/// call per buffer and one `deallocate` per buffer at the end. Shared (by
/// shared_ptr) by every buffer, so it outlives all of them.
/// With shared_memory, the region is a memfd mapped over the reserved
/// address range, so other processes can map the same buffers (map_memfd).
class BufferMemory {
 public:
  /// Transparent huge pages are 2 MiB on x86-64 and most arm64 kernels; a
  /// region aligned to that lets the kernel back it with them.
  static constexpr std::size_t huge_page = std::size_t{2} << 20;

  /// Validates the arguments (std::invalid_argument naming the bad one) and,
  /// without a user allocator, maps and prefaults the region
  /// (buffer_alloc_error when that fails).
  BufferMemory(std::size_t count, std::size_t capacity, BufferPoolOptions&& options)
      : count_(count),
        capacity_(capacity),
        alignment_(options.alignment),
        prefault_(options.prefault),
        huge_pages_(options.huge_pages),
        zero_on_release_(options.zero_on_release),
        shared_(options.shared_memory),
        allocate_(std::move(options.allocate)),
        deallocate_(std::move(options.deallocate)) {
    constexpr std::size_t max = std::numeric_limits<std::size_t>::max();
    if (count == 0) throw std::invalid_argument("daq_pool::BufferPool: pool_size must be at least 1 (got 0)");
    if (count > SlotTable<int>::max_slots)
      throw std::invalid_argument("daq_pool::BufferPool: pool_size (" + std::to_string(count) +
                                  ") exceeds the limit of " + std::to_string(SlotTable<int>::max_slots));
    if (capacity == 0) throw std::invalid_argument("daq_pool::BufferPool: buffer_capacity must be at least 1 (got 0)");
    if (capacity > static_cast<std::size_t>(PTRDIFF_MAX))
      throw std::invalid_argument("daq_pool::BufferPool: buffer_capacity (" + std::to_string(capacity) +
                                  ") exceeds the largest object size");
    if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0)
      throw std::invalid_argument("daq_pool::BufferPool: options.alignment (" + std::to_string(alignment_) +
                                  ") must be a power of two");
    if (static_cast<bool>(allocate_) != static_cast<bool>(deallocate_))
      throw std::invalid_argument(
          "daq_pool::BufferPool: options.allocate and options.deallocate must be given together");
    if (shared_ && allocate_)
      throw std::invalid_argument(
          "daq_pool::BufferPool: options.shared_memory and options.allocate/deallocate can't be combined (shared "
          "buffers live in one memfd the pool maps itself)");
#if !defined(DAQ_POOL_HAVE_MEMFD)
    if (shared_) throw std::invalid_argument("daq_pool::BufferPool: options.shared_memory needs Linux (memfd_create)");
#endif
    const std::size_t step = std::max(alignment_, cache_line);
    if (capacity > max / count || capacity > max - (step - 1) || (capacity + step - 1) / step * step > max / count)
      throw std::invalid_argument("daq_pool::BufferPool: pool_size (" + std::to_string(count) +
                                  ") * buffer_capacity (" + std::to_string(capacity) + ") overflows std::size_t");
    stride_ = (capacity + step - 1) / step * step;
#if DAQ_POOL_DEBUG
    // Debug builds: room after each buffer of the region for its canary
    // bytes (not counted in bytes_reserved(); a user allocator's buffers
    // have no such room and no canary).
    if (capacity > max - (step - 1) - debug::canary_bytes ||
        (capacity + debug::canary_bytes + step - 1) / step * step > max / count)
      throw std::invalid_argument("daq_pool::BufferPool: pool_size (" + std::to_string(count) +
                                  ") * buffer_capacity (" + std::to_string(capacity) + ") overflows std::size_t");
    guarded_stride_ = (capacity + debug::canary_bytes + step - 1) / step * step;
#endif
    if (!allocate_) map_region();
  }

  BufferMemory(const BufferMemory&) = delete;
  BufferMemory& operator=(const BufferMemory&) = delete;

  ~BufferMemory() { unmap_region(); }

  /// The memory of buffer `i` (0 <= i < count): a slice of the region, or a
  /// fresh block from the user's allocator (checked, prefaulted).
  std::byte* make(std::size_t i) {
    if (!allocate_) {
      if (i >= count_) throw buffer_alloc_error("daq_pool::BufferPool: no memory reserved for another buffer");
      return region_ + i * slot_stride();
    }
    auto* p = static_cast<std::byte*>(allocate_(capacity_, alignment_));
    if (p == nullptr)
      throw buffer_alloc_error("daq_pool::BufferPool: options.allocate returned null for a buffer of " +
                               std::to_string(capacity_) + " bytes (buffer_capacity)");
    if (reinterpret_cast<std::uintptr_t>(p) % alignment_ != 0) {
      deallocate_(p, capacity_, alignment_);
      throw std::invalid_argument(
          "daq_pool::BufferPool: options.allocate returned memory not aligned to "
          "options.alignment (" +
          std::to_string(alignment_) + ")");
    }
    advise_huge(p, capacity_);
    if (prefault_) touch(p, capacity_);
    return p;
  }

  /// Gives back buffer memory from make(). Never throws (unless the user's
  /// deallocate does, which terminates).
  void release(std::byte* p) noexcept {
    if (allocate_) deallocate_(p, capacity_, alignment_);
  }

#if DAQ_POOL_DEBUG
  /// Debug builds: aborts with a message naming the buffer if the canary
  /// bytes after buffer `p` (from make()) were overwritten, i.e. something
  /// wrote past its capacity. Buffers from a user allocator have no canary.
  void check_canary(const std::byte* p) const noexcept {
    if (allocate_ || region_ == nullptr) return;
    for (std::size_t k = 0; k < debug::canary_bytes; ++k) {
      if (p[capacity_ + k] == std::byte{debug::canary_byte}) continue;
      const auto i = static_cast<std::size_t>(p - region_) / slot_stride();
      std::fprintf(stderr,
                   "daq_pool: buffer %zu (slot %zu) was overrun: canary byte %zu after its capacity of %zu bytes "
                   "was overwritten (a write past PooledBuffer::capacity())\n",
                   i, i, k, capacity_);
      std::fflush(stderr);
      std::abort();
    }
  }
#endif

  /// BufferPoolOptions::zero_on_release, for the pool's reset.
  bool zero_on_release() const noexcept { return zero_on_release_; }

  /// Bytes reserved for buffers: the region (padding included), or
  /// count * capacity from the user's allocator.
  std::size_t bytes_reserved() const noexcept { return allocate_ ? count_ * capacity_ : count_ * stride_; }

  /// BufferPoolOptions::shared_memory: the memfd holding every buffer (-1
  /// otherwise), owned by this object (closed with the region).
  int shared_fd() const noexcept { return memfd_; }
  /// The memfd's size: the bytes another process maps (0 if not shared).
  std::size_t shared_size() const noexcept { return file_size_; }
  /// True if the memfd refuses every new writable mapping
  /// (F_SEAL_FUTURE_WRITE, Linux >= 5.1).
  bool write_sealed() const noexcept { return write_sealed_; }
  /// First byte of buffer 0 (nullptr with a user allocator).
  const std::byte* region() const noexcept { return region_; }
  /// Distance between consecutive buffers of the region (debug builds: with
  /// the canary room).
  std::size_t buffer_stride() const noexcept { return slot_stride(); }

 private:
  void map_region() {
    const std::size_t used = count_ * slot_stride();
    const std::size_t align = huge_pages_ ? std::max(alignment_, huge_page) : alignment_;
    const std::size_t slack = align > page_size() ? align : 0;
    if (used > std::numeric_limits<std::size_t>::max() - slack)
      throw std::invalid_argument("daq_pool::BufferPool: pool_size * buffer_capacity is too large");
    map_length_ = used + slack;
#if defined(DAQ_POOL_HAVE_MMAP)
    void* m = ::mmap(nullptr, map_length_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) m = nullptr;
#else
    void* m = ::operator new (map_length_, std::align_val_t{std::max(align, cache_line)}, std::nothrow);
#endif
    if (m == nullptr)
      throw buffer_alloc_error("daq_pool::BufferPool: cannot reserve " + std::to_string(map_length_) +
                               " bytes for pool_size (" + std::to_string(count_) + ") buffers of buffer_capacity (" +
                               std::to_string(capacity_) + ") bytes");
    map_base_ = m;
    const auto addr = reinterpret_cast<std::uintptr_t>(m);
    region_ = static_cast<std::byte*>(m) + ((align - addr % align) % align);
#if defined(DAQ_POOL_HAVE_MEMFD)
    if (shared_) map_memfd(used);
#endif
    advise_huge(region_, used);
    if (prefault_) touch(region_, used);
#if DAQ_POOL_DEBUG
    for (std::size_t i = 0; i < count_; ++i)
      std::memset(region_ + i * slot_stride() + capacity_, debug::canary_byte, debug::canary_bytes);
#endif
  }

  /// Distance between buffers in the region: stride_, plus the canary room
  /// in debug builds.
  std::size_t slot_stride() const noexcept {
#if DAQ_POOL_DEBUG
    return guarded_stride_;
#else
    return stride_;
#endif
  }

#if defined(DAQ_POOL_HAVE_MEMFD)
  /// shared_memory: puts a memfd under the region just reserved: creates it,
  /// sizes it to whole pages, maps it writable over the region (MAP_FIXED),
  /// and only then seals it. The order matters: F_SEAL_FUTURE_WRITE refuses
  /// every writable mapping made after it, so this process's own mapping,
  /// the one PooledBuffer writes through, must exist first; every other
  /// process the fd is passed to can then map it read-only only. Shrink and
  /// grow seals keep the file the size every mapping was made with (a
  /// shrunk file would SIGBUS its readers). Undoes everything and throws
  /// buffer_alloc_error (naming the call and errno) on failure.
  void map_memfd(std::size_t used) {
    const std::size_t page = page_size();
    file_size_ = (used + page - 1) / page * page;
    const char* failed = nullptr;
    memfd_ = ::memfd_create("daq_pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd_ < 0) {
      failed = "memfd_create";
    } else if (::ftruncate(memfd_, static_cast<off_t>(file_size_)) != 0) {
      failed = "ftruncate";
    } else if (::mmap(region_, file_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd_, 0) == MAP_FAILED) {
      failed = "mmap";
    } else if (!seal_memfd()) {
      failed = "fcntl(F_ADD_SEALS)";
    }
    if (failed == nullptr) return;
    const int err = errno;
    unmap_region();
    throw buffer_alloc_error("daq_pool::BufferPool: options.shared_memory: " + std::string(failed) + " failed (" +
                             errno_text(err) + ") for " + std::to_string(file_size_) + " bytes of pool_size (" +
                             std::to_string(count_) + ") buffers");
  }

  bool seal_memfd() noexcept {
#if defined(F_SEAL_FUTURE_WRITE)
    constexpr int future_write = F_SEAL_FUTURE_WRITE;
#else
    constexpr int future_write = 0x0010;  // Linux's value, for C libraries older than the kernel
#endif
    constexpr int size_seals = F_SEAL_SHRINK | F_SEAL_GROW;
    if (::fcntl(memfd_, F_ADD_SEALS, size_seals | future_write | F_SEAL_SEAL) == 0) {
      write_sealed_ = true;
      return true;
    }
    // Kernels before 5.1 don't know F_SEAL_FUTURE_WRITE (EINVAL): seal the
    // size only. Other processes still get a read-only descriptor from the
    // frame server, which can't make a writable mapping either.
    return errno == EINVAL && ::fcntl(memfd_, F_ADD_SEALS, size_seals | F_SEAL_SEAL) == 0;
  }
#endif

  void unmap_region() noexcept {
#if defined(DAQ_POOL_HAVE_MEMFD)
    if (memfd_ >= 0) ::close(std::exchange(memfd_, -1));
#endif
    if (map_base_ == nullptr) return;
#if defined(DAQ_POOL_HAVE_MMAP)
    ::munmap(map_base_, map_length_);
#else
    const std::size_t align = huge_pages_ ? std::max(alignment_, huge_page) : alignment_;
    ::operator delete (map_base_, std::align_val_t{std::max(align, cache_line)});
#endif
    map_base_ = nullptr;
  }

  void advise_huge([[maybe_unused]] std::byte* p, [[maybe_unused]] std::size_t n) const noexcept {
#if defined(DAQ_POOL_HAVE_MMAP) && defined(MADV_HUGEPAGE)
    if (!huge_pages_) return;
    // madvise wants a page-aligned start: advise the whole pages inside [p, p+n).
    const std::size_t page = page_size();
    const auto begin = (reinterpret_cast<std::uintptr_t>(p) + page - 1) / page * page;
    const auto end = (reinterpret_cast<std::uintptr_t>(p) + n) / page * page;
    // A hint: failure (no THP in this kernel) only costs the speed-up.
    if (end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
  }

  /// Writes one byte per page (and the last byte), so that the kernel maps
  /// every page now rather than on the hot path's first write. A write, not
  /// a read: reading fresh anonymous memory maps the shared zero page, and
  /// the first write would still fault.
  static void touch(std::byte* p, std::size_t n) noexcept {
    const std::size_t page = page_size();
    volatile std::byte* v = p;
    for (std::size_t off = 0; off < n; off += page) v[off] = std::byte{0};
    v[n - 1] = std::byte{0};
  }

  std::size_t count_;
  std::size_t capacity_;
  std::size_t alignment_;
  bool prefault_;
  bool huge_pages_;
  bool zero_on_release_;
  bool shared_;
  std::function<void*(std::size_t, std::size_t)> allocate_;
  std::function<void(void*, std::size_t, std::size_t)> deallocate_;
  std::size_t stride_ = 0;
#if DAQ_POOL_DEBUG
  std::size_t guarded_stride_ = 0;
#endif
  void* map_base_ = nullptr;
  std::size_t map_length_ = 0;
  std::byte* region_ = nullptr;
  int memfd_ = -1;             // shared_memory: the file under the region
  std::size_t file_size_ = 0;  // ... and its size
  bool write_sealed_ = false;  // ... sealed with F_SEAL_FUTURE_WRITE
};

// ---- the pooled item -------------------------------------------------------

/// The item a BufferPool's Pool<Buffer> lends: the buffer's memory, its
/// valid size, and the control header of the views made by freeze(). While
/// frozen, the buffer also keeps the raw parts of its own loan (core and
/// slot), so the last view can rebuild the Loaned and return it: the view's
/// refcount lives in the pooled slot itself, and nothing is allocated.
struct Buffer : BytesControl {
  Buffer(std::byte* d, std::size_t cap, std::shared_ptr<BufferMemory> mem) noexcept
      : BytesControl(&return_to_pool, true), data(d), capacity(cap), memory(std::move(mem)) {}

  // The pool's factory returns by value; a fresh header, no views.
  Buffer(Buffer&& o) noexcept
      : BytesControl(&return_to_pool, true),
        data(std::exchange(o.data, nullptr)),
        capacity(o.capacity),
        size(o.size),
        memory(std::move(o.memory)) {}
  Buffer& operator=(Buffer&&) = delete;

  ~Buffer() {
    if (data != nullptr && memory) memory->release(data);
  }

  /// Rebuilds the loan that freeze() took apart and destroys it: the pool's
  /// reset runs (size 0, optional scrub) and the buffer is free again.
  static void return_to_pool(BytesControl* c) noexcept {
    auto* b = static_cast<Buffer*>(c);
    // Read both before the loan returns: after that another thread may own b.
    Loaned<Buffer> loan = LoanAccess::from_raw(std::exchange(b->core, nullptr), std::exchange(b->slot, nullptr));
    loan.reset();
  }

  std::byte* data = nullptr;
  std::size_t capacity = 0;
  std::size_t size = 0;
  std::shared_ptr<BufferMemory> memory;
  PoolCore<Buffer>* core = nullptr;  // set only while frozen
  Slot<Buffer>* slot = nullptr;      // set only while frozen
};

/// The bytes every view of `c` lies in: a frozen buffer's valid bytes (its
/// size when frozen), a borrowed block's bytes or a heap block's copy.
/// Never allocates.
inline std::span<const std::byte> storage_of(const BytesControl* c) noexcept {
  if (c->pooled) {
    const auto* b = static_cast<const Buffer*>(c);
    return {b->data, b->size};
  }
  if (c->borrowed) {
    const auto* b = static_cast<const BorrowedBlock*>(c);
    return {b->data, b->size};
  }
  return {heap_block_data(c), static_cast<const HeapBlock*>(c)->size};
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
