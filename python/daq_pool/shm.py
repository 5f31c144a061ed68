"""Subscriber of a daq_pool::shm::Server: frames as read-only numpy arrays
over the server's shared memory, no copy.

    from daq_pool.shm import Subscriber
    with Subscriber("/run/user/1000/daq/frames.sock") as sub:
        frame = sub.receive(timeout=1.0)      # a read-only numpy array, or None

The subscriber connects to the server's Unix socket (SOCK_SEQPACKET),
receives the memfd once (SCM_RIGHTS) and maps it read-only. Each frame
message names a range of the mapping; the array handed out is made over
that range (see daq_pool._frame). The server keeps the frame's buffer for
this subscriber until the array and every view of it are garbage (or
``daq_pool.release(array)``); then the subscriber tells the server "done".

Protocol: the one of include/daq_pool/shm.hpp (namespace shm::protocol),
version 1 (fixed-size little-endian messages: hello 48 bytes, frame 48,
done 24). Only numpy and the standard library are needed.
"""
from __future__ import annotations

import errno
import fcntl
import mmap
import os
import select
import socket
import struct
import threading
import time
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import numpy as np

from ._frame import FrameBuffer, address_of
from .errors import NoServerError, ProtocolError, VersionError

__all__ = ["Subscriber", "EndOfStream", "PROTOCOL_VERSION"]

# ---- the protocol (daq_pool/shm.hpp, namespace shm::protocol) -------------
MAGIC = 0x48535144  # "DQSH"
PROTOCOL_VERSION = 1
TYPE_HELLO, TYPE_FRAME, TYPE_DONE = 1, 2, 3
_HEADER = struct.Struct("<IHH")  # magic, version, type
# magic, version, type, region_size, buffer_capacity, buffer_stride, buffer_count, max_in_flight, subscriber_id
_HELLO = struct.Struct("<IHHQQQIIQ")
# magic, version, type, slot, reserved, sequence, offset, size, timestamp_ns
_FRAME = struct.Struct("<IHHIIQQQQ")
# magic, version, type, slot, reserved, sequence
_DONE = struct.Struct("<IHHIIQ")
assert (_HELLO.size, _FRAME.size, _DONE.size) == (48, 48, 24)

_F_GET_SEALS = getattr(fcntl, "F_GET_SEALS", 1034)
_F_SEAL_SHRINK = getattr(fcntl, "F_SEAL_SHRINK", 0x0002)


class EndOfStream(Exception):
    """The server ended the stream (stopped, or the connection was lost)."""


class Subscriber:
    """One connection to a daq_pool::shm::Server.

    `receive` (or iteration) returns each frame as a read-only numpy array
    over the shared memory; the frame stays held at the server while the
    array or any view of it lives. ``dtype``/``shape`` say how to view a
    frame's bytes (default: uint8, one dimension); a frame too small for
    ``shape`` is refused (counted in ``refused``).

    Thread-safety: one thread receives; arrays may be dropped (and frames
    released) on any thread. Counters are snapshots.
    """

    def __init__(self, path: Union[str, os.PathLike], *, connect_timeout: float = 5.0,
                 dtype: Any = np.uint8, shape: Optional[Tuple[int, ...]] = None) -> None:
        """Connects to the server at `path`, waiting up to `connect_timeout`
        seconds for it to appear. Raises NoServerError (nothing listens at
        `path`), VersionError (another protocol version), ProtocolError."""
        self.path = os.fspath(path)
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.received = 0  #: frames handed out as arrays
        self.skipped = 0  #: frames the server skipped for this subscriber (gaps in its sequence numbers)
        self.refused = 0  #: frames refused here (range outside the mapping, too small for `shape`)
        self.bad_messages = 0  #: messages that were not frame messages
        self.released = 0  #: frames given back ("done" sent)
        self._held: Dict[Tuple[int, int], bool] = {}
        self._send_lock = threading.Lock()
        self._closed = False
        self._eof = False
        self._last_sequence: Optional[int] = None
        self._sock = self._connect(connect_timeout)
        try:
            self.hello, fd = self._receive_hello()
            try:
                self._mapping = mmap.mmap(fd, self.hello["region_size"], flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
            finally:
                os.close(fd)
        except BaseException:
            self._sock.close()
            raise
        # The whole mapping as one array: it pins the mapping (mmap.close()
        # refuses while it exists) and every frame's array keeps it alive.
        self._whole = np.frombuffer(self._mapping, dtype=np.uint8)
        self.base_address = address_of(self._whole)
        self.region_size = self.hello["region_size"]

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

    def _receive_hello(self) -> Tuple[Dict[str, int], int]:
        if not select.select([self._sock], [], [], 10)[0]:
            raise ProtocolError(f"{self.path}: no hello from the server within 10 s")
        data, ancdata, flags, _ = self._sock.recvmsg(256, socket.CMSG_SPACE(4 * 4))
        fds = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                n = len(payload) // 4
                fds += struct.unpack(f"{n}i", payload[: n * 4])
        for extra in fds[1:]:
            os.close(extra)
        try:
            if not data:
                raise NoServerError(f"{self.path}: the server closed the connection before its hello "
                                    "(another user's server, or max_subscribers already connected)")
            if len(data) >= _HEADER.size:
                magic, version, kind = _HEADER.unpack_from(data)
                if magic == MAGIC and version != PROTOCOL_VERSION:
                    raise VersionError(f"{self.path}: the server speaks shm protocol version {version}; "
                                       f"this package reads version {PROTOCOL_VERSION}")
            if len(data) != _HELLO.size or not fds or flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise ProtocolError(f"{self.path}: the server's first message is not a {_HELLO.size}-byte hello "
                                    f"with one descriptor (got {len(data)} bytes, {len(fds)} descriptors)")
            magic, version, kind, region, capacity, stride, count, max_in_flight, sub_id = _HELLO.unpack(data)
            if (magic, kind) != (MAGIC, TYPE_HELLO):
                raise ProtocolError(f"{self.path}: the server's first message is not a hello (magic {magic:#x}, "
                                    f"type {kind})")
            fd = fds[0]
            if os.fstat(fd).st_size < region or count < 1 or stride < capacity or count * stride > region:
                raise ProtocolError(f"{self.path}: the hello's geometry ({count} buffers of {capacity} bytes, "
                                    f"stride {stride}) does not fit the memory it came with ({region} bytes)")
            if not fcntl.fcntl(fd, _F_GET_SEALS) & _F_SEAL_SHRINK:
                raise ProtocolError(f"{self.path}: the server's memory is not sealed against shrinking; "
                                    "refusing to map it")
        except BaseException:
            for fd in fds[:1]:
                os.close(fd)
            raise
        return dict(region_size=region, buffer_capacity=capacity, buffer_stride=stride, buffer_count=count,
                    max_in_flight=max_in_flight, subscriber_id=sub_id), fd

    # ---- frames ---------------------------------------------------------
    def fileno(self) -> int:
        """The socket's descriptor: readable when a frame (or the end) is
        waiting, for select/poll/asyncio loops."""
        return self._sock.fileno()

    @property
    def held(self) -> int:
        """Frames handed out and not yet released (arrays alive)."""
        return len(self._held)

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
        while True:
            if self._eof:
                raise EndOfStream(f"{self.path}: the server ended the stream")
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([self._sock], [], [], wait)[0]:
                return None
            try:
                data = self._sock.recv(64)
            except (ConnectionResetError, OSError):
                data = None
            if not data and self._peer_closed(data):
                self._eof = True
                continue
            frame = self._frame(data)
            if frame is not None:
                return frame
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _peer_closed(self, data: Optional[bytes]) -> bool:
        if data is None:
            return True
        p = select.poll()
        p.register(self._sock, select.POLLIN | select.POLLRDHUP)
        ev = p.poll(0)
        return bool(ev) and bool(ev[0][1] & (select.POLLHUP | select.POLLRDHUP | select.POLLERR))

    def _frame(self, data: bytes) -> Optional[FrameBuffer]:
        if len(data) != _FRAME.size:
            self.bad_messages += 1
            return None
        magic, version, kind, slot, reserved, sequence, offset, size, ts = _FRAME.unpack(data)
        if (magic, version, kind, reserved) != (MAGIC, PROTOCOL_VERSION, TYPE_FRAME, 0) or \
                slot >= self.hello["max_in_flight"]:
            self.bad_messages += 1
            return None
        if self._last_sequence is not None and sequence > self._last_sequence + 1:
            self.skipped += sequence - self._last_sequence - 1
        self._last_sequence = sequence if self._last_sequence is None else max(sequence, self._last_sequence)
        token = (slot, sequence)
        if size == 0 or offset + size > self.region_size:
            self.refused += 1
            self._send_done(token)  # the server still holds it for us: let it go
            return None
        self._held[token] = True
        try:
            frame = FrameBuffer(self.base_address + offset, size, keep=self, on_release=self._release, token=token,
                                dtype=self.dtype, shape=self.shape, number=sequence, timestamp_ns=ts,
                                sequence=sequence)
        except ValueError:
            self.refused += 1
            self._release(token)
            return None
        self.received += 1
        return frame

    def _release(self, token: Tuple[int, int]) -> None:
        # dict.pop is atomic under the GIL: exactly one caller sends "done".
        if self._held.pop(token, None) is None:
            return
        self.released += 1
        self._send_done(token)
        if self._closed and not self._held:
            self._sock.close()

    def _send_done(self, token: Tuple[int, int]) -> None:
        slot, sequence = token
        try:
            with self._send_lock:
                self._sock.send(_DONE.pack(MAGIC, PROTOCOL_VERSION, TYPE_DONE, slot, 0, sequence))
        except OSError:
            pass  # the server is gone: it let the buffer go itself

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

    def close(self) -> None:
        """Stops receiving. Frames still held stay held (and their memory
        mapped) until their arrays are garbage; the connection closes with
        the last of them. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self._held:
            self._sock.close()

    def __enter__(self) -> "Subscriber":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daq_pool.shm.Subscriber {self.path!r} {self.counters()}>"
