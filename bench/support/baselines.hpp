// The pools a user would pick instead of daq_pool, behind one small
// interface so that every scenario runs the same code over each of them:
//
//   using Handle = ...;            // move-only loan; returns the item when destroyed
//   Handle acquire();              // blocks while the pool is empty
//   static void fill(Handle&, const std::byte* src, std::size_t n);   // byte pools
//   static std::uint64_t read_pages(Handle&, std::size_t n);          // byte pools
//
// plus the one channel every hand-off scenario uses between its threads.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <new>
#include <stdexcept>
#include <utility>
#include <vector>

#include <daq_pool/daq_pool.hpp>

#include "bench_support.hpp"

#if __has_include(<moodycamel/blockingconcurrentqueue.h>)
#include <moodycamel/blockingconcurrentqueue.h>
#elif __has_include(<concurrentqueue/moodycamel/blockingconcurrentqueue.h>)
#include <concurrentqueue/moodycamel/blockingconcurrentqueue.h>
#elif __has_include(<concurrentqueue/blockingconcurrentqueue.h>)
#include <concurrentqueue/blockingconcurrentqueue.h>
#else
#include <blockingconcurrentqueue.h>
#endif

#if __has_include(<atomic_queue/atomic_queue.h>)
#include <atomic_queue/atomic_queue.h>
#define DAQ_BENCH_ATOMIC_QUEUE 1
#endif

#if defined(DAQ_BENCH_FFMPEG)
extern "C" {
#include <libavutil/buffer.h>
}
#endif
#if defined(DAQ_BENCH_GSTREAMER)
#include <gst/gst.h>
#endif

namespace daq_bench {

/// A move-only loan of `Item` from `Owner`, given back with
/// `Owner::release(Item)` when destroyed. Two words, like daq_pool::Loaned.
template <class Owner, class Item>
class Handle {
 public:
  Handle() noexcept = default;
  Handle(Owner* owner, Item item) noexcept : owner_(owner), item_(item) {}
  Handle(Handle&& other) noexcept
      : owner_(std::exchange(other.owner_, nullptr)), item_(std::exchange(other.item_, Item{})) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      reset();
      owner_ = std::exchange(other.owner_, nullptr);
      item_ = std::exchange(other.item_, Item{});
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  Item get() const noexcept { return item_; }
  explicit operator bool() const noexcept { return owner_ != nullptr; }
  void reset() noexcept {
    if (owner_ != nullptr) std::exchange(owner_, nullptr)->release(std::exchange(item_, Item{}));
  }

 private:
  Owner* owner_ = nullptr;
  Item item_{};
};

/// Byte access for pools of std::vector<std::byte>.
struct VectorBytes {
  template <class H>
  static void fill(H& h, const std::byte* src, std::size_t n) {
    std::memcpy(item(h).data(), src, n);
  }
  template <class H>
  static std::uint64_t read_pages(H& h, std::size_t n) {
    return touch_pages(item(h).data(), n);
  }

 private:
  template <class T>
  static T& item(daq_pool::Loaned<T>& h) {
    return *h;
  }
  template <class H>
  static auto& item(H& h) {
    return *h.get();
  }
};

/// daq_pool::Pool<T> behind the common interface.
template <class T>
class DaqPool : public VectorBytes {
 public:
  using Handle = daq_pool::Loaned<T>;
  static constexpr const char* name = "daq_pool";
  DaqPool(std::size_t n, std::function<T()> make) : pool_(n, std::move(make)) {}
  Handle acquire() { return pool_.acquire(); }
  daq_pool::Pool<T>& pool() noexcept { return pool_; }

 private:
  daq_pool::Pool<T> pool_;
};

/// The usual hand-written pool: a std::vector free list under a std::mutex,
/// a condition variable for the empty case (notified only when someone waits).
template <class T>
class MutexPool : public VectorBytes {
 public:
  using Handle = daq_bench::Handle<MutexPool, T*>;
  static constexpr const char* name = "mutex_freelist";

  MutexPool(std::size_t n, const std::function<T()>& make) {
    items_.reserve(n);
    free_.reserve(n);  // never reallocates afterwards
    for (std::size_t i = 0; i < n; ++i) items_.push_back(make());
    for (auto& item : items_) free_.push_back(&item);
  }

  Handle acquire() {
    std::unique_lock lock(mutex_);
    if (free_.empty()) {
      ++waiting_;
      nonempty_.wait(lock, [this] { return !free_.empty(); });
      --waiting_;
    }
    T* item = free_.back();
    free_.pop_back();
    return Handle(this, item);
  }

  void release(T* item) {
    bool wake;
    {
      std::lock_guard lock(mutex_);
      free_.push_back(item);
      wake = waiting_ > 0;
    }
    if (wake) nonempty_.notify_one();
  }

 private:
  std::mutex mutex_;
  std::condition_variable nonempty_;
  std::vector<T> items_;
  std::vector<T*> free_;
  int waiting_ = 0;
};

#if defined(DAQ_BENCH_MOODYCAMEL)
/// The lock-free pool one would assemble from moodycamel: a ConcurrentQueue
/// of free item pointers counted by a LightweightSemaphore (spins, then
/// sleeps). This is the Rust crate's SegQueue + Semaphore design.
template <class T>
class MoodycamelPool : public VectorBytes {
 public:
  using Handle = daq_bench::Handle<MoodycamelPool, T*>;
  static constexpr const char* name = "moodycamel";

  MoodycamelPool(std::size_t n, const std::function<T()>& make) : free_(n) {
    items_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) items_.push_back(make());
    for (auto& item : items_) release(&item);
  }

  Handle acquire() {
    available_.wait();
    T* item = nullptr;
    // The semaphore guarantees an item is queued; the dequeue may still miss
    // it for a moment (as BlockingConcurrentQueue also retries).
    while (!free_.try_dequeue(item)) {
    }
    return Handle(this, item);
  }

  void release(T* item) {
    free_.enqueue(item);
    available_.signal();
  }

 private:
  std::vector<T> items_;
  moodycamel::ConcurrentQueue<T*> free_;
  moodycamel::LightweightSemaphore available_;
};
#endif

#if defined(DAQ_BENCH_ATOMIC_QUEUE)
/// The fastest lock-free pool one can build from a ring: free item pointers
/// in max0x7ba's atomic_queue::AtomicQueue (a bounded MPMC ring of atomic
/// elements), acquire spinning while the ring is empty. No blocking, no
/// lifetime management, no growth: the floor for a lock-free cycle (each
/// push and pop is two atomic read-modify-writes: the index, the element).
template <class T, unsigned Capacity = 8>
class AtomicQueuePool : public VectorBytes {
 public:
  using Handle = daq_bench::Handle<AtomicQueuePool, T*>;
  static constexpr const char* name = "atomic_queue";

  AtomicQueuePool(std::size_t n, const std::function<T()>& make) {
    if (n > Capacity) throw std::invalid_argument("AtomicQueuePool: n exceeds Capacity");
    items_.reserve(n);
    for (std::size_t i = 0; i < n; ++i) items_.push_back(make());
    for (auto& item : items_) release(&item);
  }

  Handle acquire() { return Handle(this, free_.pop()); }  // spins while empty
  void release(T* item) { free_.push(item); }

 private:
  std::vector<T> items_;
  atomic_queue::AtomicQueue<T*, Capacity, nullptr> free_;
};
#endif

#if defined(DAQ_BENCH_FFMPEG)
/// FFmpeg's AVBufferPool. It has no upper bound (an empty pool allocates a
/// new buffer), so where a scenario needs "a pool of n" a LightweightSemaphore
/// bounds it, as an application would.
class AvPool {
 public:
  using Handle = daq_bench::Handle<AvPool, AVBufferRef*>;
  static constexpr const char* name = "AVBufferPool";

  AvPool(std::size_t n, std::size_t bytes, bool bounded)
      : pool_(av_buffer_pool_init(bytes, nullptr)), bounded_(bounded) {
    if (pool_ == nullptr) throw std::bad_alloc();
    // Make the pool hold n buffers, touched once, like the other pools' items.
    std::vector<AVBufferRef*> warm;
    for (std::size_t i = 0; i < n; ++i) {
      warm.push_back(av_buffer_pool_get(pool_));
      if (warm.back() == nullptr) throw std::bad_alloc();
      std::memset(warm.back()->data, 0, bytes);
    }
    for (auto*& r : warm) av_buffer_unref(&r);
    if (bounded_) available_.signal(static_cast<moodycamel::LightweightSemaphore::ssize_t>(n));
  }
  AvPool(const AvPool&) = delete;
  AvPool& operator=(const AvPool&) = delete;
  ~AvPool() { av_buffer_pool_uninit(&pool_); }

  Handle acquire() {
    if (bounded_) available_.wait();
    return Handle(this, av_buffer_pool_get(pool_));
  }
  void release(AVBufferRef* ref) {
    av_buffer_unref(&ref);
    if (bounded_) available_.signal();
  }

  static void fill(Handle& h, const std::byte* src, std::size_t n) { std::memcpy(h.get()->data, src, n); }
  static std::uint64_t read_pages(Handle& h, std::size_t n) {
    return touch_pages(reinterpret_cast<const std::byte*>(h.get()->data), n);
  }

 private:
  AVBufferPool* pool_;
  bool bounded_;
  moodycamel::LightweightSemaphore available_;
};
#endif

#if defined(DAQ_BENCH_GSTREAMER)
/// GStreamer's GstBufferPool with min = max = n buffers (acquire blocks when
/// all are out). Buffers are mapped to be written or read, as GStreamer
/// requires.
class GstPool {
 public:
  using Handle = daq_bench::Handle<GstPool, GstBuffer*>;
  static constexpr const char* name = "GstBufferPool";

  GstPool(std::size_t n, std::size_t bytes) {
    init_once();
    pool_ = gst_buffer_pool_new();
    GstStructure* config = gst_buffer_pool_get_config(pool_);
    gst_buffer_pool_config_set_params(config, nullptr, static_cast<guint>(bytes), static_cast<guint>(n),
                                      static_cast<guint>(n));
    if (!gst_buffer_pool_set_config(pool_, config) || !gst_buffer_pool_set_active(pool_, TRUE)) {
      gst_object_unref(pool_);
      throw std::runtime_error("GstBufferPool: configuration rejected");
    }
    // Touch every buffer once, like the other pools' items.
    std::vector<Handle> warm;
    for (std::size_t i = 0; i < n; ++i) {
      warm.push_back(acquire());
      GstMapInfo info;
      gst_buffer_map(warm.back().get(), &info, GST_MAP_WRITE);
      std::memset(info.data, 0, info.size);
      gst_buffer_unmap(warm.back().get(), &info);
    }
  }
  GstPool(const GstPool&) = delete;
  GstPool& operator=(const GstPool&) = delete;
  ~GstPool() {
    gst_buffer_pool_set_active(pool_, FALSE);
    gst_object_unref(pool_);
  }

  Handle acquire() {
    GstBuffer* buffer = nullptr;
    if (gst_buffer_pool_acquire_buffer(pool_, &buffer, nullptr) != GST_FLOW_OK)
      throw std::runtime_error("GstBufferPool: acquire failed");
    return Handle(this, buffer);
  }
  void release(GstBuffer* buffer) { gst_buffer_unref(buffer); }

  static void fill(Handle& h, const std::byte* src, std::size_t n) {
    GstMapInfo info;
    gst_buffer_map(h.get(), &info, GST_MAP_WRITE);
    std::memcpy(info.data, src, n);
    gst_buffer_unmap(h.get(), &info);
  }
  static std::uint64_t read_pages(Handle& h, std::size_t n) {
    GstMapInfo info;
    gst_buffer_map(h.get(), &info, GST_MAP_READ);
    const std::uint64_t sum = touch_pages(reinterpret_cast<const std::byte*>(info.data), n);
    gst_buffer_unmap(h.get(), &info);
    return sum;
  }

  static void init_once() {
    static const bool initialised = [] {
      gst_init(nullptr, nullptr);
      return true;
    }();
    (void)initialised;
  }

 private:
  GstBufferPool* pool_ = nullptr;
};
#endif

#if defined(DAQ_BENCH_MOODYCAMEL)
/// The channel of every hand-off scenario, the same whichever pool feeds it:
/// moodycamel's BlockingConcurrentQueue, written through a producer token
/// (an explicit producer reuses its blocks: no allocation in steady state).
template <class H>
class Channel {
 public:
  explicit Channel(std::size_t capacity) : queue_(capacity), token_(queue_) {}
  /// Producer side; one producer thread.
  void push(H&& h) { queue_.enqueue(token_, std::move(h)); }
  /// Consumer side: blocks until an item arrives.
  H pop() {
    H h;
    queue_.wait_dequeue(h);
    return h;
  }

 private:
  moodycamel::BlockingConcurrentQueue<H> queue_;
  moodycamel::ProducerToken token_;
};
#else
/// Under ThreadSanitizer (see DAQ_BENCH_MOODYCAMEL): a mutex + condition
/// variable channel that TSan understands. Timings there mean nothing anyway.
template <class H>
class Channel {
 public:
  explicit Channel(std::size_t) {}
  void push(H&& h) {
    {
      std::lock_guard lock(mutex_);
      items_.push_back(std::move(h));
    }
    nonempty_.notify_one();
  }
  H pop() {
    std::unique_lock lock(mutex_);
    nonempty_.wait(lock, [this] { return !items_.empty(); });
    H h = std::move(items_.front());
    items_.pop_front();
    return h;
  }

 private:
  std::mutex mutex_;
  std::condition_variable nonempty_;
  std::deque<H> items_;
};
#endif

/// The channel's end-of-run marker: an empty handle (a moved-from or reset
/// loan, an empty optional, an empty view).
template <class H>
bool is_end(const H& h) {
  return !h;
}
#if defined(DAQ_BENCH_BUFFER_POOL)
inline bool is_end(const daq_pool::Bytes& b) { return b.data() == nullptr; }
#endif

}  // namespace daq_bench
