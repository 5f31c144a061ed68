// Debug checks (DAQ_POOL_DEBUG): where loans were acquired, and the types
// Pool::outstanding() / BufferPool::outstanding() report them with.
//
// DAQ_POOL_DEBUG is 1 by default when NDEBUG is not defined (Debug builds)
// and 0 otherwise; define it to 0 or 1 to choose (daq_pool/detail/abi.hpp).
// The public signatures are the same in both modes; the mode selects the
// inline ABI namespace (daq_pool::v0 or daq_pool::v0_debug), so translation
// units built in different modes fail to link together instead of sharing
// one Pool<T> with two layouts. When on:
//  - every loan records where it was acquired (a std::source_location);
//    Pool::outstanding() and BufferPool::outstanding() list the loans still
//    out with those locations, and closing a pool with loans out prints them
//    to stderr, so a leaked loan points at its line of code;
//  - returning a slot that is not on loan (a double return) or to a pool it
//    does not belong to aborts with a message naming the slot;
//  - BufferPool fills the valid bytes of every returned buffer with
//    `poison_byte` (unless zero_on_release zeroes them), so stale reads show;
//    and guards every buffer it maps itself with `canary_bytes` canary bytes
//    after its capacity, checked when the buffer returns: an overrun aborts
//    with a message naming the buffer.
// When off, none of this exists: no extra fields, no extra work, and the
// acquire functions' `where` parameter is an empty object.
#pragma once

#include "daq_pool/detail/abi.hpp"

#include <cstddef>
#include <cstdint>

#if DAQ_POOL_DEBUG
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

#include "daq_pool/detail/atomic.hpp"
#endif

namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE {

#if DAQ_POOL_DEBUG && defined(__cpp_lib_source_location)
/// Where a loan was acquired: the defaulted last parameter of every acquire
/// function (callers never write it). Debug builds: std::source_location.
using source_location = std::source_location;
#elif DAQ_POOL_DEBUG
/// Where a loan was acquired: std::source_location's stand-in where the
/// standard library lacks it (the same builtins; e.g. clang 14 with
/// libstdc++ 12).
class source_location {
 public:
  static constexpr source_location current(const char* file = __builtin_FILE(),
                                           const char* function = __builtin_FUNCTION(),
                                           std::uint_least32_t line = __builtin_LINE()) noexcept {
    source_location l;
    l.file_ = file;
    l.function_ = function;
    l.line_ = line;
    return l;
  }
  constexpr source_location() noexcept = default;
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr std::uint_least32_t column() const noexcept { return 0; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
};
#else
/// Where a loan was acquired, in release builds: nothing. An empty object,
/// so the acquire functions keep one signature in every mode at no cost
/// (nothing is stored, nothing is passed in registers once inlined).
class source_location {
 public:
  /// An empty location (the default argument of the acquire functions).
  static constexpr source_location current() noexcept { return {}; }
  /// "" in release builds.
  constexpr const char* file_name() const noexcept { return ""; }
  /// "" in release builds.
  constexpr const char* function_name() const noexcept { return ""; }
  /// 0 in release builds.
  constexpr std::uint_least32_t line() const noexcept { return 0; }
  /// 0 in release builds.
  constexpr std::uint_least32_t column() const noexcept { return 0; }
};
#endif

#if DAQ_POOL_DEBUG

namespace debug {
/// Whether closing a pool with loans out prints them to stderr (debug builds;
/// on by default). Turn it off where that is expected, e.g. in a fuzzer or a
/// test that closes pools with loans out on purpose. Thread-safe.
inline detail::atomic<bool> print_outstanding_at_close{true};
}  // namespace debug

/// One loan still out, as listed by Pool::outstanding() and
/// BufferPool::outstanding() (debug builds only).
struct OutstandingLoan {
  std::size_t slot = 0;           ///< the slot's index (Loaned::slot_index())
  source_location acquired_at{};  ///< where it was acquired (empty file name: not recorded)
};

#endif  // DAQ_POOL_DEBUG

namespace debug {
/// What BufferPool writes over the valid bytes of a returned buffer in debug
/// builds (unless zero_on_release): stale reads of a returned frame show up
/// as runs of this byte.
inline constexpr unsigned char poison_byte = 0xDB;
/// What BufferPool writes after each buffer it maps itself, in debug builds,
/// and checks when the buffer returns.
inline constexpr unsigned char canary_byte = 0xCA;
/// Canary bytes after each buffer (0 when DAQ_POOL_DEBUG is off).
inline constexpr std::size_t canary_bytes = DAQ_POOL_DEBUG ? 16 : 0;
}  // namespace debug

}  // namespace daq_pool::inline DAQ_POOL_ABI_NAMESPACE
