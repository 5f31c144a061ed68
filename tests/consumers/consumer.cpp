// A downstream program, built by every consumer test (add_subdirectory,
// FetchContent, find_package, pkg-config, the vcpkg-style install): it must
// compile, link and run however daq_pool reached it.
#include <daq_pool/daq_pool.hpp>

#if __has_include(<daq_pool/buffer_pool.hpp>)
#include <daq_pool/buffer_pool.hpp>
#define DAQ_POOL_CONSUMER_HAS_BUFFER_POOL 1
#elif defined(DAQ_POOL_CONSUMER_EXPECT_BUFFER_POOL)
#error "this checkout has include/daq_pool/buffer_pool.hpp but the consumer cannot include it"
#endif

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <utility>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "consumer: FAILED: %s\n", what);
    ++failures;
  }
}

void use_pool() {
  daq_pool::Pool<std::string> pool(2, [] { return std::string(64, 'x'); });
  {
    daq_pool::Loaned<std::string> a = pool.acquire();
    a->assign("frame 1");
    check(pool.available() == 1, "one of two strings lent");
    std::thread other([&pool] {
      auto b = pool.try_acquire();
      if (b) (*b)->assign("frame 2");
    });
    other.join();
  }
  check(pool.available() == 2, "every string back");
  const daq_pool::PoolStats st = pool.stats();
  check(st.acquires == st.releases, "acquires == releases");
}

#ifdef DAQ_POOL_CONSUMER_HAS_BUFFER_POOL
void use_buffer_pool() {
  daq_pool::BufferPool buffers(2, 4096);
  daq_pool::PooledBuffer buffer = buffers.acquire();
  const char frame[] = "frame from the camera";
  buffer.copy_from_ptr(frame, sizeof frame);
  daq_pool::Bytes view = std::move(buffer).freeze();
  daq_pool::Bytes copy = view;  // shares the buffer
  check(copy.size() == sizeof frame, "the view holds the frame's bytes");
  check(std::memcmp(copy.data(), frame, sizeof frame) == 0, "the view's bytes are the frame's");
  check(view.use_count() == 2 && view.is_pooled(), "two views of one pooled buffer");
  check(buffers.available() == 1, "the frozen buffer is out");
  view = daq_pool::Bytes();
  copy = daq_pool::Bytes();
  check(buffers.available() == 2, "the last view returned the buffer");
}
#endif

}  // namespace

int main() {
  use_pool();
#ifdef DAQ_POOL_CONSUMER_HAS_BUFFER_POOL
  use_buffer_pool();
  const char* with = " with BufferPool";
#else
  const char* with = "";
#endif
  std::printf("daq_pool %s consumer%s: %s\n", DAQ_POOL_VERSION_STRING, with, failures == 0 ? "ok" : "FAILED");
  return failures == 0 ? 0 : 1;
}
