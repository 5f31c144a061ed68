"""A minimal shm protocol-2 server in Python (docs/shm.md), for unit tests of
the v2 subscriber's ring and wake logic independent of the C++ server (the
real one is tested in test_shm.py). One subscriber; frames are written by
the test into the pool memory."""
import fcntl
import mmap
import os
import socket
import struct
import threading

import numpy as np

F_ADD_SEALS, F_SEAL_SHRINK, F_SEAL_GROW = 1033, 2, 4
HELLO = struct.Struct("<IHHQQQIIQQIIQ8sII4Q")  # ..., lease_ns, dtype, ndim, reserved, shape[4]


def ring_slots_for(m):
    n = 1
    while n < m:
        n <<= 1
    return n


class FakeServerV2:
    def __init__(self, path, *, buffers=8, capacity=4096, max_in_flight=4, version=2, hello_patch=None):
        self.path, self.capacity, self.mif, self.version = path, capacity, max_in_flight, version
        self.n = ring_slots_for(max_in_flight)
        self.rel_at = (512 + 48 * self.n + 63) // 64 * 64
        self.ctrl_bytes = self.rel_at + 16 * self.n
        self.region = buffers * capacity
        self.pool_fd = os.memfd_create("pool", os.MFD_ALLOW_SEALING)
        os.ftruncate(self.pool_fd, self.region)
        fcntl.fcntl(self.pool_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW)
        self.pool = mmap.mmap(self.pool_fd, self.region)
        self.ctrl_fd = os.memfd_create("ctrl", os.MFD_ALLOW_SEALING)
        os.ftruncate(self.ctrl_fd, self.ctrl_bytes)
        self.ctrl = mmap.mmap(self.ctrl_fd, self.ctrl_bytes)
        self.c64 = np.frombuffer(self.ctrl, "<u8")
        self.c32 = np.frombuffer(self.ctrl, "<u4")
        struct.pack_into("<IHHIIQQQ", self.ctrl, 0, 0x43535144, 2, 0, max_in_flight, self.n, 512, self.rel_at,
                         self.ctrl_bytes)
        self.sub_wake = os.eventfd(0, os.EFD_NONBLOCK)
        self.server_wake = os.eventfd(0, os.EFD_NONBLOCK)
        self.hello_patch = hello_patch
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(path)
        self.listener.listen(4)
        self.conn = None
        self.head = 0
        self.release_tail = 0
        self.held = {}  # slot -> sequence
        self.seq = 0
        self.wakes_sent = 0
        self.accepted = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        try:
            c, _ = self.listener.accept()
        except OSError:
            return
        fields = [0x48535144, self.version, 1, self.region, self.capacity, self.capacity, self.region // self.capacity,
                  self.mif, 1, self.ctrl_bytes, self.n, 0, 0, b"", 0, 0, 0, 0, 0, 0]
        if self.hello_patch:
            self.hello_patch(fields)
        c.sendmsg([HELLO.pack(*fields)], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                           struct.pack("4i", self.pool_fd, self.ctrl_fd, self.sub_wake,
                                                       self.server_wake))])
        self.conn = c
        self.accepted.set()

    def fence(self, lock=threading.Lock()):
        lock.acquire()
        lock.release()

    def publish(self, buffer_index, size=None, slot=None):
        """Publishes buffer `buffer_index` (filled by the test) to the subscriber."""
        self.collect()
        if slot is None:
            free = [s for s in range(self.mif) if s not in self.held]
            if not free:
                self.c64[72 // 8] += 1  # skipped
                return None
            slot = free[0]
        self.seq += 1
        at = 512 + (self.head % self.n) * 48
        struct.pack_into("<QQQQIIQ", self.ctrl, at, self.seq, buffer_index * self.capacity,
                         self.capacity if size is None else size, 1000 * self.seq, slot, 0, int(self.c64[72 // 8]))
        self.held[slot] = self.seq
        self.head += 1
        self.c64[64 // 8] = self.head
        self.c64[80 // 8] = self.head
        self.fence()
        if self.c32[320 // 4]:
            self.c32[320 // 4] = 0
            os.write(self.sub_wake, (1).to_bytes(8, "little"))
            self.wakes_sent += 1
        return self.seq

    def collect(self):
        head = int(self.c64[192 // 8])
        while self.release_tail < head:
            slot, res, seq = struct.unpack_from("<IIQ", self.ctrl, self.rel_at + (self.release_tail % self.n) * 16)
            assert res == 0 and self.held.get(slot) == seq, f"bad release {slot} {seq} (held {self.held})"
            del self.held[slot]
            self.release_tail += 1
        self.c64[256 // 8] = self.release_tail
        return len(self.held)

    def stop(self, state=2):
        self.c32[88 // 4] = state
        if self.conn:
            self.conn.shutdown(socket.SHUT_RDWR)

    def close(self):
        self.listener.close()
        if self.conn:
            self.conn.close()
        for fd in (self.pool_fd, self.ctrl_fd, self.sub_wake, self.server_wake):
            os.close(fd)
