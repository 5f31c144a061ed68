// Turning user timeouts into absolute deadlines and bounded sleeps, without
// overflow for `duration::max()` or deadlines in the past.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail {

/// steady_clock::now() + timeout, saturated: a timeout too long to represent
/// becomes time_point::max() (wait until the pool is closed); zero or negative
/// becomes now (a single try). Never allocates.
template <class Rep, class Period>
std::chrono::steady_clock::time_point deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
  using clock = std::chrono::steady_clock;
  const auto now = clock::now();
  if (!(timeout > timeout.zero())) return now;
  using wide = std::chrono::duration<long double>;
  if (wide(timeout) >= wide(clock::time_point::max() - now)) return clock::time_point::max();
  return now + std::chrono::ceil<clock::duration>(timeout);
}

/// The longest single sleep: a deadline on a clock that may jump
/// (system_clock) is re-read at least this often.
inline constexpr std::chrono::nanoseconds max_sleep_slice = std::chrono::seconds(1);

/// How long to sleep before `deadline` must be re-checked: 0 if it has passed,
/// otherwise the time left capped at max_sleep_slice. The deadline itself is
/// never moved, so retries can't extend it.
template <class Clock, class Duration>
std::chrono::nanoseconds sleep_before(const std::chrono::time_point<Clock, Duration>& deadline) noexcept {
  const auto now = Clock::now();
  if (!(now < deadline)) return std::chrono::nanoseconds::zero();
  using wide = std::chrono::duration<long double>;
  // Subtract in floating point: deadline - now may overflow Duration.
  const wide left = wide(deadline.time_since_epoch()) - wide(now.time_since_epoch());
  if (left >= wide(max_sleep_slice)) return max_sleep_slice;
  return std::max(std::chrono::nanoseconds(1), std::chrono::ceil<std::chrono::nanoseconds>(left));
}

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE::detail
