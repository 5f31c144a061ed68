// BufferPoolOptions::shared_memory (issue 14): every buffer in one memfd,
// aligned and prefaulted as usual, sealed against resizing and against new
// writable mappings (made after the pool's own), readable in place through a
// second mapping of the fd; the debug canaries still guard every buffer; an
// allocator and shared_memory together are refused.
//
// Compiled with DAQ_POOL_DEBUG=1 in every configuration (unless the build
// defines it), like test_debug_checks.cpp, so that the canary case runs
// everywhere; the release layout is exercised by tests/shm/.
#if !defined(DAQ_POOL_DEBUG)
#define DAQ_POOL_DEBUG 1
#endif

#include <daq_pool/daq_pool.hpp>

#include "catch.hpp"
#include "death_test.hpp"

#if defined(__linux__)

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

using daq_pool::BufferPool;
using daq_pool::BufferPoolOptions;
using daq_pool::Bytes;
using daq_pool::PooledBuffer;
using daq_pool::SharedMemoryRegion;

namespace {

BufferPoolOptions shared(std::size_t alignment = 4096) {
  BufferPoolOptions o;
  o.shared_memory = true;
  o.alignment = alignment;
  return o;
}

std::vector<PooledBuffer> take_all(BufferPool& pool) {
  std::vector<PooledBuffer> all;
  while (auto b = pool.try_acquire()) all.push_back(std::move(*b));
  return all;
}

/// A second mapping of the pool's memfd, as another process would make it.
class Mapping {
 public:
  Mapping(int fd, std::size_t size, int prot, int flags) : size_(size) {
    void* p = ::mmap(nullptr, size, prot, flags, fd, 0);
    error_ = p == MAP_FAILED ? errno : 0;
    base_ = p == MAP_FAILED ? nullptr : static_cast<std::byte*>(p);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (base_ != nullptr) ::munmap(base_, size_);
  }
  std::byte* base() const noexcept { return base_; }
  int error() const noexcept { return error_; }

 private:
  std::byte* base_ = nullptr;
  std::size_t size_;
  int error_ = 0;
};

int seals_of(int fd) { return ::fcntl(fd, F_GET_SEALS); }

#if !defined(F_SEAL_FUTURE_WRITE)
constexpr int F_SEAL_FUTURE_WRITE = 0x0010;
#endif

long minor_faults() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_minflt;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

using test_support::ChildResult;
using test_support::in_child;

}  // namespace

TEST_CASE("shared_memory puts every buffer in one memfd, one stride apart") {
  BufferPool pool(4, 100'000, shared());
  const std::optional<SharedMemoryRegion> region = pool.shared_memory();
  REQUIRE(region);
  CHECK(region->fd >= 0);
  CHECK(region->count == 4);
  CHECK(region->capacity == 100'000);
  CHECK(region->stride >= region->capacity);
  CHECK(region->size % 4096 == 0);
  CHECK(region->size >= region->count * region->stride);

  struct stat st {};
  REQUIRE(::fstat(region->fd, &st) == 0);
  CHECK(static_cast<std::size_t>(st.st_size) == region->size);
  char link[256] = {};
  const std::string fd_path = "/proc/self/fd/" + std::to_string(region->fd);
  REQUIRE(::readlink(fd_path.c_str(), link, sizeof link - 1) > 0);
  CHECK(contains(link, "memfd:daq_pool"));
  CHECK((::fcntl(region->fd, F_GETFD) & FD_CLOEXEC) != 0);  // not leaked into exec'd children

  std::vector<PooledBuffer> all = take_all(pool);
  REQUIRE(all.size() == 4);
  std::vector<std::size_t> offsets;
  for (PooledBuffer& b : all) {
    const auto off = static_cast<std::size_t>(b.data() - region->base);
    CHECK(off % region->stride == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % 4096 == 0);
    offsets.push_back(off);
  }
  std::sort(offsets.begin(), offsets.end());
  for (std::size_t i = 0; i < offsets.size(); ++i) CHECK(offsets[i] == i * region->stride);

  // Everything else is as without shared_memory.
  BufferPool plain(4, 100'000);
  CHECK_FALSE(plain.shared_memory());
  CHECK(plain.stats().bytes_reserved == pool.stats().bytes_reserved);
}

TEST_CASE("the memfd is sealed: it can't be resized and the seals can't be changed") {
  BufferPool pool(2, 10'000, shared());
  const SharedMemoryRegion region = *pool.shared_memory();
  const int seals = seals_of(region.fd);
  CHECK((seals & F_SEAL_SHRINK) != 0);
  CHECK((seals & F_SEAL_GROW) != 0);
  CHECK((seals & F_SEAL_SEAL) != 0);
  CHECK(region.write_sealed == ((seals & F_SEAL_FUTURE_WRITE) != 0));

  errno = 0;
  CHECK(::ftruncate(region.fd, static_cast<off_t>(region.size / 2)) != 0);
  CHECK(errno == EPERM);
  errno = 0;
  CHECK(::ftruncate(region.fd, static_cast<off_t>(region.size * 2)) != 0);
  CHECK(errno == EPERM);
  errno = 0;
  CHECK(::fcntl(region.fd, F_ADD_SEALS, F_SEAL_WRITE) != 0);
  CHECK(errno == EPERM);
  struct stat st {};
  REQUIRE(::fstat(region.fd, &st) == 0);
  CHECK(static_cast<std::size_t>(st.st_size) == region.size);
}

TEST_CASE("only the pool's own mapping can write; another mapping reads the frames in place") {
  BufferPool pool(3, 64 * 1024, shared());
  const SharedMemoryRegion region = *pool.shared_memory();
  // Linux >= 5.1 has F_SEAL_FUTURE_WRITE; the kernels this project runs on do.
  REQUIRE(region.write_sealed);

  Mapping reader(region.fd, region.size, PROT_READ, MAP_SHARED);
  REQUIRE(reader.base() != nullptr);

  PooledBuffer b = pool.acquire();
  for (std::size_t i = 0; i < b.capacity(); ++i) b.data()[i] = static_cast<std::byte>(i * 7);
  b.set_size(b.capacity());
  Bytes view = std::move(b).freeze();
  const std::optional<std::size_t> off = pool.shared_offset(view);
  REQUIRE(off);
  CHECK(std::memcmp(reader.base() + *off, view.data(), view.size()) == 0);

  // A new writable shared mapping, a write(), an upgrade of the read-only
  // mapping: all refused.
  Mapping writer(region.fd, region.size, PROT_READ | PROT_WRITE, MAP_SHARED);
  CHECK(writer.base() == nullptr);
  CHECK(writer.error() == EPERM);
  const char x = 'x';
  errno = 0;
  CHECK(::pwrite(region.fd, &x, 1, static_cast<off_t>(*off)) < 0);
  CHECK(errno == EPERM);
  CHECK(::mprotect(reader.base(), region.size, PROT_READ | PROT_WRITE) != 0);

  // A private writable mapping is copy-on-write: it changes nothing shared.
  Mapping priv(region.fd, region.size, PROT_READ | PROT_WRITE, MAP_PRIVATE);
  REQUIRE(priv.base() != nullptr);
  priv.base()[*off] = std::byte{0x55};
  CHECK(view[0] == std::byte{0});
  CHECK(reader.base()[*off] == std::byte{0});

  // The pool itself still writes (its mapping predates the seal).
  PooledBuffer again = pool.acquire();
  again.data()[0] = std::byte{0x42};
  CHECK(reader.base()[static_cast<std::size_t>(again.data() - region.base)] == std::byte{0x42});
}

TEST_CASE("shared buffers are aligned as asked, 1 B to 2 MiB") {
  for (const std::size_t alignment :
       {std::size_t{1}, std::size_t{64}, std::size_t{4096}, std::size_t{1} << 16, std::size_t{2} << 20}) {
    INFO("alignment " << alignment);
    BufferPool pool(3, 5000, shared(alignment));
    const SharedMemoryRegion region = *pool.shared_memory();
    std::vector<PooledBuffer> all = take_all(pool);
    REQUIRE(all.size() == 3);
    for (PooledBuffer& b : all) {
      CHECK(reinterpret_cast<std::uintptr_t>(b.data()) % alignment == 0);
      CHECK(static_cast<std::size_t>(b.data() - region.base) % region.stride == 0);
      std::memset(b.data(), 0xAB, b.capacity());  // every byte writable, no overlap with the canaries
    }
  }
  BufferPoolOptions huge = shared();
  huge.huge_pages = true;
  BufferPool pool(2, std::size_t{3} << 20, huge);  // a hint: works either way
  PooledBuffer b = pool.acquire();
  std::memset(b.data(), 1, b.capacity());
  CHECK(pool.shared_memory()->size >= 2 * (std::size_t{3} << 20));
}

TEST_CASE("shared buffers are prefaulted: the first write pass takes ~no page faults") {
#if defined(__SANITIZE_THREAD__)
  WARN("skipped under TSan: its shadow memory faults on every first access");
  return;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
  WARN("skipped under TSan: its shadow memory faults on every first access");
  return;
#endif
#endif
  constexpr std::size_t buffers = 4;
  constexpr std::size_t capacity = std::size_t{4} << 20;
  const long pages = static_cast<long>(buffers * capacity / 4096);
  BufferPool warm(buffers, capacity, shared());
  std::vector<PooledBuffer> all = take_all(warm);
  long before = minor_faults();
  for (PooledBuffer& b : all) std::memset(b.data(), 0x3C, b.capacity());
  const long warm_faults = minor_faults() - before;
  INFO("pages " << pages << ", faults with prefault " << warm_faults);
  CHECK(warm_faults < pages / 16);

  BufferPoolOptions off = shared();
  off.prefault = false;
  BufferPool cold(buffers, capacity, off);
  std::vector<PooledBuffer> cold_all = take_all(cold);
  before = minor_faults();
  for (PooledBuffer& b : cold_all) std::memset(b.data(), 0x3C, b.capacity());
  const long cold_faults = minor_faults() - before;
  INFO("faults without prefault " << cold_faults);
  CHECK(cold_faults > warm_faults);
}

TEST_CASE("the debug canaries guard shared buffers too") {
  const ChildResult r = in_child([] {
    BufferPoolOptions o = shared(64);
    BufferPool pool(3, 100, o);
    PooledBuffer keep = pool.acquire();
    PooledBuffer b = pool.acquire();
    b.data()[100 + 5] = std::byte{0};  // a raw write past capacity()
    b.set_size(100);
    Bytes v = std::move(b).freeze();
    v.reset();  // the return: must abort
  });
  INFO(r.err);
  CHECK(r.aborted);
  CHECK(contains(r.err, "overrun"));

  BufferPool pool(2, 100, shared(64));
  for (int i = 0; i < 4; ++i) {
    PooledBuffer b = pool.acquire();
    std::memset(b.data(), 0xFF, b.capacity());  // exactly up to the capacity: fine
    b.set_size(b.capacity());
    Bytes v = std::move(b).freeze();
  }
  CHECK(pool.available() == 2);
}

TEST_CASE("shared_memory with a custom allocator is refused, naming both") {
  BufferPoolOptions o = shared();
  o.allocate = [](std::size_t bytes, std::size_t align) { return ::operator new (bytes, std::align_val_t{align}); };
  o.deallocate = [](void* p, std::size_t, std::size_t align) { ::operator delete (p, std::align_val_t{align}); };
  try {
    BufferPool pool(2, 100, o);
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    INFO(e.what());
    CHECK(contains(e.what(), "options.shared_memory"));
    CHECK(contains(e.what(), "options.allocate"));
  }
}

TEST_CASE("shared_offset names a view's place in the file, and nothing for other views") {
  BufferPool pool(2, 1000, shared());
  const SharedMemoryRegion region = *pool.shared_memory();
  PooledBuffer b = pool.acquire();
  const auto at = static_cast<std::size_t>(b.data() - region.base);
  b.set_size(1000);
  const Bytes whole = std::move(b).freeze();
  CHECK(pool.shared_offset(whole) == at);
  CHECK(pool.shared_offset(whole.slice(10, 20)) == at + 10);
  CHECK_FALSE(pool.shared_offset(Bytes()));
  const std::byte bytes[4] = {};
  CHECK_FALSE(pool.shared_offset(Bytes::copy_from(bytes)));
  BufferPool other(1, 1000, shared());
  PooledBuffer o = other.acquire();
  o.set_size(10);
  CHECK_FALSE(pool.shared_offset(std::move(o).freeze()));
  BufferPool plain(1, 1000);
  PooledBuffer p = plain.acquire();
  p.set_size(10);
  CHECK_FALSE(plain.shared_offset(std::move(p).freeze()));
}

TEST_CASE("the memfd stays open while a view lives, and is closed after the last") {
  daq_pool::debug::print_outstanding_at_close.store(false);  // the view outlives the pool on purpose
  std::optional<BufferPool> pool;
  pool.emplace(2, 4096, shared());
  const int fd = pool->shared_memory()->fd;
  PooledBuffer b = pool->acquire();
  b.set_size(16);
  Bytes view = std::move(b).freeze();
  pool.reset();  // the last handle
  CHECK(::fcntl(fd, F_GETFD) >= 0);
  view.reset();  // the last view: the memory, and the fd, go
  errno = 0;
  CHECK(::fcntl(fd, F_GETFD) < 0);
  CHECK(errno == EBADF);
  daq_pool::debug::print_outstanding_at_close.store(true);
}

TEST_CASE("shared buffers cycle like any others: freeze, try_into_mut, zero_on_release") {
  BufferPoolOptions o = shared();
  o.zero_on_release = true;
  BufferPool pool(2, 256, o);
  for (int round = 0; round < 50; ++round) {
    PooledBuffer b = pool.acquire();
    CHECK(b.size() == 0);
    CHECK(b.data()[0] == std::byte{0});
    std::memset(b.data(), round + 1, 256);
    b.set_size(256);
    Bytes v = std::move(b).freeze();
    Bytes copy = v;
    CHECK_FALSE(std::move(v).try_into_mut());
    copy.reset();
    std::optional<PooledBuffer> back = std::move(v).try_into_mut();
    REQUIRE(back);
    CHECK(back->data()[255] == static_cast<std::byte>(round + 1));
  }
  CHECK(pool.available() == 2);
  const daq_pool::BufferPoolStats st = pool.stats();
  CHECK(st.acquires == st.releases);
}

#else

TEST_CASE("shared_memory is Linux only") {
  daq_pool::BufferPoolOptions o;
  o.shared_memory = true;
  CHECK_THROWS_AS(daq_pool::BufferPool(1, 100, o), std::invalid_argument);
}

#endif
