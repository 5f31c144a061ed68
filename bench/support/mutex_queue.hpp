// The frame-pipeline demo's former per-consumer queue (a mutex and two
// condition variables), kept here as a baseline for bench_broadcast after
// the demo moved to daq_pool::Broadcast. Unchanged but for the namespace.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <utility>
#include <vector>

namespace daq_bench {

/// A bounded multi-producer, multi-consumer FIFO: a ring of `capacity`
/// pre-constructed T under one mutex with two condition variables. All its
/// memory is allocated by the constructor, so push and pop never allocate
/// (a mutex is plenty at camera frame rates; the pool, not this queue, is
/// the hot path being demonstrated). Thread-safe.
template <class T>
class BoundedQueue {
 public:
  /// Allocates `capacity` (>= 1) default-constructed slots.
  explicit BoundedQueue(std::size_t capacity) : slots_(capacity) {}

  /// Appends `value`, waiting while the queue is full. Returns false (and
  /// leaves `value` alone) if the queue is closed. Never allocates.
  bool push(T& value) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return closed_ || count_ < slots_.size(); });
    if (closed_) return false;
    put(value);
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Appends `value` if there is room right now; false (value untouched) if
  /// the queue is full or closed. Never blocks, never allocates.
  bool try_push(T& value) {
    std::unique_lock lock(mutex_);
    if (closed_ || count_ == slots_.size()) return false;
    put(value);
    lock.unlock();
    not_empty_.notify_one();
    return true;
  }

  /// Takes the oldest element into `out`, waiting while the queue is empty.
  /// Returns false once the queue is closed and drained. Never allocates.
  bool pop(T& out) {
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return closed_ || count_ != 0; });
    if (count_ == 0) return false;
    out = std::move(slots_[head_]);
    slots_[head_] = T{};  // drop the queue's reference now, not when the slot is reused
    head_ = (head_ + 1) % slots_.size();
    --count_;
    lock.unlock();
    not_full_.notify_one();
    return true;
  }

  /// Refuses further pushes and wakes every waiter; pops drain what is left.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_full_.notify_all();
    not_empty_.notify_all();
  }

  /// Elements queued right now. Thread-safe; stale the moment it is read.
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return count_;
  }
  /// The most elements ever queued at once. Thread-safe.
  std::size_t high_water() const {
    std::lock_guard lock(mutex_);
    return high_water_;
  }
  /// The most elements the queue holds. Thread-safe.
  std::size_t capacity() const noexcept { return slots_.size(); }

 private:
  void put(T& value) {
    slots_[(head_ + count_) % slots_.size()] = std::move(value);
    ++count_;
    if (count_ > high_water_) high_water_ = count_;
  }

  mutable std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::vector<T> slots_;
  std::size_t head_ = 0, count_ = 0, high_water_ = 0;
  bool closed_ = false;
};

}  // namespace daq_bench
