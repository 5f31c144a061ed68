// The README's shared-memory example: a pool whose buffers live in a sealed
// memfd, a frame server on a Unix socket, and a subscriber reading the
// frames in place. The subscriber is a thread here to keep the example in
// one file; in real use it is another process (examples/shm_subscriber, or
// examples/python/shm_viewer.py), and the code is the same.
#include <daq_pool/buffer_pool.hpp>
#include <daq_pool/shm.hpp>

#include <unistd.h>  // rmdir

#include <chrono>
#include <cstdio>
#include <cstdlib>  // mkdtemp
#include <cstring>
#include <optional>
#include <string>
#include <thread>

int main() {
  char dir[] = "/tmp/shm-basics-XXXXXX";  // private (0700), as the server requires
  if (::mkdtemp(dir) == nullptr) return 1;
  const std::string path = std::string(dir) + "/frames.sock";

  // Producer: every buffer in one memfd that other processes can map.
  daq_pool::BufferPoolOptions options;
  options.shared_memory = true;
  daq_pool::BufferPool pool(8, 1 << 20, options);
  daq_pool::shm::ServerOptions server_options;
  server_options.max_subscribers = 3;    // 3 subscribers x 2 frames + a producer margin of 2 <= 8 buffers:
  server_options.max_in_flight = 2;      // the server refuses a pool its subscribers could drain
  server_options.wait_when_full = true;  // this example wants every frame
  daq_pool::shm::Server server(pool, path, server_options);

  // Subscriber: the frames arrive as read-only views of the mapped memfd.
  std::thread subscriber([&path] {
    daq_pool::shm::Subscriber sub(path, std::chrono::seconds(5));
    int frames = 0;
    while (std::optional<daq_pool::shm::Frame> f = sub.receive()) {
      const bool in_place = f->bytes.data() == sub.memory().data() + f->offset;  // no copy
      std::printf("frame %llu: %zu bytes, first byte %d, in place: %s\n", static_cast<unsigned long long>(f->sequence),
                  f->bytes.size(), static_cast<int>(f->bytes[0]), in_place ? "yes" : "no");
      ++frames;
    }  // each frame's last view dropped: its release goes in the ring, the buffer can return to the pool
    std::printf("end of stream after %d frames\n", frames);
  });

  // Wait for the subscriber to connect (bounded: 10 s).
  for (int i = 0; i < 10000 && server.subscribers() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 1; i <= 5; ++i) {
    daq_pool::PooledBuffer buffer = pool.acquire();
    std::memset(buffer.data(), i, buffer.capacity());  // the camera's frame, written into shared memory
    buffer.set_size(buffer.capacity());
    daq_pool::Bytes frame = std::move(buffer).freeze();
    server.publish(frame);  // a 48-byte descriptor in each subscriber's ring; the bytes stay where they are
  }
  server.stop();  // every subscriber sees the end of the stream
  subscriber.join();
  ::rmdir(dir);
  return pool.available() == pool.size() ? 0 : 1;
}
