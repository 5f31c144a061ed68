// co_await a Broadcast subscriber (daq_pool/broadcast.hpp) with asio:
// AsyncSubscriber watches a pollable subscriber's eventfd with the
// executor's reactor, so a coroutine (or any completion token) waits for the
// next frame without holding a thread.
//
//   Subscriber sub = channel.subscribe({.on_full = OnFull::keep_latest, .capacity = 2, .pollable = true});
//   daq_pool::AsyncSubscriber frames(io.get_executor(), std::move(sub));
//   while (std::optional<Received> f = co_await frames.async_receive(asio::use_awaitable)) show(f->bytes());
//
// Part of the asio integration (link daq_pool::asio; standalone asio, or
// Boost.Asio with DAQ_POOL_ASIO_USE_BOOST, as daq_pool/asio.hpp). Linux only
// (eventfd). Kept apart from daq_pool/asio.hpp, which adapts the pools:
// include this one where a subscriber is awaited.
//
// Which thread runs what: the publisher (its publish()) makes the eventfd
// readable; the executor's reactor sees it and runs the operation's
// continuation, which takes the frame from the subscriber's queue, on the
// executor (never inline in publish(), never inside async_receive()). One
// async_receive at a time per AsyncSubscriber (like a socket's read).
#pragma once

#include "daq_pool/detail/abi.hpp"

#include "daq_pool/asio.hpp"
#include "daq_pool/broadcast.hpp"

#if defined(DAQ_POOL_ASIO_USE_BOOST) && DAQ_POOL_ASIO_USE_BOOST
#include <boost/asio/compose.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#else
#include <asio/compose.hpp>
#include <asio/posix/stream_descriptor.hpp>
#endif

#include <unistd.h>

#include <cerrno>
#include <optional>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// A pollable Subscriber awaited through an asio executor. Not thread-safe
/// (one operation at a time, like an asio socket); movable. Destroying it
/// leaves the channel (the subscriber's frames still queued are dropped).
class AsyncSubscriber {
 public:
  /// The descriptor type watching the subscriber's eventfd.
  using descriptor = detail::net::posix::stream_descriptor;

  /// Takes over `subscriber`, which must be pollable
  /// (SubscriberOptions::pollable; else std::invalid_argument), and watches
  /// a duplicate of its eventfd with `executor`'s reactor. Throws
  /// std::system_error if the descriptor can't be duplicated.
  template <class Executor>
  AsyncSubscriber(const Executor& executor, Subscriber subscriber)
      : subscriber_(std::move(subscriber)), fd_(executor) {
    if (subscriber_.fd() < 0)
      throw std::invalid_argument("daq_pool::AsyncSubscriber: subscriber '" + subscriber_.name() +
                                  "' is not pollable (SubscriberOptions::pollable)");
    const int dup = ::dup(subscriber_.fd());  // the descriptor object closes its own copy
    if (dup < 0) throw std::system_error(errno, std::generic_category(), "daq_pool::AsyncSubscriber: dup");
    fd_.assign(dup);
  }

  /// The next frame, or nothing once the channel is closed and this
  /// subscriber's queue is empty (the end). Completion signature
  /// `void(asio_error_code, std::optional<Received>)`; operation_aborted if
  /// cancel() or the destruction of this object ends the wait. The handler
  /// runs on its associated executor (default: this object's), never inside
  /// this call. Allocates the operation's state with the handler's
  /// associated allocator (asio's recycling allocator by default).
  template <class CompletionToken>
  auto async_receive(CompletionToken&& token) {
    return detail::net::async_compose<CompletionToken, void(asio_error_code, std::optional<Received>)>(
        Op{this}, token, fd_);
  }

  /// Ends a pending async_receive with operation_aborted. Not thread-safe
  /// (the executor's thread).
  void cancel() { fd_.cancel(); }

  /// The subscriber (its stats(), name(), ended()).
  const Subscriber& subscriber() const noexcept { return subscriber_; }

  /// The executor the eventfd is watched with.
  auto get_executor() noexcept { return fd_.get_executor(); }

 private:
  struct Op {
    AsyncSubscriber* self;
    bool started = false;

    template <class Self>
    void operator()(Self& op, asio_error_code ec = {}, std::size_t = 0) {
      if (!started) {
        // Never complete inside the initiating call: continue on the
        // executor, as any asio operation does.
        started = true;
        detail::net::post(self->fd_.get_executor(), std::move(op));
        return;
      }
      if (ec) {
        op.complete(ec, std::nullopt);
        return;
      }
      for (;;) {
        if (std::optional<Received> frame = self->subscriber_.try_receive()) {
          op.complete(asio_error_code{}, std::move(frame));
          return;
        }
        if (self->subscriber_.ended()) {
          op.complete(asio_error_code{}, std::nullopt);
          return;
        }
        if (self->subscriber_.arm()) {
          self->fd_.async_wait(descriptor::wait_read, std::move(op));
          return;
        }
      }
    }
  };

  Subscriber subscriber_;
  descriptor fd_;
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
