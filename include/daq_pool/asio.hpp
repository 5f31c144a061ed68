// Asynchronous acquisition with asio: wait for a slot of a Pool<T> or a
// buffer of a BufferPool without holding a thread, with any completion token
// (a callback, use_awaitable / co_await, use_future, deferred, as_tuple,
// redirect_error...), per-operation cancellation, and close() completing
// every waiter. The seed's `acquire().await` and
// `try_acquire_timeout(d).await`.
//
// Standalone asio (Debian's libasio-dev) by default; with
// DAQ_POOL_ASIO_USE_BOOST defined to 1 (CMake option DAQ_POOL_ASIO_USE_BOOST),
// Boost.Asio (Boost >= 1.79, whose boost::system::error_code converts from
// std::error_code). Link the target daq_pool::asio.
//
// Which thread runs what:
//  - the initiating call tries the pool once, lock-free; if a slot is free
//    (or the pool is closed) the operation completes at once, its handler
//    deferred to the handler's associated executor (asio::defer: never inside
//    the initiating call; a continuation of the caller, so on an io_context
//    it queues on the calling thread without waking another);
//  - otherwise the operation waits in the pool's waiter list (its node lives
//    in the operation's state, allocated with the handler's associated
//    allocator, asio's recycling allocator by default: no allocation in
//    steady state). The thread that releases a slot (a Loaned destroyed, a
//    Bytes view dropped, on any thread) hands the slot to the oldest waiter
//    and *posts* the handler to the handler's associated executor (asio::post:
//    never inline in the releasing thread: a consumer dropping a view never
//    runs the producer's coroutine). close(), a cancellation and a deadline
//    complete a waiter the same way, from the thread that caused it;
//  - a handler without an associated executor runs on asio's system
//    executor (as for any asio operation that has no I/O object): bind one
//    with asio::bind_executor, or use a coroutine, which has one.
//
// The pool must stay alive (some handle of it) until the operation is
// initiated, as an I/O object must; for a deferred token, until it is
// launched. Once waiting, an operation does not keep the pool open: destroying
// the last handle completes it with errc::pool_closed.
#pragma once

#include "daq_pool/detail/abi.hpp"

#if defined(DAQ_POOL_ASIO_USE_BOOST) && DAQ_POOL_ASIO_USE_BOOST
#include <boost/asio/associated_allocator.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/defer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/execution.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/system_executor.hpp>
#include <boost/asio/wait_traits.hpp>
#include <boost/system/error_code.hpp>
#else
#include <asio/associated_allocator.hpp>
#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/basic_waitable_timer.hpp>
#include <asio/cancellation_type.hpp>
#include <asio/defer.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/execution.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/system_executor.hpp>
#include <asio/wait_traits.hpp>
#endif

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <system_error>
#include <type_traits>
#include <utility>

#include "daq_pool/buffer_pool.hpp"
#include "daq_pool/debug.hpp"
#include "daq_pool/detail/deadline.hpp"
#include "daq_pool/detail/pool_core.hpp"
#include "daq_pool/errors.hpp"
#include "daq_pool/loaned.hpp"
#include "daq_pool/pool.hpp"
#include "daq_pool/pooled_buffer.hpp"

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

namespace detail {

#if defined(DAQ_POOL_ASIO_USE_BOOST) && DAQ_POOL_ASIO_USE_BOOST
namespace net = ::boost::asio;
using net_error_code = ::boost::system::error_code;
#else
namespace net = ::asio;
using net_error_code = ::asio::error_code;  // std::error_code
#endif

inline net_error_code closed_error() noexcept { return net_error_code(make_error_code(errc::pool_closed)); }
inline net_error_code aborted_error() noexcept { return net::error::operation_aborted; }

/// Lets the asio adapter reach the Pool<Buffer> under a BufferPool, and make
/// PooledBuffers from its loans.
struct BufferPoolAccess {
  static Pool<Buffer>& pool(BufferPool& p) noexcept { return p.pool_; }
  /// A loan as its new user finds it (BufferPool::fresh), or an empty one.
  static PooledBuffer wrap(Loaned<Buffer>&& loan) noexcept {
    if (loan) return BufferPool::fresh(std::move(loan));
    return PooledBuffer(std::move(loan));
  }
};

// ---- what an operation completes with ---------------------------------------

/// Pool<T>: the loan itself (empty on error).
template <class T>
struct LoanResult {
  using item_type = T;
  using value_type = Loaned<T>;
  static value_type from(PoolCore<T>* core, Slot<T>* s) noexcept { return LoanAccess::from_raw(core, s); }
  static value_type none() noexcept { return {}; }
};

/// BufferPool: a PooledBuffer of size 0 (empty on error).
struct BufferResult {
  using item_type = Buffer;
  using value_type = PooledBuffer;
  static value_type from(PoolCore<Buffer>* core, Slot<Buffer>* s) noexcept {
    return BufferPoolAccess::wrap(LoanAccess::from_raw(core, s));
  }
  static value_type none() noexcept { return BufferPoolAccess::wrap(Loaned<Buffer>{}); }
};

/// The timed acquisitions: nothing on timeout.
template <class R>
struct OptionalResult {
  using item_type = typename R::item_type;
  using value_type = std::optional<typename R::value_type>;
  static value_type from(PoolCore<item_type>* core, Slot<item_type>* s) noexcept {
    return value_type(R::from(core, s));
  }
  static value_type none() noexcept { return std::nullopt; }
};

// ---- handlers, executors, allocators ---------------------------------------

template <class Handler>
using handler_executor_t = net::associated_executor_t<Handler, net::system_executor>;

/// The allocator of an operation's state: the handler's, or asio's recycling
/// allocator (a small per-thread cache in io_context threads) when it has
/// none, as asio's own operations do.
template <class Handler>
using handler_allocator_t =
    std::conditional_t<std::is_same_v<net::associated_allocator_t<Handler>, std::allocator<void>>,
                       net::recycling_allocator<void>, net::associated_allocator_t<Handler>>;

template <class Handler>
handler_allocator_t<Handler> handler_allocator(const Handler& handler) noexcept {
  if constexpr (std::is_same_v<net::associated_allocator_t<Handler>, std::allocator<void>>)
    return {};
  else
    return net::get_associated_allocator(handler);
}

/// The handler's executor, counting outstanding work while an operation
/// waits (so that io_context::run() does not return under a suspended
/// coroutine).
template <class Executor, class = void>
struct TrackedWork {
  using type = std::decay_t<typename net::prefer_result<Executor, net::execution::outstanding_work_t::tracked_t>::type>;
  static type make(const Executor& ex) { return net::prefer(ex, net::execution::outstanding_work.tracked); }
  static const type& executor(const type& w) noexcept { return w; }
};
/// Pre-standard ("Networking TS") executors: a work guard.
template <class Executor>
struct TrackedWork<Executor, std::enable_if_t<!net::execution::is_executor<Executor>::value>> {
  using type = net::executor_work_guard<Executor>;
  static type make(const Executor& ex) { return type(ex); }
  static Executor executor(const type& w) noexcept { return w.get_executor(); }
};

/// The function an operation's executor finally runs: the user's handler
/// with its arguments. Carries the handler's allocator (asio allocates the
/// queued function with it).
template <class Handler, class Value>
struct Completion {
  using allocator_type = net::associated_allocator_t<Handler>;
  allocator_type get_allocator() const noexcept { return net::get_associated_allocator(handler); }
  void operator()() { std::move(handler)(ec, std::move(value)); }

  Handler handler;
  net_error_code ec;
  Value value;
};

/// How a completion reaches its executor.
enum class Deliver {
  defer,     // completed in the initiating call: a continuation of the caller
  post,      // completed by another thread (a release, close, cancellation)
  dispatch,  // completed inside the handler's executor (a timer's handler)
};

template <class Executor, class Handler, class Value>
void deliver(Deliver how, const Executor& ex, Handler&& handler, net_error_code ec, Value&& value) {
  Completion<std::decay_t<Handler>, std::decay_t<Value>> c{std::forward<Handler>(handler), ec,
                                                           std::forward<Value>(value)};
  switch (how) {
    case Deliver::defer:
      net::defer(ex, std::move(c));
      break;
    case Deliver::post:
      net::post(ex, std::move(c));
      break;
    case Deliver::dispatch:
      net::dispatch(ex, std::move(c));
      break;
  }
}

/// Installed in a handler's cancellation slot while its operation waits.
/// Finds the operation by its own address (the key), because it may be
/// invoked after the operation has completed and its state is gone (a slot
/// is cleared by its owner, not by the operation); holds a reference on the
/// core for the same reason. Runs on the thread that emits the signal.
template <class T>
class CancelHandler {
 public:
  explicit CancelHandler(PoolCore<T>* core) noexcept : core_(core) {}
  void operator()(net::cancellation_type_t type) noexcept {
    // Removing a waiter that has no slot yet has no other effect, so every
    // kind of cancellation is honoured.
    if ((type & (net::cancellation_type::terminal | net::cancellation_type::partial | net::cancellation_type::total)) !=
        net::cancellation_type::none)
      core_->abort_wait_by_key(this, WaitState::cancelled);
  }

 private:
  CoreRef<T> core_;
};

// ---- the operation state -----------------------------------------------------

/// A waiting acquisition: the pool's waiter node (first, so that the core's
/// node is the operation), the handler, the handler's executor with work
/// tracked, and, for a timed acquisition, a timer on that executor.
///
/// Completed exactly once. Untimed: when the core serves it (grant, close,
/// cancellation), the serving thread posts the handler. Timed: two sides
/// must finish, the waiter (served as above, or removed by the deadline)
/// and the timer's handler (fired, or aborted by timer.cancel() after the
/// waiter side); the last one delivers.
template <class Result, class Handler, class Clock = void>
class WaitOp final : public WaiterNode<typename Result::item_type> {
  using T = typename Result::item_type;
  using Executor = handler_executor_t<Handler>;
  using Work = TrackedWork<Executor>;
  using Alloc = typename std::allocator_traits<handler_allocator_t<Handler>>::template rebind_alloc<WaitOp>;
  static constexpr bool timed = !std::is_void_v<Clock>;
  using Timer =
      std::conditional_t<timed,
                         net::basic_waitable_timer<
                             std::conditional_t<timed, Clock, std::chrono::steady_clock>,
                             net::wait_traits<std::conditional_t<timed, Clock, std::chrono::steady_clock>>, Executor>,
                         char>;

 public:
  using value_type = typename Result::value_type;

  /// Starts the operation for `handler` on `core`, whose try failed.
  /// `deadline` (timed only) has not passed.
  template <class Deadline>
  static void start(PoolCore<T>* core, Handler&& handler, const source_location& where, const Deadline& deadline) {
    Alloc alloc(handler_allocator(handler));
    WaitOp* op = std::allocator_traits<Alloc>::allocate(alloc, 1);
    try {
      ::new (static_cast<void*>(op)) WaitOp(core, std::move(handler), where, alloc);
    } catch (...) {
      std::allocator_traits<Alloc>::deallocate(alloc, op, 1);
      throw;
    }
    // Emitted only by the slot's owner, in its own context: never while we
    // are still initiating.
    auto slot = net::get_associated_cancellation_slot(op->handler_);
    if (slot.is_connected()) op->cancel_key = &slot.template emplace<CancelHandler<T>>(core);
    if constexpr (timed) {
      // The timer first: a release may serve the waiter (and cancel the
      // timer) the moment it is queued. A deadline that fires before the
      // waiter is queued makes start_wait() return `aborted`.
      op->timer_.expires_at(deadline);
      op->timer_.async_wait(TimerHandler{op});
    }
    // After start_wait() returns `queued` the operation belongs to whoever
    // serves it: no access to *op here any more.
    if (core->start_wait(*op) != WaitStart::queued) op->waiter_done(Deliver::defer);
  }

 private:
  WaitOp(PoolCore<T>* core, Handler&& handler, const source_location& where, const Alloc& alloc)
      : WaiterNode<T>(&WaitOp::on_complete),
        handler_(std::move(handler)),
        work_(Work::make(net::get_associated_executor(handler_, net::system_executor()))),
        alloc_(alloc),
        core_(core),
        where_(where),
        timer_(make_timer()) {}

  Timer make_timer() {
    if constexpr (timed)
      return Timer(net::get_associated_executor(handler_, net::system_executor()));
    else
      return 0;
  }

  PoolCore<T>* core() const noexcept {
    if constexpr (timed)
      return core_.get();
    else
      return core_;
  }

  /// The core's on_complete: this waiter was served (granted, closed,
  /// cancelled, or timed out by the timer's handler). Runs on the serving
  /// thread, after the core released its lock.
  static void on_complete(WaiterNode<T>& node) noexcept { static_cast<WaitOp&>(node).waiter_done(Deliver::post); }

  /// The waiter side is done: take the result out of the node.
  void waiter_done(Deliver how) noexcept {
    switch (this->state) {
      case WaitState::granted:
        core()->note_acquired(*this->slot, where_);
        value_.emplace(Result::from(core(), this->slot));
        break;
      case WaitState::closed:
        ec_ = closed_error();
        break;
      case WaitState::cancelled:
        ec_ = aborted_error();
        break;
      default:  // timed_out: no slot, no error (the timed kinds only)
        break;
    }
    if constexpr (timed) {
      // The timer's handler runs anyway (now with operation_aborted); of the
      // two sides, the last one delivers. No race on the timer object: its
      // handler never touches it, and it is destroyed after both sides.
      timer_.cancel();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) finish(how);
    } else {
      finish(how);
    }
  }

  /// Frees the state (before the upcall, so the handler may start the next
  /// operation in the same memory) and hands the handler to its executor.
  void finish(Deliver how) noexcept {
    Handler handler(std::move(handler_));
    typename Work::type work(std::move(work_));
    net_error_code ec = ec_;
    value_type value = value_ ? std::move(*value_) : Result::none();
    Alloc alloc(alloc_);
    this->~WaitOp();
    std::allocator_traits<Alloc>::deallocate(alloc, this, 1);
    deliver(how, Work::executor(work), std::move(handler), ec, std::move(value));
  }

  /// Destroys the state without delivering (the handler and any loan in the
  /// result go with it): the io_context went away with the timer's handler.
  void abandon() noexcept {
    Alloc alloc(alloc_);
    this->~WaitOp();
    std::allocator_traits<Alloc>::deallocate(alloc, this, 1);
  }

  /// The timer's completion, on the handler's executor. Owns the timer side:
  /// destroyed without being called (its io_context destroyed), it still
  /// finishes that side, so the state is never leaked.
  class TimerHandler {
   public:
    using allocator_type = Alloc;
    explicit TimerHandler(WaitOp* op) noexcept : op_(op) {}
    TimerHandler(TimerHandler&& o) noexcept : op_(std::exchange(o.op_, nullptr)) {}
    TimerHandler& operator=(TimerHandler&&) = delete;
    ~TimerHandler() {
      if (op_ != nullptr && op_->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) op_->abandon();
    }
    allocator_type get_allocator() const noexcept { return op_->alloc_; }

    void operator()(const net_error_code& ec) noexcept {
      WaitOp* op = std::exchange(op_, nullptr);
      // Expired (not cancelled): remove the waiter if it still waits; then
      // its waiter side completes here, inline, as timed out.
      if (!ec) op->core()->abort_wait(*op, WaitState::timed_out);
      if (op->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) op->finish(Deliver::dispatch);
    }

   private:
    WaitOp* op_;
  };

  Handler handler_;
  typename Work::type work_;
  Alloc alloc_;
  // Timed operations touch the core from the timer's handler, which may run
  // after close() served the waiter: they keep it alive. Untimed ones are
  // only touched through the core while queued, and never after.
  std::conditional_t<timed, CoreRef<T>, PoolCore<T>*> core_;
  source_location where_;
  net_error_code ec_;
  std::optional<value_type> value_;
  std::atomic<int> pending_{2};
  Timer timer_;
};

/// asio's initiation object for an acquisition.
template <class Result>
struct InitiateAcquire {
  using T = typename Result::item_type;

  template <class Handler>
  void operator()(Handler&& handler) const {
    if (try_now(handler)) return;
    WaitOp<Result, std::decay_t<Handler>>::start(core, std::forward<Handler>(handler), where, 0);
  }

  /// The one lock-free try: completes the operation at once if a slot is
  /// free or the pool is closed.
  template <class Handler>
  bool try_now(Handler& handler) const {
    if (Slot<T>* s = core->try_take()) {
      core->note_acquired(*s, where);
      complete_now(handler, {}, Result::from(core, s));
      return true;
    }
    if (core->is_closed()) {
      complete_now(handler, closed_error(), Result::none());
      return true;
    }
    return false;
  }

  template <class Handler>
  void complete_now(Handler& handler, net_error_code ec, typename Result::value_type value) const {
    const handler_executor_t<Handler> ex = net::get_associated_executor(handler, net::system_executor());
    deliver(Deliver::defer, ex, std::move(handler), ec, std::move(value));
  }

  PoolCore<T>* core;
  source_location where;
};

/// asio's initiation object for a timed acquisition (deadline on Clock).
template <class Result, class Clock, class Duration>
struct InitiateTimedAcquire {
  using T = typename Result::item_type;

  template <class Handler>
  void operator()(Handler&& handler) const {
    const InitiateAcquire<Result> untimed{core, where};
    if (untimed.try_now(handler)) return;
    if (!(Clock::now() < deadline)) {
      // A deadline already passed: the one try was it.
      untimed.complete_now(handler, {}, Result::none());
    } else if (never_expires()) {
      // Wait like async_acquire, without a timer.
      WaitOp<Result, std::decay_t<Handler>>::start(core, std::forward<Handler>(handler), where, 0);
    } else {
      // Rounded up to the clock's tick: a timer never fires early.
      WaitOp<Result, std::decay_t<Handler>, Clock>::start(core, std::forward<Handler>(handler), where,
                                                          std::chrono::ceil<typename Clock::duration>(deadline));
    }
  }

  /// time_point::max(), or too far to represent on the clock's own tick.
  bool never_expires() const noexcept {
    using wide = std::chrono::duration<long double>;
    return deadline == std::chrono::time_point<Clock, Duration>::max() ||
           wide(deadline.time_since_epoch()) >= wide(Clock::time_point::max().time_since_epoch());
  }

  PoolCore<T>* core;
  std::chrono::time_point<Clock, Duration> deadline;
  source_location where;
};

template <class T>
PoolCore<T>* core_of(Pool<T>& pool) noexcept {
  return PoolAccess::core(pool);
}
inline PoolCore<Buffer>* core_of(BufferPool& pool) noexcept { return PoolAccess::core(BufferPoolAccess::pool(pool)); }

}  // namespace detail

/// The error code type of the completion signatures: std::error_code with
/// standalone asio, boost::system::error_code with Boost.Asio.
using asio_error_code = detail::net_error_code;

/// Waits for a free item of `pool` without blocking a thread (the seed's
/// `acquire().await`). Completion signature `void(asio_error_code,
/// Loaned<T>)`: the loan, or an empty loan with errc::pool_closed (the pool
/// is or becomes closed, also by the destruction of its last handle) or
/// operation_aborted (cancelled through the handler's cancellation slot:
/// terminal, partial and total cancellation are supported). Waiters are
/// served in FIFO order with the blocked threads (see daq_pool/asio.hpp on
/// which thread runs what). Thread-safe. Never allocates on daq_pool's side;
/// a wait allocates its state with the handler's allocator (asio's recycling
/// allocator by default: nothing in steady state on an io_context thread).
template <class T, class CompletionToken>
auto async_acquire(Pool<T>& pool, CompletionToken&& token, source_location where = source_location::current()) {
  return detail::net::async_initiate<CompletionToken, void(asio_error_code, Loaned<T>)>(
      detail::InitiateAcquire<detail::LoanResult<T>>{detail::core_of(pool), where}, token);
}

/// async_acquire() for a BufferPool: completion signature
/// `void(asio_error_code, PooledBuffer)`; the buffer's size is 0 (empty
/// buffer on error). Same errors, threads and costs.
template <class CompletionToken>
auto async_acquire(BufferPool& pool, CompletionToken&& token, source_location where = source_location::current()) {
  return detail::net::async_initiate<CompletionToken, void(asio_error_code, PooledBuffer)>(
      detail::InitiateAcquire<detail::BufferResult>{detail::core_of(pool), where}, token);
}

/// Waits for a free item until `deadline` (any chrono clock asio can time;
/// absolute: nothing extends it). Completion signature
/// `void(asio_error_code, std::optional<Loaned<T>>)`: nothing (and no error)
/// on timeout, as the blocking try_acquire_until; errc::pool_closed or
/// operation_aborted as async_acquire. A deadline already passed: one try.
/// time_point::max(): no timer, waits until served, closed or cancelled.
/// Thread-safe; allocations as async_acquire, plus the timer's wait.
template <class T, class Clock, class Duration, class CompletionToken>
auto async_try_acquire_until(Pool<T>& pool, std::chrono::time_point<Clock, Duration> deadline, CompletionToken&& token,
                             source_location where = source_location::current()) {
  using R = detail::OptionalResult<detail::LoanResult<T>>;
  return detail::net::async_initiate<CompletionToken, void(asio_error_code, std::optional<Loaned<T>>)>(
      detail::InitiateTimedAcquire<R, Clock, Duration>{detail::core_of(pool), deadline, where}, token);
}

/// async_try_acquire_until() for a BufferPool: completion signature
/// `void(asio_error_code, std::optional<PooledBuffer>)`.
template <class Clock, class Duration, class CompletionToken>
auto async_try_acquire_until(BufferPool& pool, std::chrono::time_point<Clock, Duration> deadline,
                             CompletionToken&& token, source_location where = source_location::current()) {
  using R = detail::OptionalResult<detail::BufferResult>;
  return detail::net::async_initiate<CompletionToken, void(asio_error_code, std::optional<PooledBuffer>)>(
      detail::InitiateTimedAcquire<R, Clock, Duration>{detail::core_of(pool), deadline, where}, token);
}

/// Waits for a free item at most `timeout` (the seed's
/// `try_acquire_timeout(d).await`): the deadline is steady_clock::now() +
/// timeout, fixed at the call. Zero or negative: one try; too long to
/// represent (duration::max()): no limit. Completion signature
/// `void(asio_error_code, std::optional<Loaned<T>>)`, as
/// async_try_acquire_until.
template <class T, class Rep, class Period, class CompletionToken>
auto async_try_acquire_for(Pool<T>& pool, std::chrono::duration<Rep, Period> timeout, CompletionToken&& token,
                           source_location where = source_location::current()) {
  return async_try_acquire_until(pool, detail::deadline_after(timeout), std::forward<CompletionToken>(token), where);
}

/// async_try_acquire_for() for a BufferPool: completion signature
/// `void(asio_error_code, std::optional<PooledBuffer>)`.
template <class Rep, class Period, class CompletionToken>
auto async_try_acquire_for(BufferPool& pool, std::chrono::duration<Rep, Period> timeout, CompletionToken&& token,
                           source_location where = source_location::current()) {
  return async_try_acquire_until(pool, detail::deadline_after(timeout), std::forward<CompletionToken>(token), where);
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
