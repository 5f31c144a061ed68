// A fixed-size latency histogram (log-linear buckets) for percentiles
// without storing samples or allocating while recording.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace frame_pipeline {

/// Records durations in nanoseconds into 16 buckets per power of two
/// (values are reported to within 1/32 of their magnitude; the maximum is
/// exact). Not thread-safe: one recording thread, read after it is done.
class LatencyHistogram {
 public:
  /// Adds one sample. Never allocates.
  void record(std::uint64_t ns) noexcept {
    ++counts_[index_of(ns)];
    ++count_;
    if (ns > max_) max_ = ns;
  }

  /// Samples recorded.
  std::uint64_t count() const noexcept { return count_; }
  /// The largest sample, exactly.
  std::uint64_t max() const noexcept { return max_; }

  /// The value below which a fraction `q` (0..1) of samples fall: the
  /// middle of the bucket holding that rank, capped at the exact maximum.
  std::uint64_t quantile(double q) const noexcept {
    if (count_ == 0) return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_));
    if (rank >= count_) rank = count_ - 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen > rank) {
        const std::uint64_t v = middle_of(i);
        return v < max_ ? v : max_;
      }
    }
    return max_;
  }

 private:
  static constexpr unsigned sub_bits = 4;  // 16 sub-buckets per octave
  static constexpr std::size_t sub = std::size_t{1} << sub_bits;

  static std::size_t index_of(std::uint64_t v) noexcept {
    if (v < sub) return static_cast<std::size_t>(v);
    const unsigned e = 63u - static_cast<unsigned>(std::countl_zero(v));  // e >= sub_bits
    const std::size_t mantissa = static_cast<std::size_t>(v >> (e - sub_bits)) & (sub - 1);
    return ((e - sub_bits + 1) << sub_bits) + mantissa;
  }
  static std::uint64_t middle_of(std::size_t i) noexcept {
    if (i < sub) return i;
    const unsigned e = static_cast<unsigned>(i >> sub_bits) + sub_bits - 1;
    const std::uint64_t width = std::uint64_t{1} << (e - sub_bits);
    return ((sub + (i & (sub - 1))) << (e - sub_bits)) + width / 2;
  }

  std::array<std::uint64_t, (64 - sub_bits + 1) << sub_bits> counts_{};
  std::uint64_t count_ = 0, max_ = 0;
};

}  // namespace frame_pipeline
