// The fan-out of the demo: one daq_pool::Broadcast, each consumer (Stage) a
// subscriber with its own queue and policy, each on its own thread. The
// acquisition thread publishes; close() ends the stream, every stage drains
// its queue, finishes and is joined.
#pragma once

#include "alloc_hook.hpp"
#include "cli.hpp"
#include "stage.hpp"

#include <daq_pool/broadcast.hpp>
#include <daq_pool/bytes.hpp>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace frame_pipeline {

/// What each stage's subscriber counted, for the summary.
struct ConsumerCounts {
  std::string name;
  daq_pool::SubscriberStats stats;
};

class Pipeline {
 public:
  explicit Pipeline(std::vector<PolicyOverride> overrides) : overrides_(std::move(overrides)) {}
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  ~Pipeline() { close(); }

  /// Subscribes `stage` with its queue (or the --policy override for its
  /// name). Before start(). Returns the stage, for the caller's own use.
  template <class S>
  S& add(std::unique_ptr<S> stage) {
    daq_pool::SubscriberOptions o = stage->subscription();
    o.name = stage->name();
    for (const PolicyOverride& p : overrides_) {
      if (p.consumer != o.name) continue;
      o.on_full = p.on_full;
      if (p.capacity != 0) o.capacity = p.capacity;
    }
    S& s = *stage;
    entries_.push_back(Entry{std::move(stage), channel_.subscribe(o), {}});
    return s;
  }

  /// Names of the consumers added, for checking --policy.
  bool has(const std::string& name) const {
    for (const Entry& e : entries_)
      if (name == e.stage->name()) return true;
    return false;
  }

  /// Starts every stage's thread: receive, consume, until the end.
  void start() {
    counts_.reserve(entries_.size());  // close() allocates nothing: the demo counts allocations until after it
    for (Entry& e : entries_) {
      e.thread = std::thread([&e] {
        alloc_hook::mark_pipeline_thread();
        while (std::optional<daq_pool::Received> frame = e.subscriber.receive()) e.stage->consume(*frame);
        e.stage->finish();
      });
    }
  }

  /// The acquisition thread: one frame to every stage (`tag`: its number).
  /// Waits while a block stage's queue is full. Never allocates.
  void publish(const daq_pool::Bytes& frame, std::uint64_t tag) { channel_.publish(frame, tag); }

  /// Shutdown begins: tells every stage (stop_soon()). Main thread.
  void stop_soon() noexcept {
    for (Entry& e : entries_) e.stage->stop_soon();
  }

  /// Ends the stream after the last publish: every stage receives what is
  /// queued, finishes and is joined; then its close() runs and its counts
  /// are kept. Idempotent. Main thread.
  void close() {
    if (closed_) return;
    closed_ = true;
    channel_.close();
    for (Entry& e : entries_) {
      if (e.thread.joinable()) e.thread.join();
      counts_.push_back(ConsumerCounts{e.stage->name(), e.subscriber.stats()});
      e.stage->close();
    }
  }

  /// Frames queued for or held by the stages right now (exact when quiet).
  std::uint64_t in_hands() const noexcept { return channel_.in_hands(); }

  /// Every stage's counts, after close().
  const std::vector<ConsumerCounts>& counts() const noexcept { return counts_; }

  /// Calls `f(stage)` for every stage, in the order they were added.
  template <class F>
  void for_each(F&& f) const {
    for (const Entry& e : entries_) f(static_cast<const Stage&>(*e.stage));
  }

 private:
  struct Entry {
    std::unique_ptr<Stage> stage;
    daq_pool::Subscriber subscriber;
    std::thread thread;
  };

  std::vector<PolicyOverride> overrides_;
  daq_pool::Broadcast channel_{daq_pool::Broadcast::max_subscribers_limit};
  std::vector<Entry> entries_;  // threads refer to their entry: no add() after start()
  std::vector<ConsumerCounts> counts_;
  bool closed_ = false;
};

/// The summary's per-consumer lines.
inline std::string consumers_text(const std::vector<ConsumerCounts>& counts) {
  std::string out;
  char line[512];
  for (const ConsumerCounts& c : counts) {
    const daq_pool::SubscriberStats& s = c.stats;
    std::snprintf(line, sizeof line,
                  "  consumer %-11s %s, queue %zu (high water %zu): %llu delivered, %llu dropped%s%s\n",
                  c.name.c_str(), daq_pool::to_string(s.on_full), s.capacity, s.high_water,
                  static_cast<unsigned long long>(s.delivered), static_cast<unsigned long long>(s.dropped),
                  s.timed_out != 0 ? " (timed out)" : "", s.discarded != 0 ? ", some discarded" : "");
    out += line;
  }
  return out;
}

/// The summary's "consumers" JSON object.
inline std::string consumers_json(const std::vector<ConsumerCounts>& counts) {
  std::string out = "{";
  char item[512];
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const daq_pool::SubscriberStats& s = counts[i].stats;
    std::snprintf(item, sizeof item,
                  "%s\"%s\": {\"policy\": \"%s\", \"capacity\": %zu, \"delivered\": %llu, \"dropped\": %llu, "
                  "\"timed_out\": %llu, \"discarded\": %llu, \"high_water\": %zu}",
                  i ? ", " : "", counts[i].name.c_str(), daq_pool::to_string(s.on_full), s.capacity,
                  static_cast<unsigned long long>(s.delivered), static_cast<unsigned long long>(s.dropped),
                  static_cast<unsigned long long>(s.timed_out), static_cast<unsigned long long>(s.discarded),
                  s.high_water);
    out += item;
  }
  return out + "}";
}

}  // namespace frame_pipeline
