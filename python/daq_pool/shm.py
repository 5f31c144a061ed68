"""Subscriber of a daq_pool::shm::Server: frames as read-only numpy arrays
over the server's shared memory, no copy.

    from daq_pool.shm import Subscriber
    with Subscriber("/run/user/1000/daq/frames.sock") as sub:
        frame = sub.receive(timeout=1.0)      # a read-only numpy array, or None

The subscriber connects to the server's Unix socket (SOCK_SEQPACKET) and
maps the frame pool's memfd read-only. Each frame names a range of that
mapping; the array handed out is made over that range (daq_pool._frame).
The server keeps the frame's buffer for this subscriber until the array and
every view of it are garbage (or ``daq_pool.release(array)``).

Protocol version 2 (include/daq_pool/shm/protocol.hpp, docs/shm.md): the
hello brings four descriptors (pool memfd, this subscriber's control memfd,
its wake eventfd, the server's wake eventfd); frames arrive through a ring
in the control region and go back through a release ring, with no system
call per frame while both sides are busy. Version 1 (frame and "done"
messages on the socket) is gone from daq-pool and refused here.

Memory ordering in Python: the ring indices are aligned 8-byte words read
and written through numpy scalars (one load / one store each). The protocol
asks for acquire loads, release stores and, before sleeping or waking, a
full fence between a store and a load (a Dekker handshake). On x86-64
plain loads are acquires and plain stores releases (TSO); the fence is a
locked instruction, which acquiring and releasing a `threading.Lock`
executes (CPython's lock is a futex/semaphore word changed with
``lock cmpxchg`` / ``lock xadd``). Other architectures need real fences,
which pure Python can't issue: there protocol 2 is refused
(NotImplementedError) rather than run with a lost-wakeup risk.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import platform
import select
import socket
import struct
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from ._frame import FrameBuffer, address_of
from .errors import NoServerError, ProtocolError, VersionError

__all__ = ["Subscriber", "EndOfStream", "RefusedError", "PROTOCOL_VERSION", "PROTOCOL_VERSIONS"]

# ---- the socket messages (daq_pool/shm/protocol.hpp) ------------------------
MAGIC = 0x48535144  # "DQSH"
PROTOCOL_VERSION = 2
PROTOCOL_VERSIONS = (2,)
TYPE_HELLO, TYPE_REFUSED = 1, 4
_HEADER = struct.Struct("<IHH")  # magic, version, type
# v2 hello: header, region_size, buffer_capacity, buffer_stride, buffer_count, max_in_flight, subscriber_id,
# control_bytes, ring_slots, reserved, lease_ns, then the frame layout: dtype (8 bytes, NUL-padded), ndim,
# reserved, shape (4 x u64)
_HELLO2 = struct.Struct("<IHHQQQIIQQIIQ8sII4Q")
_REFUSED = struct.Struct("<IHHII")
assert (_HELLO2.size, _REFUSED.size) == (120, 16)
MAX_FRAME_DIMS = 4
MAX_IN_FLIGHT_LIMIT = 4096
REFUSE_REASONS = {1: "this process's user is not the server's (SO_PEERCRED); the server's uid is {limit}",
                  2: "max_subscribers ({limit}) are already connected",
                  3: "the server is stopping",
                  4: "the server could not make this connection's memory (errno {limit})"}

# ---- the control region (namespace protocol::control) -----------------------
CONTROL_MAGIC = 0x43535144  # "DQSC"
_CTRL_HEADER_BYTES = 512
_FRAME_HEAD, _SKIPPED, _SENT, _STATE = 64, 72, 80, 88
_FRAME_TAIL, _RELEASE_HEAD, _RELEASE_TAIL = 128, 192, 256
_SUBSCRIBER_SLEEPING, _SERVER_SLEEPING = 320, 384
STATE_LIVE, STATE_REVOKED, STATE_STOPPED = 0, 1, 2
_FRAME_ENTRY = struct.Struct("<QQQQIIQ")  # sequence, offset, size, timestamp_ns, slot, reserved, skipped
_RELEASE_ENTRY = struct.Struct("<IIQ")  # slot, reserved, sequence
assert (_FRAME_ENTRY.size, _RELEASE_ENTRY.size) == (48, 16)
_ONE = (1).to_bytes(8, "little")

_F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
_F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)


def ring_slots_for(max_in_flight: int) -> int:
    """The power of two >= max_in_flight (protocol::control::ring_slots_for)."""
    n = 1
    while n < max_in_flight:
        n <<= 1
    return n


def release_ring_offset(ring_slots: int) -> int:
    return (_CTRL_HEADER_BYTES + ring_slots * 48 + 63) // 64 * 64


def control_region_bytes(ring_slots: int) -> int:
    return release_ring_offset(ring_slots) + ring_slots * 16


def hello_problem(h: Dict[str, int]) -> Optional[str]:
    """What is wrong with a v2 hello's geometry, or None (protocol::hello_problem)."""
    if h["buffer_count"] < 1 or h["buffer_capacity"] < 1:
        return "no buffer, or buffers of 0 bytes"
    if h["buffer_stride"] < h["buffer_capacity"] or h["buffer_stride"] > h["region_size"] // h["buffer_count"]:
        return "the buffers don't fit the region (stride < capacity, or count * stride > region_size)"
    if not 1 <= h["max_in_flight"] <= MAX_IN_FLIGHT_LIMIT:
        return "max_in_flight not in [1, 4096]"
    if h["ring_slots"] != ring_slots_for(h["max_in_flight"]):
        return "ring_slots is not the power of two for max_in_flight"
    if h["control_bytes"] != control_region_bytes(h["ring_slots"]):
        return "control_bytes does not match ring_slots"
    raw = h["dtype_bytes"]
    text = raw.rstrip(b"\0")
    if raw[7:] != b"\0" or b"\0" in text or any(c < 0x21 or c > 0x7E for c in text):
        return "dtype is not ASCII text padded with NULs"
    ndim, shape = h["ndim"], h["shape"]
    if ndim > MAX_FRAME_DIMS:
        return "ndim exceeds 4"
    if any(shape[d] == 0 for d in range(ndim)):
        return "a used shape dimension is 0"
    if any(shape[d] != 0 for d in range(ndim, MAX_FRAME_DIMS)):
        return "a shape dimension beyond ndim is set"
    if ndim and not text:
        return "a shape without a dtype"
    return None


class EndOfStream(Exception):
    """The server ended the stream (stopped, or the connection was lost)."""


class RefusedError(NoServerError):
    """The server refused the connection and said why (``reason``, ``limit``)."""

    def __init__(self, message: str, reason: int, limit: int) -> None:
        super().__init__(message)
        self.reason = reason
        self.limit = limit


def _fence(lock: threading.Lock = threading.Lock()) -> None:
    """A full memory fence on x86-64: a locked read-modify-write (see the
    module's comment)."""
    lock.acquire()
    lock.release()


class Subscriber:
    """One connection to a daq_pool::shm::Server.

    `receive` (or iteration) returns each frame as a read-only numpy array
    over the shared memory; the frame stays held at the server while the
    array or any view of it lives. ``dtype``/``shape`` say how to view a
    frame's bytes; by default, as the server states them (its
    ``ServerOptions::layout``, in ``layout``), else uint8 in one dimension.
    A frame too small for ``shape`` is refused (counted in ``refused``) and
    given back at once.

    Counters: ``received`` (frames handed out), ``skipped`` (frames the
    server skipped for this subscriber: it held max_in_flight), ``held``
    (arrays alive), ``released``, ``refused``, ``bad_messages``.

    Thread-safety: one thread receives; arrays may be dropped (and frames
    released) on any thread. Counters are snapshots.
    """

    def __init__(self, path: Union[str, os.PathLike], *, connect_timeout: float = 5.0,
                 dtype: Any = None, shape: Optional[Tuple[int, ...]] = None) -> None:
        """Connects to the server at `path`, waiting up to `connect_timeout`
        seconds for it to appear. Raises NoServerError (nothing listens at
        `path`), RefusedError (the server refused, and why), VersionError
        (a protocol version this package does not read), ProtocolError."""
        self.path = os.fspath(path)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.shape = shape
        #: The server's frame layout: (dtype string, shape tuple); ("", ()) when it states none.
        self.layout: Tuple[str, Tuple[int, ...]] = ("", ())
        self.received = 0
        self.refused = 0
        self.bad_messages = 0
        self.released = 0
        self._held: Dict[Any, bool] = {}
        self._release_lock = threading.Lock()
        self._closed = False
        self._eof = False
        self._fds: List[int] = []
        self._sock = self._connect(connect_timeout)
        try:
            self._handshake()
        except BaseException:
            self._close_all()
            raise
        # The whole pool as one array: it pins the mapping (mmap.close()
        # refuses while it exists) and every frame's array keeps it alive.
        self._whole = np.frombuffer(self._mapping, dtype=np.uint8)
        self.base_address = address_of(self._whole)

    # ---- connection -----------------------------------------------------
    def _connect(self, timeout: float) -> socket.socket:
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
            try:
                s.connect(self.path)
                return s
            except OSError as e:
                s.close()
                if e.errno not in (errno.ENOENT, errno.ECONNREFUSED) or time.monotonic() >= deadline:
                    raise NoServerError(f"no daq_pool shm server at {self.path!r}: {e.strerror} "
                                        f"(waited {timeout:g} s)") from e
                time.sleep(0.01)

    def _handshake(self) -> None:
        p = self.path
        if not select.select([self._sock], [], [], 10)[0]:
            raise ProtocolError(f"{p}: no hello from the server within 10 s")
        data, ancdata, flags, _ = self._sock.recvmsg(256, socket.CMSG_SPACE(8 * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                self._fds += struct.unpack(f"{n}i", payload[: n * 4])
        if not data:
            raise NoServerError(f"{p}: the server closed the connection before its hello")
        if len(data) < _HEADER.size:
            raise ProtocolError(f"{p}: the server's first message ({len(data)} bytes) is not a hello")
        magic, version, kind = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise ProtocolError(f"{p}: the server's first message is not a daq_pool shm hello (magic {magic:#x})")
        if version not in PROTOCOL_VERSIONS:
            raise VersionError(f"{p}: the server speaks shm protocol version {version}; this package reads "
                               f"versions {', '.join(map(str, PROTOCOL_VERSIONS))}")
        if kind == TYPE_REFUSED and len(data) == _REFUSED.size:
            _, _, _, reason, limit = _REFUSED.unpack(data)
            words = REFUSE_REASONS.get(reason, "reason {reason}").format(limit=limit, reason=reason)
            raise RefusedError(f"{p}: the server refused this subscriber: {words}", reason, limit)
        if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
            raise ProtocolError(f"{p}: the hello or its descriptors were truncated")
        self.protocol_version = version
        self._hello_v2(data)

    def _check_pool_fd(self, fd: int, region: int) -> None:
        if os.fstat(fd).st_size < region:
            raise ProtocolError(f"{self.path}: the pool memory ({os.fstat(fd).st_size} bytes) is smaller than the "
                                f"hello's region_size {region}")
        if not fcntl.fcntl(fd, _F_GET_SEALS) & _F_SEAL_SHRINK:
            raise ProtocolError(f"{self.path}: the server's memory is not sealed against shrinking; refusing to map it")

    def _hello_v2(self, data: bytes) -> None:
        p = self.path
        if platform.machine().lower() not in ("x86_64", "amd64"):
            raise NotImplementedError(f"{p}: shm protocol 2 from pure Python needs x86-64's memory ordering (this is "
                                      f"{platform.machine()}); see daq_pool/shm.py")
        if len(data) != _HELLO2.size or len(self._fds) != 4:
            raise ProtocolError(f"{p}: the hello is not {_HELLO2.size} bytes with 4 descriptors "
                                f"(got {len(data)} bytes, {len(self._fds)} descriptors)")
        (_, _, kind, region, cap, stride, count, mif, sub_id, ctrl_bytes, slots, reserved, lease,
         dtype_bytes, ndim, reserved2, *shape) = _HELLO2.unpack(data)
        h = dict(region_size=region, buffer_capacity=cap, buffer_stride=stride, buffer_count=count, max_in_flight=mif,
                 subscriber_id=sub_id, control_bytes=ctrl_bytes, ring_slots=slots, lease_ns=lease,
                 dtype_bytes=dtype_bytes, ndim=ndim, shape=tuple(shape))
        why = "reserved field not 0" if (kind != TYPE_HELLO or reserved or reserved2) else hello_problem(h)
        if why:
            raise ProtocolError(f"{p}: the server's hello is inconsistent: {why}")
        self.hello = h
        self.layout = (dtype_bytes.rstrip(b"\0").decode("ascii"), tuple(shape[:ndim]))
        # What the caller did not choose, the server's layout decides.
        if self.dtype is None:
            try:
                self.dtype = np.dtype(self.layout[0]) if self.layout[0] else np.dtype(np.uint8)
            except TypeError:
                raise ProtocolError(f"{p}: the server's dtype {self.layout[0]!r} is not a numpy dtype") from None
            if self.shape is None and self.layout[1]:
                self.shape = self.layout[1]
        pool_fd, ctrl_fd, self._wake_fd, self._server_wake_fd = self._fds
        self._check_pool_fd(pool_fd, region)
        if os.fstat(ctrl_fd).st_size < ctrl_bytes:
            raise ProtocolError(f"{p}: the control memory is smaller than the hello's control_bytes {ctrl_bytes}")
        # The pool's descriptor is read-only and the memfd sealed: a writable
        # shared mapping must be refused (else another process could change
        # frames under every subscriber).
        try:
            mmap.mmap(pool_fd, region, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE).close()
            self.write_refused = False
        except OSError:
            self.write_refused = True  #: True: the pool could not be mapped writable (as it must be)
        self._mapping = mmap.mmap(pool_fd, region, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
        self._ctrl = mmap.mmap(ctrl_fd, ctrl_bytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        os.close(pool_fd)
        os.close(ctrl_fd)
        self._fds = [self._wake_fd, self._server_wake_fd]
        os.set_blocking(self._wake_fd, False)
        c64 = np.frombuffer(self._ctrl, dtype="<u8")
        c32 = np.frombuffer(self._ctrl, dtype="<u4")
        self._c64, self._c32 = c64, c32
        if int(c32[0]) != CONTROL_MAGIC or int(c32[1]) & 0xFFFF != 2 or int(c32[2]) != mif or int(c32[3]) != slots \
                or int(c64[2]) != _CTRL_HEADER_BYTES or int(c64[3]) != release_ring_offset(slots):
            raise ProtocolError(f"{p}: the control region's header does not match the hello")
        self._slots = slots
        self._rel_at = release_ring_offset(slots)
        self._tail = int(c64[_FRAME_TAIL // 8])
        self._release_head = int(c64[_RELEASE_HEAD // 8])
        self.region_size = region

    # ---- frames ---------------------------------------------------------
    def fileno(self) -> int:
        """A descriptor that turns readable when a frame may be waiting or
        the stream may have ended, for select/poll/asyncio loops: call
        ``receive(timeout=0)`` until it returns None (which arms it), then
        wait for it. It is the wake eventfd (the server writes it when it
        finds this subscriber waiting). The end of the stream also shows on
        the socket (``socket_fileno()``)."""
        return self._wake_fd

    @property
    def state(self) -> int:
        """The server's word on this subscriber: 0 live, 1 revoked (lease
        expired or protocol broken: what it held was taken back), 2 stopped."""
        return int(self._c32[_STATE // 4])

    def socket_fileno(self) -> int:
        """The Unix socket's descriptor: it reports the server's end (POLLHUP)."""
        return self._sock.fileno()

    @property
    def held(self) -> int:
        """Frames handed out and not yet released (arrays alive)."""
        return len(self._held)

    @property
    def skipped(self) -> int:
        """Frames the server skipped for this subscriber (exact: the server's count)."""
        return int(self._c64[_SKIPPED // 8])  # the control region stays mapped after close()

    def receive(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """The next frame as a read-only numpy array over the shared memory,
        or None if none came within `timeout` seconds (None: wait forever).
        Raises EndOfStream once the server is gone. Not thread-safe (one
        receiving thread)."""
        frame = self.receive_frame(timeout)
        return None if frame is None else np.asarray(frame)

    def receive_frame(self, timeout: Optional[float] = None) -> Optional[FrameBuffer]:
        """Like `receive`, but the FrameBuffer (number, sequence, timestamp,
        release(); ``np.asarray(frame)`` is the array)."""
        if self._closed:
            raise ValueError(f"{self.path}: subscriber is closed")
        deadline = None if timeout is None else time.monotonic() + timeout
        return self._receive_v2(deadline)

    def _wait(self, fds: List[Any], deadline: Optional[float]) -> bool:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        return bool(select.select(fds, [], [], wait)[0])

    def _socket_closed(self) -> bool:
        try:
            data = self._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if data:
            return False  # the server sends nothing in protocol 2: a message is garbage; not our end
        p = select.poll()
        p.register(self._sock, select.POLLIN | select.POLLRDHUP)
        ev = p.poll(0)
        return bool(ev) and bool(ev[0][1] & (select.POLLHUP | select.POLLRDHUP | select.POLLERR))

    def _receive_v2(self, deadline: Optional[float]) -> Optional[FrameBuffer]:
        c64, c32 = self._c64, self._c32
        while True:
            # acquire (x86 load): the descriptor below was written before frame_head
            if int(c64[_FRAME_HEAD // 8]) > self._tail:
                frame = self._take_v2()
                if frame is not None:
                    return frame
                continue
            state = int(c32[_STATE // 4])
            if state == STATE_REVOKED:
                raise EndOfStream(f"{self.path}: the server revoked this subscriber (lease expired or protocol "
                                  "broken): frames it held were taken back")
            if self._eof or state == STATE_STOPPED or self._socket_closed():
                # Closed socket or stopped: anything published before is in the ring; look once more.
                if int(c64[_FRAME_HEAD // 8]) > self._tail:
                    continue
                self._eof = True
                raise EndOfStream(f"{self.path}: the server ended the stream")
            # Arm the wake: reset the eventfd, say we sleep, fence, look again
            # (the Dekker handshake with the server's publish).
            try:
                os.read(self._wake_fd, 8)
            except BlockingIOError:
                pass
            c32[_SUBSCRIBER_SLEEPING // 4] = 1
            _fence()
            if int(c64[_FRAME_HEAD // 8]) > self._tail:
                c32[_SUBSCRIBER_SLEEPING // 4] = 0
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return None  # left armed: fileno() turns readable with the next frame
            # The socket is watched for the server's end (POLLHUP). Bounded
            # slices also catch a state change without a wake.
            slice_end = time.monotonic() + 0.1
            self._wait([self._wake_fd, self._sock], slice_end if deadline is None else min(deadline, slice_end))

    def _take_v2(self) -> Optional[FrameBuffer]:
        tail = self._tail
        at = _CTRL_HEADER_BYTES + (tail & (self._slots - 1)) * 48
        seq, off, size, ts, slot, reserved, skipped = _FRAME_ENTRY.unpack_from(self._ctrl, at)
        self._tail = tail + 1
        self._c64[_FRAME_TAIL // 8] = tail + 1  # release (x86 store): the entry is read
        if slot >= self.hello["max_in_flight"] or reserved or slot in self._held:
            self.bad_messages += 1
            raise ProtocolError(f"{self.path}: frame descriptor {tail} is invalid (slot {slot}, reserved {reserved}): "
                                "the control region is corrupt")
        if size == 0 or off + size > self.region_size:
            self.refused += 1
            self._held[slot] = seq
            self._release_v2(slot)  # the server holds it for us: give it back
            return None
        self._held[slot] = seq
        try:
            frame = FrameBuffer(self.base_address + off, size, keep=self, on_release=self._release_v2, token=slot,
                                dtype=self.dtype, shape=self.shape, number=seq, timestamp_ns=ts, sequence=seq)
        except ValueError:
            self.refused += 1
            self._release_v2(slot)
            return None
        self.received += 1
        return frame

    def _release_v2(self, slot: int) -> None:
        # dict.pop is atomic under the GIL: exactly one caller releases.
        seq = self._held.pop(slot, None)
        if seq is None:
            return
        if self._closed and self._sock.fileno() < 0:
            return
        with self._release_lock:  # one writer of the release ring at a time
            head = self._release_head
            _RELEASE_ENTRY.pack_into(self._ctrl, self._rel_at + (head & (self._slots - 1)) * 16, slot, 0, seq)
            self._release_head = head + 1
            self._c64[_RELEASE_HEAD // 8] = head + 1  # release (x86 store, after the entry's)
            self.released += 1
        # The lock's release above is a locked instruction: a full fence
        # between the release_head store and this load (Dekker).
        if int(self._c32[_SERVER_SLEEPING // 4]):
            self._c32[_SERVER_SLEEPING // 4] = 0
            try:
                os.write(self._server_wake_fd, _ONE)
            except OSError:
                pass
        if self._closed and not self._held:
            self._close_all()

    # ---- the rest -----------------------------------------------------------
    def __iter__(self) -> Iterator[np.ndarray]:
        """Frames until the end of the stream (blocks between frames)."""
        while True:
            try:
                a = self.receive()
            except EndOfStream:
                return
            if a is not None:
                yield a

    def counters(self) -> Dict[str, int]:
        """received, skipped, held, refused, released, bad_messages: a snapshot."""
        return dict(received=self.received, skipped=self.skipped, held=self.held, refused=self.refused,
                    released=self.released, bad_messages=self.bad_messages)

    def _close_fds(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def _close_all(self) -> None:
        self._close_fds()
        self._sock.close()

    def close(self) -> None:
        """Stops receiving. Frames still held stay held (and their memory
        mapped) until their arrays are garbage; the connection closes with
        the last of them (closing it is what tells the server to take every
        frame back). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._held:
            self._close_all()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daq_pool.shm.Subscriber {self.path!r} v{self.protocol_version} {self.counters()}>"
