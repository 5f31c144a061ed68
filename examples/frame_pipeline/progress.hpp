// The live progress line of the demo, and human-readable sizes.
#pragma once

#include <sys/ioctl.h>
#include <unistd.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace frame_pipeline {

using Clock = std::chrono::steady_clock;

/// "8 MiB", "256 KiB" or "1000 B".
inline std::string human_bytes(std::uint64_t n) {
  char buf[64];
  if (n >= (1u << 30) && n % (1u << 30) == 0) {
    std::snprintf(buf, sizeof buf, "%llu GiB", static_cast<unsigned long long>(n >> 30));
  } else if (n >= (1u << 20) && n % (1u << 20) == 0) {
    std::snprintf(buf, sizeof buf, "%llu MiB", static_cast<unsigned long long>(n >> 20));
  } else if (n >= (1u << 10) && n % (1u << 10) == 0) {
    std::snprintf(buf, sizeof buf, "%llu KiB", static_cast<unsigned long long>(n >> 10));
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  }
  return buf;
}

/// The live progress line (in place on a terminal, periodic lines otherwise).
class Progress {
 public:
  Progress(std::FILE* out, bool enabled) noexcept
      : out_(out), enabled_(enabled), tty_(enabled && ::isatty(::fileno(out)) != 0) {
    winsize ws{};
    if (tty_ && ::ioctl(::fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) width_ = ws.ws_col;
  }

  /// How often print() should be called.
  Clock::duration interval() const noexcept {
    return tty_ ? Clock::duration(std::chrono::milliseconds(250)) : Clock::duration(std::chrono::seconds(1));
  }

  /// Prints one progress report. Never allocates (a fixed buffer; stdio's
  /// own buffer was set up by the run header).
  void print(double elapsed_s, std::uint64_t delivered, std::size_t in_use, std::size_t pool_size, std::uint64_t waits,
             std::uint64_t fallbacks, std::uint64_t drops, std::uint64_t overruns) {
    if (!enabled_) return;
    const double dt = elapsed_s - last_time_;
    const double fps = dt > 0 ? static_cast<double>(delivered - last_delivered_) / dt : 0.0;
    last_time_ = elapsed_s;
    last_delivered_ = delivered;
    char line[256];
    int n = std::snprintf(line, sizeof line,
                          "%6.1f s  %llu frames  %.1f fps  pool %zu/%zu in use  waits %llu  fallbacks %llu  "
                          "drops %llu  SDK overruns %llu",
                          elapsed_s, static_cast<unsigned long long>(delivered), fps, in_use, pool_size,
                          static_cast<unsigned long long>(waits), static_cast<unsigned long long>(fallbacks),
                          static_cast<unsigned long long>(drops), static_cast<unsigned long long>(overruns));
    n = n < 0 ? 0 : n >= static_cast<int>(sizeof line) ? static_cast<int>(sizeof line) - 1 : n;
    if (tty_) {
      // One terminal row, rewritten in place: a wrapped line could not be.
      if (n > width_ - 1) n = width_ - 1;
      std::fprintf(out_, "\r%.*s\x1b[K", n, line);
    } else {
      std::fprintf(out_, "%.*s\n", n, line);
    }
    std::fflush(out_);
    printed_ = true;
  }

  /// Ends the in-place line before other output.
  void finish() {
    if (enabled_ && tty_ && printed_) std::fputc('\n', out_);
    std::fflush(out_);
  }

 private:
  std::FILE* out_;
  bool enabled_, tty_;
  bool printed_ = false;
  int width_ = 80;
  double last_time_ = 0;
  std::uint64_t last_delivered_ = 0;
};

}  // namespace frame_pipeline
