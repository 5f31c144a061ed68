// The preview: a live view's analysis (a 16-bin histogram of the 16-bit
// pixels and their mean) of the freshest frames, at most one in
// --preview-every. A keep_latest subscriber with a queue of 1 by default: it
// never sees a stale backlog and never holds up anybody.
#pragma once

#include "frame_pattern.hpp"
#include "stage.hpp"

#include <daq_pool/broadcast.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace frame_pipeline {

class Preview final : public Stage {
 public:
  /// Analyses a frame when at least `every` frames were published since the
  /// last one it analysed (by frame tag). `numbered`: the frames carry the
  /// simulated sensor's header (its frame number is shown).
  Preview(std::uint64_t every, bool numbered) noexcept : every_(every), numbered_(numbered) {}

  const char* name() const noexcept override { return "preview"; }
  daq_pool::SubscriberOptions subscription() const override {
    daq_pool::SubscriberOptions o;
    o.on_full = daq_pool::OnFull::keep_latest;
    o.capacity = 1;
    return o;
  }

  void consume(daq_pool::Received& frame) override {
    if (analysed_ != 0 && frame.tag() < next_) {
      skipped_.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    next_ = frame.tag() + every_;
    const PreviewStats p = preview_frame(frame.bytes().span());
    frame.reset();
    {
      std::lock_guard lock(mutex_);
      last_ = p;
    }
    ++analysed_;
    frames_.fetch_add(1, std::memory_order_relaxed);
  }

  std::string text(const daq_pool::SubscriberStats&) const override {
    const PreviewStats p = last();
    char buf[512];
    int n = std::snprintf(buf, sizeof buf, "  preview              %llu frames (at most one in %llu, %llu skipped)",
                          static_cast<unsigned long long>(frames_.load()), static_cast<unsigned long long>(every_),
                          static_cast<unsigned long long>(skipped_.load()));
    std::string out(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    if (frames_.load() > 0) {
      if (numbered_) out += ", last #" + std::to_string(p.frame_number);  // a camera frame has no header
      std::snprintf(buf, sizeof buf, " mean %.1f, histogram [", p.mean);
      out += buf;
      std::uint64_t peak = 1;
      for (const std::uint64_t c : p.histogram) peak = c > peak ? c : peak;
      static constexpr char shades[] = " .:-=+*#%@";
      for (const std::uint64_t c : p.histogram) out += shades[(c * 9 + peak / 2) / peak];
      out += "]";
    }
    return out + "\n";
  }

  std::string json(const daq_pool::SubscriberStats&) const override {
    const PreviewStats p = last();
    std::string hist;
    for (std::size_t i = 0; i < p.histogram.size(); ++i) hist += (i ? ", " : "") + std::to_string(p.histogram[i]);
    char buf[1024];
    std::snprintf(buf, sizeof buf,
                  "\"preview\": {\"frames\": %llu, \"skipped\": %llu, \"last_frame\": %llu, \"last_mean\": %.3f, "
                  "\"last_histogram\": [%s]}",
                  static_cast<unsigned long long>(frames_.load()), static_cast<unsigned long long>(skipped_.load()),
                  static_cast<unsigned long long>(p.frame_number), p.mean, hist.c_str());
    return buf;
  }

  /// The latest preview. Thread-safe.
  PreviewStats last() const {
    std::lock_guard lock(mutex_);
    return last_;
  }

 private:
  const std::uint64_t every_;
  const bool numbered_;
  std::uint64_t next_ = 0, analysed_ = 0;  // the preview thread's
  mutable std::mutex mutex_;
  PreviewStats last_;
  std::atomic<std::uint64_t> frames_{0}, skipped_{0};
};

}  // namespace frame_pipeline
