// A consumer of the demo's frames: one subscriber of the pipeline's
// daq_pool::Broadcast, on a thread of its own (pipeline.hpp runs it).
//
// Adding a consumer to the demo: write a class deriving from Stage in a file
// of its own (writer.hpp is the model), and add it in main.cpp's run() with
// one `pipeline.add(...)` line. Its queue (policy, capacity) comes from
// subscription(), overridable with --policy=NAME:POLICY[:CAPACITY]; the
// summary prints its broadcast counters, its text() lines and, with --json,
// its json() members.
#pragma once

#include <daq_pool/broadcast.hpp>

#include <cstdio>
#include <string>

namespace frame_pipeline {

class Stage {
 public:
  Stage() = default;
  Stage(const Stage&) = delete;
  Stage& operator=(const Stage&) = delete;
  virtual ~Stage() = default;

  /// Its name in --policy, the summary and the JSON "consumers" object.
  virtual const char* name() const noexcept = 0;

  /// Its default queue: policy and capacity (name is filled in).
  virtual daq_pool::SubscriberOptions subscription() const = 0;

  /// One frame, on the stage's thread. Should not allocate (the demo counts
  /// hot-path allocations); a library's own allocations are counted apart
  /// inside an alloc_hook::Library scope.
  virtual void consume(daq_pool::Received& frame) = 0;

  /// After the last frame (the broadcast ended), on the stage's thread.
  virtual void finish() {}

  /// Shutdown begins (main thread, before the stream ends): stop waiting on
  /// anything slow outside the process. Thread-safe.
  virtual void stop_soon() noexcept {}

  /// After the stage's thread was joined (main thread): release what it
  /// holds (sockets, files) so every buffer is back.
  virtual void close() {}

  /// What went wrong (printed to stderr, exit code 1), or "" if nothing.
  virtual std::string error() const { return ""; }

  /// The summary's lines for this stage (each "  name ... \n"), or "";
  /// `counts`: what its subscriber counted (delivered, dropped, ...).
  virtual std::string text([[maybe_unused]] const daq_pool::SubscriberStats& counts) const { return ""; }

  /// The summary's JSON members for this stage (`"key": value`, comma
  /// separated, no trailing comma), or "".
  virtual std::string json([[maybe_unused]] const daq_pool::SubscriberStats& counts) const { return ""; }
};

/// `s` as a JSON string literal.
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace frame_pipeline
