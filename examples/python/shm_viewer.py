#!/usr/bin/env python3
"""A subscriber of a daq_pool::shm::Server in plain Python: frames as numpy
arrays over the server's shared memory, without any copy.

    /usr/bin/python3 shm_viewer.py --path=/run/user/1000/daq/frames.sock

Speaks protocol version 2 (include/daq_pool/shm/protocol.hpp, docs/shm.md):
connects to the server's Unix socket (SOCK_SEQPACKET), receives the hello
with four descriptors (socket.recvmsg, SCM_RIGHTS): the pool's memfd (mapped
read-only), this subscriber's control region (mapped read-write: a frame
ring and a release ring) and two eventfds. Frames are taken from the frame
ring and become numpy arrays straight on the mapping
(numpy.frombuffer(mapping, offset=...)): no byte of a frame is copied. Each
frame is checked against the frame_pipeline demo's pattern
(examples/frame_pipeline/frame_pattern.hpp), held for --hold-ms, checked
again, and released through the release ring (the server then lets its
buffer go). With --verify=stable (frames of any source, e.g. a camera's) a
frame is only checked not to change while held.

Python has no memory fence: the wake handshake's store-then-load can be
reordered on this side, so a wake-up may be missed; the viewer therefore
never sleeps longer than 100 ms at a time (a missed wake costs latency,
never a hang). Aligned 8-byte loads and stores of numpy uint64 elements are
single instructions on x86-64 and arm64.

Exit codes: 0 every frame verified in place; 1 a frame failed verification
or was not a view of the mapping; 2 bad arguments, no server, or a protocol
error (a refusal says why); 3 no frame received (unless --allow-empty).
Needs numpy (Debian: python3-numpy, i.e. /usr/bin/python3).
"""
import argparse
import errno
import fcntl
import json
import mmap
import os
import select
import signal
import socket
import struct
import sys
import time

import numpy as np

# ---- the protocol (include/daq_pool/shm/protocol.hpp, docs/shm.md) --------
MAGIC, VERSION = 0x48535144, 2
TYPE_HELLO, TYPE_REFUSED = 1, 4
# magic, version, type, region_size, buffer_capacity, buffer_stride,
# buffer_count, max_in_flight, subscriber_id, control_bytes, ring_slots,
# reserved, lease_ns
HELLO = struct.Struct("<IHHQQQIIQQIIQ")
REFUSED = struct.Struct("<IHHII")  # magic, version, type, reason, limit
assert (HELLO.size, REFUSED.size) == (72, 16)
REFUSALS = {1: "this process's user is not the server's (the server runs as uid {})",
            2: "max_subscribers are already connected (max_subscribers is {})",
            3: "the server is stopping", 4: "the server is out of resources (errno {})"}
# The control region (offsets in bytes; words are little-endian u64 / u32).
CTL_MAGIC = 0x43535144
FRAME_HEAD, SKIPPED, STATE = 64, 72, 88
FRAME_TAIL, RELEASE_HEAD, RELEASE_TAIL = 128, 192, 256
SUBSCRIBER_SLEEPING, SERVER_SLEEPING = 320, 384
RING_OFFSET, FRAME_ENTRY, RELEASE_ENTRY = 512, 48, 16
STATE_LIVE, STATE_REVOKED, STATE_STOPPED = 0, 1, 2

F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)

# ---- the demo's frame pattern (examples/frame_pipeline/frame_pattern.hpp) --
FRAME_HEADER_BYTES = 32
FRAME_MAGIC = 0x454D415246514144  # "DAQFRAME"
WORD_STEP = 0xD6E8FEB86659FD93
MASK = (1 << 64) - 1


def mix(x):
    """splitmix64's finalizer: the first payload word of frame x."""
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def verify(frame, previous):
    """None if `frame` (a uint8 array over the mapping) holds the pattern of
    the frame its header names, numbered above `previous` (if not None); else
    what is wrong. The payload is compared as uint64 words viewed in place."""
    if frame.size < FRAME_HEADER_BYTES:
        return "shorter than its header"
    magic, number, size, checksum = frame[:FRAME_HEADER_BYTES].view("<u8")
    if int(magic) != FRAME_MAGIC:
        return "header magic is wrong"
    if int(size) != frame.size:
        return "size differs from the header's"
    if previous is not None and int(number) <= previous:
        return "frame number not after the previous frame's"
    payload = frame[FRAME_HEADER_BYTES:]
    n_words, tail = divmod(payload.size, 8)
    words = payload[: n_words * 8].view("<u8")  # still the mapping: no copy
    index = np.arange(n_words, dtype=np.uint64)
    expected = np.uint64(mix(int(number))) + index * np.uint64(WORD_STEP)  # wraps mod 2**64
    if not np.array_equal(words, expected):
        return "payload differs from the sensor's pattern"
    # Fletcher-style checksum over the words (and the zero-padded tail word).
    a = int(words.sum(dtype=np.uint64))
    b = int(((np.uint64(n_words) - index) * words).sum(dtype=np.uint64))
    if tail:
        want = ((mix(int(number)) + n_words * WORD_STEP) & MASK) & ((1 << (8 * tail)) - 1)
        last = int.from_bytes(payload[n_words * 8:].tobytes(), "little")
        if last != want:
            return "payload differs from the sensor's pattern"
        a = (a + last) & MASK
        b = (b + a) & MASK
    if a ^ ((b * 0x9E3779B97F4A7C15) & MASK) != int(checksum):
        return "payload checksum differs from the header's"
    return None


def sampled_checksum(frame):
    """A checksum of every 8th little-endian 64-bit word of `frame` and its
    tail bytes: what --verify=stable compares between receipt and "done". A
    reused buffer holds another frame, which changes far more than one word
    in eight. The sample is a strided view of the mapping; only the sums'
    temporaries are allocated."""
    n_words = frame.size // 8
    sample = frame[: n_words * 8].view("<u8")[::8]
    weights = np.arange(1, sample.size + 1, dtype=np.uint64)
    a = int(sample.sum(dtype=np.uint64))
    b = int((sample * weights).sum(dtype=np.uint64))
    tail = int.from_bytes(frame[n_words * 8:].tobytes(), "little")
    return (a, b, tail, frame.size)


def check_stable(frame, on_receipt):
    """None if `frame`'s sampled checksum is still `on_receipt`; else what is wrong."""
    return None if sampled_checksum(frame) == on_receipt else "its checksum changed"


class ProtocolError(Exception):
    pass


def connect(path, timeout_s):
    """A connected SOCK_SEQPACKET socket, retrying while the server is not
    there yet (non-blocking connect: a server too busy to accept never
    blocks us past the deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.setblocking(False)
        try:
            s.connect(path)
            s.setblocking(True)
            return s
        except OSError as e:
            s.close()
            if e.errno not in (errno.ENOENT, errno.ECONNREFUSED, errno.EAGAIN) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


def receive_hello(sock):
    """The hello's fields and its four descriptors (checked, sealed)."""
    if not select.select([sock], [], [], 10)[0]:
        raise ProtocolError("no hello from the server within 10 s")
    data, ancdata, flags, _ = sock.recvmsg(128, socket.CMSG_SPACE(8 * struct.calcsize("i")))
    fds = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) // 4 * 4])
    if not data:
        raise ProtocolError("the server closed the connection before its hello")
    if len(data) == REFUSED.size:
        magic, version, kind, reason, limit = REFUSED.unpack(data)
        if (magic, version, kind) == (MAGIC, VERSION, TYPE_REFUSED):
            raise ProtocolError("refused: " + REFUSALS.get(reason, "reason {}").format(limit))
    for extra in fds[4:]:
        os.close(extra)
    if len(data) != HELLO.size or len(fds) < 4 or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        raise ProtocolError("the server's first message is not a version-2 hello with 4 descriptors")
    (magic, version, kind, region_size, capacity, stride, count, max_in_flight, sub_id, control_bytes, ring_slots,
     reserved, lease_ns) = HELLO.unpack(data)
    if (magic, version, kind, reserved) != (MAGIC, VERSION, TYPE_HELLO, 0):
        raise ProtocolError("the server's first message is not a version-2 hello")
    slots = 1
    while slots < max_in_flight:
        slots *= 2
    release_offset = (RING_OFFSET + slots * FRAME_ENTRY + 63) // 64 * 64
    if count < 1 or stride < capacity or count * stride > region_size or not 1 <= max_in_flight <= 4096 or \
            ring_slots != slots or control_bytes != release_offset + slots * RELEASE_ENTRY or \
            os.fstat(fds[0]).st_size < region_size or os.fstat(fds[1]).st_size < control_bytes:
        raise ProtocolError("the hello's geometry does not fit the memory it came with")
    for fd in fds[:2]:
        if not fcntl.fcntl(fd, F_GET_SEALS) & F_SEAL_SHRINK:
            raise ProtocolError("the server's memory is not sealed against shrinking; refusing to map it")
    hello = dict(region_size=region_size, buffer_capacity=capacity, buffer_stride=stride, buffer_count=count,
                 max_in_flight=max_in_flight, subscriber_id=sub_id, control_bytes=control_bytes,
                 ring_slots=ring_slots, release_offset=release_offset, lease_ns=lease_ns)
    return hello, fds[:4]


class Rings:
    """This subscriber's side of its control region: take frames, release them."""

    def __init__(self, control, hello, own_wake, server_wake):
        self.w64 = np.frombuffer(control, dtype="<u8")  # the region as u64 words: no copy
        self.w32 = np.frombuffer(control, dtype="<u4")
        self.n = hello["ring_slots"]
        self.release_offset = hello["release_offset"]
        self.own_wake, self.server_wake = own_wake, server_wake
        self.tail = int(self.w64[FRAME_TAIL // 8])
        self.head = int(self.w64[RELEASE_HEAD // 8])
        if int(self.w32[0]) != CTL_MAGIC:
            raise ProtocolError("the control region's magic is wrong")

    def take(self):
        """(sequence, offset, size, timestamp_ns, slot, skipped) or None."""
        head = int(self.w64[FRAME_HEAD // 8])
        if head == self.tail:
            return None
        if head - self.tail > self.n or head < self.tail:
            raise ProtocolError("the server's frame_head is impossible")
        at = (RING_OFFSET + (self.tail % self.n) * FRAME_ENTRY) // 8
        sequence, offset, size, timestamp, slot, skipped = (int(v) for v in self.w64[at:at + 6])
        self.tail += 1
        self.w64[FRAME_TAIL // 8] = self.tail
        return sequence, offset, size, timestamp, slot & 0xFFFFFFFF, skipped

    def release(self, slot, sequence):
        at = (self.release_offset + (self.head % self.n) * RELEASE_ENTRY) // 8
        self.w64[at] = slot  # slot, then the reserved u32 (0)
        self.w64[at + 1] = sequence
        self.head += 1
        self.w64[RELEASE_HEAD // 8] = self.head
        if self.w32[SERVER_SLEEPING // 4]:
            self.w32[SERVER_SLEEPING // 4] = 0
            os.write(self.server_wake, (1).to_bytes(8, "little"))

    def wait(self, sock, timeout_s):
        """Sleeps until a frame may be there (at most timeout_s: no fence in Python)."""
        try:
            os.read(self.own_wake, 8)  # reset; the server made it non-blocking
        except BlockingIOError:
            pass
        self.w32[SUBSCRIBER_SLEEPING // 4] = 1
        if int(self.w64[FRAME_HEAD // 8]) == self.tail and int(self.w32[STATE // 4]) == STATE_LIVE:
            select.select([self.own_wake, sock], [], [], timeout_s)
        self.w32[SUBSCRIBER_SLEEPING // 4] = 0

    def state(self):
        return int(self.w32[STATE // 4])

    def skipped(self):
        return int(self.w64[SKIPPED // 8])


def server_gone(sock):
    p = select.poll()
    p.register(sock, select.POLLIN | select.POLLRDHUP)
    events = p.poll(0)
    return bool(events) and bool(events[0][1] & (select.POLLHUP | select.POLLRDHUP | select.POLLERR | select.POLLIN))


def address_of(array):
    return array.__array_interface__["data"][0]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--path", required=True, help="the server's Unix socket")
    p.add_argument("--frames", type=int, default=0, help="stop after N frames (0: until the stream ends)")
    p.add_argument("--hold-ms", type=int, default=0, help="hold each frame this long (a slow consumer)")
    p.add_argument("--connect-timeout", type=float, default=5.0, help="wait this long for the server, seconds")
    p.add_argument("--verify", choices=["pattern", "stable"], default="pattern",
                   help="pattern: the frame_pipeline demo's pattern (default); stable: any frames, "
                        "checked not to change while held")
    p.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--allow-empty", action="store_true", help="receiving no frame at all is not a failure")
    try:
        args = p.parse_args()
    except SystemExit as e:
        sys.exit(0 if e.code == 0 else 2)
    if args.frames < 0 or not 0 <= args.hold_ms <= 60000 or args.connect_timeout < 0:
        print("shm_viewer: --frames, --hold-ms (in [0, 60000]) and --connect-timeout must not be negative",
              file=sys.stderr)
        sys.exit(2)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    info = sys.stderr if args.json else sys.stdout

    try:
        sock = connect(args.path, args.connect_timeout)
        hello, fds = receive_hello(sock)
    except (OSError, ProtocolError) as e:
        print(f"shm_viewer: --path={args.path}: {e}", file=sys.stderr)
        sys.exit(2)
    fd = fds[0]
    # The descriptor is read-only and the file sealed: a writable shared
    # mapping must be refused.
    try:
        mmap.mmap(fd, hello["region_size"], flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE).close()
        write_refused = False
    except OSError:
        write_refused = True
    mapping = mmap.mmap(fd, hello["region_size"], flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    control = mmap.mmap(fds[1], hello["control_bytes"], flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    os.close(fds[0])  # the mappings keep the memory
    os.close(fds[1])
    try:
        rings = Rings(control, hello, fds[2], fds[3])
    except ProtocolError as e:
        print(f"shm_viewer: --path={args.path}: {e}", file=sys.stderr)
        sys.exit(2)
    whole = np.frombuffer(mapping, dtype=np.uint8)  # the whole mapping, as an array: no copy
    base = address_of(whole)
    if not args.quiet:
        print(f"shm_viewer: connected to {args.path} as subscriber {hello['subscriber_id']}: "
              f"{hello['buffer_count']} buffers of {hello['buffer_capacity']} bytes mapped read-only at {base:#x}",
              file=info, flush=True)

    s = dict(frames=0, verified=0, integrity_failures=0, recheck_failures=0, not_in_place=0, missed=0,
             released=0, revoked=False, bad_messages=0, bytes=0, first_failure=None, end_reason="",
             first_view_address=None)
    previous_number = None
    start = time.monotonic()
    while True:
        if stop:
            s["end_reason"] = "signal"
            break
        if args.frames and s["frames"] >= args.frames:
            s["end_reason"] = "frames"
            break
        try:
            got = rings.take()
        except ProtocolError:
            s["bad_messages"] += 1
            s["end_reason"] = "end_of_stream"
            break
        if got is None:
            if rings.state() != STATE_LIVE or server_gone(sock):
                if rings.take() is None:
                    s["end_reason"] = "end_of_stream"
                    break
                continue
            rings.wait(sock, 0.1)
            continue
        sequence, offset, size, _timestamp, slot, _skipped = got
        if size == 0 or offset + size > hello["region_size"] or slot >= hello["max_in_flight"]:
            s["bad_messages"] += 1
            continue
        s["frames"] += 1
        s["bytes"] += size
        # The frame: an array over the mapping itself (zero copy).
        frame = np.frombuffer(mapping, dtype=np.uint8, count=size, offset=offset)
        if address_of(frame) != base + offset or frame.flags.writeable or not np.shares_memory(frame, whole):
            s["not_in_place"] += 1
        if s["first_view_address"] is None:
            s["first_view_address"] = address_of(frame)
        if args.verify == "stable":
            on_receipt = sampled_checksum(frame)
            fault = None
        else:
            fault = verify(frame, previous_number)
        if fault is None:
            s["verified"] += 1
            if args.verify == "pattern":
                previous_number = int(frame[8:16].view("<u8")[0])
        else:
            s["integrity_failures"] += 1
            s["first_failure"] = s["first_failure"] or f"sequence {sequence}: {fault}"
        if args.hold_ms:
            time.sleep(args.hold_ms / 1000)
        # Just before "done": the bytes must not have changed while held.
        again = check_stable(frame, on_receipt) if args.verify == "stable" else verify(frame, None)
        if again is not None:
            s["recheck_failures"] += 1
            s["first_failure"] = s["first_failure"] or f"sequence {sequence} changed while held: {again}"
        del frame
        rings.release(slot, sequence)
        s["released"] += 1
    elapsed = time.monotonic() - start
    s["missed"] = rings.skipped()  # the server's own count: exact, also after our last frame
    s["revoked"] = rings.state() == STATE_REVOKED
    failed = s["integrity_failures"] or s["recheck_failures"] or s["not_in_place"] or not write_refused
    empty = s["frames"] == 0 and not args.allow_empty
    s.update(path=args.path, subscriber_id=hello["subscriber_id"], elapsed_s=round(elapsed, 3),
             frames_per_s=round(s["frames"] / elapsed, 3) if elapsed > 0 else 0.0, zero_copy=s["not_in_place"] == 0,
             write_refused=write_refused, mapping={"address": base, "size": hello["region_size"]},
             exit_code=1 if failed else 3 if empty else 0)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"\nsummary: {elapsed:.2f} s, ended by {s['end_reason']}")
        print(f"  frames received      {s['frames']}  ({s['frames_per_s']} frames/s, numpy views of the mapping)")
        print(f"  frames verified      {s['verified']}  (integrity failures {s['integrity_failures']}, "
              f"changed while held {s['recheck_failures']})")
        print(f"  zero copy            {'yes' if s['zero_copy'] else 'NO'}  (every array inside the read-only "
              f"mapping at {base:#x}; writable mapping refused: {'yes' if write_refused else 'NO'})")
        print(f"  missed               {s['missed']}  (frames the server skipped for this subscriber, its count)")
        print(f"  released             {s['released']}  (revoked by the server: {'yes' if s['revoked'] else 'no'})")
        if s["frames"] == 0:
            print("  no frame received" + (" (--allow-empty)" if args.allow_empty else ": that is a failure (exit 3)"))
        if s["first_failure"]:
            print(f"  first failure        {s['first_failure']}")
        print(f"result: {'FAIL' if failed else 'NOTHING RECEIVED' if empty else 'PASS'}")
    del whole
    del rings
    control.close()
    mapping.close()
    sock.close()
    sys.exit(s["exit_code"])


if __name__ == "__main__":
    main()
