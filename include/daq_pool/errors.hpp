// Errors reported by daq_pool: the `daq_pool` std::error_category with its
// codes (what asynchronous acquisitions complete with), and the exception the
// blocking acquire() throws, which carries the same code.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <string>
#include <system_error>
#include <type_traits>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

/// daq_pool's error codes (category error_category(), named "daq_pool").
/// `errc::pool_closed` is what an asynchronous acquisition completes with
/// once its pool is closed (by close() or by the destruction of its last
/// handle), and the code() of the pool_closed exception.
enum class errc {
  pool_closed = 1,  ///< the pool is closed: no more slots are lent
};

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "daq_pool"; }
  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::pool_closed:
        return "the pool is closed";
    }
    return "unknown daq_pool error";
  }
};
}  // namespace detail

/// The `daq_pool` error category. Thread-safe; never allocates.
inline const std::error_category& error_category() noexcept {
  static const detail::error_category_impl category;
  return category;
}

/// A std::error_code of the `daq_pool` category (found by ADL, so that
/// `ec == daq_pool::errc::pool_closed` works). Never allocates.
inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

/// Thrown by the blocking `acquire()` of a pool that has been closed (by
/// `close()` or by the destruction of its last handle). A std::system_error
/// whose code() is errc::pool_closed, the code asynchronous acquisitions
/// complete with; what() is "daq_pool: the pool is closed". Loans already
/// out stay valid. Other errors use the standard exceptions:
/// `std::invalid_argument` for bad construction arguments,
/// `std::length_error` / `std::out_of_range` for out-of-bounds sizes,
/// `std::bad_alloc` for failed allocations.
class pool_closed : public std::system_error {
 public:
  pool_closed() : std::system_error(make_error_code(errc::pool_closed), "daq_pool") {}
};

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE

template <>
struct std::is_error_code_enum<daq_pool::errc> : std::true_type {};
