"""Receiver of daq_pool's ZeroMQ frame stream (daq_pool::zmq::FrameSender,
``frame_pipeline --publish``): frames as read-only numpy arrays over the
message memory libzmq received, no copy. Needs pyzmq.

    from daq_pool.zmq import Receiver
    with Receiver("tcp://127.0.0.1:5555", frame_bytes=8 << 20) as rx:
        frame = rx.receive(timeout=1.0)       # read-only numpy array, or None

The wire format (include/daq_pool/zmq/wire.hpp, docs/zmq.md): one
ZeroMQ message of two parts per frame, a 32-byte little-endian header
(magic "DAQZ", version 1, checksum kind, flags, frame number, payload
bytes, payload checksum, timestamp) and the payload. Every message is
checked (header, parts, size, checksum); a bad one is counted by reason and
skipped (or raised, ``strict=True``). Gaps in the numbering are counted as
lost frames, except where the sender marks its numbering shared among
several PULL receivers (flag bit 1).

ZMQ_MAXMSGSIZE is set from the frame size the caller expects, so that a
peer cannot make this process allocate more: libzmq drops the connection
on a larger message (counted in ``dropped_connections``; see `last_error`).
"""
from __future__ import annotations

import errno
import os
import socket
import struct
import time
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import numpy as np
import zmq

from ._checksum import fletcher_value
from ._frame import FrameBuffer, address_of
from .errors import EndpointError, FrameRefused, VersionError

__all__ = ["Receiver", "EndOfStream", "wire_checksum", "encode_header", "decode_header", "WIRE_VERSION",
           "load_curve_key", "write_curve_keypair", "unresolvable_host", "describe_handshake_failure"]

# ---- the wire format (daq_pool/zmq/wire.hpp) --------------------------------
MAGIC = b"DAQZ"
WIRE_VERSION = 1
HEADER = struct.Struct("<4sBBHQIIQ")  # magic, version, kind, flags, number, size, checksum, timestamp
HEADER_BYTES = 32
assert HEADER.size == HEADER_BYTES
CHECKSUM_NONE, CHECKSUM_SAMPLED, CHECKSUM_FULL = 0, 1, 2
FLAG_END_OF_STREAM, FLAG_SHARED_NUMBERING = 1, 2
PAGE_WORDS, SAMPLE_WORDS = 512, 8
CURVE_OVERHEAD = 64  # bytes a CURVE MESSAGE command adds to a part (33), rounded up
# ZMTP's protocol-error codes a failed handshake reports (zmq.h ZMQ_PROTOCOL_ERROR_*).
PROTOCOL_ERROR_CRYPTOGRAPHIC = 0x11000001
PROTOCOL_ERROR_MECHANISM_MISMATCH = 0x11000002
PROTOCOL_ERROR_KEY_EXCHANGE = 0x10000003


class EndOfStream(Exception):
    """The sender's end-of-stream message arrived (``number`` is the count
    of frames it numbered)."""

    def __init__(self, message: str, number: int) -> None:
        super().__init__(message)
        self.number = number


def wire_checksum(payload: Any, kind: int) -> int:
    """The header's checksum of `payload` (any buffer), as
    daq_pool::zmq::payload_checksum computes it. Never copies the payload
    (the sampled words are gathered: 1/64 of it)."""
    n = len(payload) if not isinstance(payload, np.ndarray) else payload.nbytes
    if kind == CHECKSUM_NONE or n == 0:
        return 0
    whole, tail = divmod(n, 8)
    raw = np.frombuffer(payload, dtype=np.uint8)
    w = raw[: whole * 8].view("<u8")
    extra = []
    tail_word = int.from_bytes(raw[whole * 8:].tobytes(), "little") if tail else None
    if kind == CHECKSUM_FULL:
        sel = w
        if tail:
            extra.append(tail_word)
    else:
        pages = whole // PAGE_WORDS
        sel = np.concatenate((w[: pages * PAGE_WORDS].reshape(pages, PAGE_WORDS)[:, :SAMPLE_WORDS].ravel(),
                              w[pages * PAGE_WORDS: pages * PAGE_WORDS + SAMPLE_WORDS]))
        if tail:  # the zero-padded last word: sampled, or added as the last word; once either way
            extra.append(tail_word)
        elif (whole - 1) % PAGE_WORDS >= SAMPLE_WORDS:
            extra.append(int(w[whole - 1]))
    c = fletcher_value(sel, extra)
    return (c ^ (c >> 32)) & 0xFFFFFFFF


def encode_header(number: int, payload_bytes: int, checksum: int, kind: int = CHECKSUM_SAMPLED, flags: int = 0,
                  timestamp_ns: int = 0, version: int = WIRE_VERSION) -> bytes:
    """The 32 header bytes (for tests and Python senders)."""
    return HEADER.pack(MAGIC, version, kind, flags, number, payload_bytes, checksum, timestamp_ns)


def decode_header(part: Any) -> Tuple[Optional[Dict[str, int]], Optional[str]]:
    """(fields, None) for a valid header part, else (None, the reason), in
    the C++ receiver's order: magic, version, size, checksum kind."""
    b = bytes(part[:HEADER_BYTES + 1])
    if len(b) < 5:
        return None, "header part too short for the magic and version"
    if b[:4] != MAGIC:
        return None, 'header part does not start with the magic "DAQZ"'
    if b[4] != WIRE_VERSION:
        return None, f"unsupported wire format version {b[4]} (this package reads {WIRE_VERSION})"
    if len(part) != HEADER_BYTES:
        return None, "header part is not 32 bytes"
    _, version, kind, flags, number, size, checksum, ts = HEADER.unpack(b)
    if kind > CHECKSUM_FULL:
        return None, "unknown checksum kind"
    return {"version": version, "kind": kind, "flags": flags, "number": number, "size": size,
            "checksum": checksum, "timestamp_ns": ts}, None


def load_curve_key(key: Union[str, bytes, os.PathLike], secret: bool = False) -> bytes:
    """A CURVE key as the 40-character Z85 text: the text itself, or read
    from a certificate file (ZeroMQ's zcert format, ``public-key = "..."``
    / ``secret-key = "..."``, as zmq.auth.create_certificates writes)."""
    if isinstance(key, bytes) and len(key) == 40:
        return key
    if isinstance(key, str) and len(key) == 40 and not os.path.exists(key):
        return key.encode("ascii")
    path = os.fspath(key)
    import zmq.auth
    try:
        public, secret_key = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise ValueError(f"CURVE key {path!r}: not a 40-character Z85 key nor a readable certificate ({e})") from e
    if secret:
        if not secret_key:
            raise ValueError(f"CURVE key {path!r}: the certificate has no secret-key (a public certificate?)")
        return secret_key
    return public


def write_curve_keypair(base: Union[str, os.PathLike]) -> Tuple[str, str, bytes]:
    """Writes a new CURVE key pair as BASE.key (public) and BASE.key_secret
    (secret, mode 0600), ZeroMQ's certificate format, as
    ``frame_receiver --gen-key`` does. Returns (public file, secret file,
    the public key in Z85). Raises OSError if the files cannot be written."""
    import zmq.auth
    directory, name = os.path.split(os.path.abspath(os.fspath(base)))
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)
    public, _ = zmq.auth.load_certificate(public_file)
    return public_file, secret_file, public


def unresolvable_host(endpoint: str) -> Optional[str]:
    """Why tcp://HOST:PORT names a HOST that does not resolve, in words, or
    None (another transport, a wildcard, or a host that resolves).
    zmq_connect accepts such a name and retries in silence forever; this
    says it at once. Blocks for the name lookup."""
    if not endpoint.startswith("tcp://") or ":" not in endpoint[6:]:
        return None
    host = endpoint[6:endpoint.rfind(":")].split(";")[-1].strip("[]")
    if not host or host == "*":
        return None
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        return (f"host '{host}' does not resolve ({e.strerror}); allowed: tcp://HOST:PORT with HOST an IP address "
                "or a name this machine resolves")
    return None


def describe_handshake_failure(event: int, value: int, endpoint: str) -> str:
    """Why a handshake with the sender failed, in words (as the C++
    daq_pool/zmq/monitor.hpp says it), from a socket monitor's event and
    value. Pure."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return (f"the sender at {endpoint} refused this receiver's CURVE key (ZAP status {value}): its public key "
                "is not in the sender's allow-list")
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if value == PROTOCOL_ERROR_MECHANISM_MISMATCH:
            return (f"handshake with the sender at {endpoint} failed: security mismatch (one side uses CURVE, the "
                    "other plain TCP; give both the keys, or neither)")
        if value in (PROTOCOL_ERROR_CRYPTOGRAPHIC, PROTOCOL_ERROR_KEY_EXCHANGE):
            return (f"handshake with the sender at {endpoint} failed: CURVE key exchange failed (is the sender's "
                    "public key the right one?)")
        return (f"handshake with the sender at {endpoint} failed: protocol error 0x{value:08x} (not a ZeroMQ peer "
                "of this version, or a security mismatch)")
    if value in (errno.EPIPE, errno.ECONNRESET):
        return (f"handshake with the sender at {endpoint} failed: {zmq.strerror(value)} (the peer hung up during the "
                "handshake: a security mismatch, e.g. the sender requires CURVE: give --server-key and --key)")
    return f"handshake with the sender at {endpoint} failed: {zmq.strerror(value)}"


def _failure_rank(event: int) -> int:
    """How much a handshake failure says: a receiver keeps the most telling one."""
    return {zmq.EVENT_HANDSHAKE_FAILED_AUTH: 3, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: 2}.get(event, 1)


class Receiver:
    """Receives and checks the frames of one daq_pool ZeroMQ stream.

    `endpoint`: tcp://HOST:PORT or ipc://PATH of the sender (connected; or
    bound with ``bind=True``). `mode`: "pull" (PUSH senders) or "sub" (PUB
    senders). `frame_bytes`: the payload size expected (also the
    ZMQ_MAXMSGSIZE limit unless `max_frame_bytes` says otherwise; None: no
    limit). A frame of another size than `frame_bytes` is refused when
    `exact_size` is set. `dtype`/`shape` view the payload (a frame whose
    payload is smaller than `shape` needs is refused). CURVE: give
    `curve_server_key` (the sender's public key, text or certificate file);
    `curve_public_key`/`curve_secret_key` (or one secret certificate
    file in `curve_secret_key`) are this client's, an ephemeral pair if
    omitted. `verify(payload)` (optional) checks each frame's content
    after the wire checks: it gets a read-only uint8 array over the
    payload and returns None or why the frame is bad (counted like any bad
    message, e.g. `daq_pool.pattern.verify`). `on_refusal(text)`
    (optional) is called, on the receiving thread, with each new
    handshake failure in words (`refusal` keeps the most telling one).
    `keepalive`: TCP keepalive (5 s idle, 3 probes 2 s apart), so that a
    sender whose host vanished is noticed within seconds; ZMTP heartbeats
    are not used (on a receiver that reads slower than frames arrive they
    crash libzmq 4.3.4; see daq_pool::zmq::set_liveness). An endpoint
    that cannot be connected (or bound), or whose host does not resolve,
    raises EndpointError (a ValueError).

    Thread-safety: one thread receives (like the socket); arrays may be
    dropped on any thread.
    """

    def __init__(self, endpoint: str, *, mode: str = "pull", bind: bool = False,
                 frame_bytes: Optional[int] = None, max_frame_bytes: Optional[int] = None, exact_size: bool = False,
                 dtype: Any = np.uint8, shape: Optional[Tuple[int, ...]] = None, hwm: int = 4,
                 verify_checksum: bool = True, strict: bool = False,
                 curve_server_key: Optional[Union[str, bytes, os.PathLike]] = None,
                 curve_public_key: Optional[Union[str, bytes, os.PathLike]] = None,
                 curve_secret_key: Optional[Union[str, bytes, os.PathLike]] = None,
                 context: Optional[zmq.Context] = None, keepalive: bool = True,
                 verify: Optional[Callable[[np.ndarray], Optional[str]]] = None,
                 on_refusal: Optional[Callable[[str], None]] = None) -> None:
        if mode not in ("pull", "sub"):
            raise ValueError(f"mode={mode!r}: allowed: 'pull' (a PUSH sender) or 'sub' (a PUB sender)")
        for name, v in (("frame_bytes", frame_bytes), ("max_frame_bytes", max_frame_bytes)):
            if v is not None and not 0 <= v <= 0xFFFFFFFF:
                raise ValueError(f"{name}={v}: allowed: 0 .. 4294967295 bytes (the wire format's 32-bit size)")
        self.endpoint = endpoint
        self.mode = mode
        self.frame_bytes = frame_bytes
        self.max_frame_bytes = max_frame_bytes if max_frame_bytes is not None else frame_bytes
        self.exact_size = exact_size
        self.dtype = np.dtype(dtype)
        self.shape = shape
        self.verify_checksum = verify_checksum
        self.strict = strict
        self._verify = verify
        self._on_refusal = on_refusal
        self.received = 0  #: good frames handed out
        self.bytes_received = 0  #: payload bytes of those frames
        self.bad = 0  #: messages refused (see bad_reasons)
        self.bad_reasons: Dict[str, int] = {}
        self.gaps = 0  #: jumps in the numbering
        self.missing = 0  #: frames lost in those jumps (not counted where the numbering is shared)
        self.others_share = 0  #: frames numbered for the other PULL receivers of a shared numbering (not lost)
        self.restarts = 0  #: numbering went backwards (a restarted sender)
        self.first_number: Optional[int] = None  #: the first good frame's number
        self.last_number: Optional[int] = None  #: the last good frame's number
        self.refusal: Optional[str] = None  #: the most telling handshake failure so far, in words
        self._refusal_rank = 0
        self._last_shared = False
        self.dropped_connections = 0  #: connections dropped after a handshake before any frame (oversized?)
        self.released = 0
        self.end_of_stream: Optional[int] = None  #: the sender's frame count, once its end-of-stream came
        self.last_error: Optional[str] = None
        self.first_bad: Optional[str] = None  #: the first refused message, in words
        self._held: Dict[int, bool] = {}
        self._since_monitor = 0
        self._next_token = 0
        self._own_context = context is None
        self._ctx = context or zmq.Context()
        self._sock = self._ctx.socket(zmq.SUB if mode == "sub" else zmq.PULL)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.RCVHWM, hwm)
            # Reconnect quickly (default 100 ms): a sender that binds after
            # we connect, or restarts, is found within ~10 ms.
            self._sock.setsockopt(zmq.RECONNECT_IVL, 10)
            if keepalive:
                self._sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
                self._sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 5)
                self._sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 2)
                self._sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
            if curve_server_key is not None:
                if not zmq.has("curve"):
                    raise RuntimeError("curve_server_key given but this libzmq has no CURVE support")
                self._sock.curve_serverkey = load_curve_key(curve_server_key)
                if curve_secret_key is not None:
                    secret = load_curve_key(curve_secret_key, secret=True)
                    public = load_curve_key(curve_public_key if curve_public_key is not None else curve_secret_key)
                else:
                    public, secret = zmq.curve_keypair()
                self._sock.curve_publickey = public
                self._sock.curve_secretkey = secret
            if self.max_frame_bytes is not None:
                # Per message part: the payload is the largest part (the header
                # is 32). CURVE checks the limit against the encrypted part,
                # which carries 33 bytes more (command name, nonce, MAC, flags).
                extra = CURVE_OVERHEAD if curve_server_key is not None else 0
                self._sock.setsockopt(zmq.MAXMSGSIZE, max(self.max_frame_bytes, HEADER_BYTES) + extra)
            if mode == "sub":
                self._sock.setsockopt(zmq.SUBSCRIBE, b"")
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED |
                                                          zmq.EVENT_HANDSHAKE_FAILED_AUTH |
                                                          zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                                          zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            self._frames_since_handshake = 0
            self._handshaken = False
            self.auth_failures = 0  #: CURVE handshakes that failed
            if not bind:
                why = unresolvable_host(endpoint)
                if why:
                    raise EndpointError(endpoint, why)
            try:
                (self._sock.bind if bind else self._sock.connect)(endpoint)
            except zmq.ZMQError as e:
                raise EndpointError(endpoint, f"zmq_{'bind' if bind else 'connect'}({endpoint}): {e.strerror}; "
                                    "allowed: tcp://HOST:PORT or ipc://PATH") from e
        except BaseException:
            self._close_sockets()
            raise

    # ---- monitoring -------------------------------------------------------
    def _poll_monitor(self) -> None:
        from zmq.utils.monitor import recv_monitor_message
        while self._monitor.poll(0):
            ev = recv_monitor_message(self._monitor)
            kind = ev["event"]
            if kind == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshaken = True
                self._frames_since_handshake = 0
            elif kind == zmq.EVENT_DISCONNECTED:
                if self._handshaken and self._frames_since_handshake == 0 and self.max_frame_bytes is not None:
                    self.dropped_connections += 1
                    self.last_error = (f"{self.endpoint}: the connection was dropped before any frame arrived: the "
                                       f"sender's messages are probably larger than max_frame_bytes="
                                       f"{self.max_frame_bytes} (ZMQ_MAXMSGSIZE), or it went away")
                self._handshaken = False
            elif kind in (zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                          zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL):
                self.auth_failures += 1
                self.last_error = (f"{self.endpoint}: the handshake failed (event {zmq.Event(kind).name}, value "
                                   f"{ev['value']}): wrong CURVE server key, or the sender requires CURVE")
                why = describe_handshake_failure(kind, ev["value"], ev["endpoint"].decode(errors="replace"))
                if why != self.refusal and self._on_refusal is not None:
                    self._on_refusal(why)
                if _failure_rank(kind) >= self._refusal_rank:
                    self.refusal, self._refusal_rank = why, _failure_rank(kind)

    # ---- frames -----------------------------------------------------------
    def fileno(self) -> int:
        """ZMQ_FD of the socket, for select/poll/asyncio loops. It is
        edge-triggered (ZeroMQ's rule): when it turns readable, call
        ``receive(timeout=0)`` until it returns None."""
        return self._sock.getsockopt(zmq.FD)

    @property
    def held(self) -> int:
        """Frames handed out whose arrays are still alive."""
        return len(self._held)

    def receive(self, timeout: Optional[float] = None) -> Optional[np.ndarray]:
        """The next good frame as a read-only numpy array over the received
        message, or None if none came within `timeout` seconds (None: wait
        forever). Raises EndOfStream at the sender's end-of-stream message,
        FrameRefused for a bad message if ``strict``."""
        frame = self.receive_frame(timeout)
        return None if frame is None else np.asarray(frame)

    def receive_frame(self, timeout: Optional[float] = None) -> Optional[FrameBuffer]:
        """Like `receive`, but the FrameBuffer (number, timestamp, release())."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            # A message already queued is taken without a poll (one system
            # call less per frame); the monitor is read while idle and every
            # 256 messages.
            try:
                parts = self._sock.recv_multipart(zmq.NOBLOCK, copy=False)  # libzmq's memory, not copies
            except zmq.Again:
                parts = None
            if parts is not None:
                self._since_monitor += 1
                if self._since_monitor >= 256:
                    self._since_monitor = 0
                    self._poll_monitor()
                frame = self._check(parts)
                if frame is not None:
                    return frame
                continue
            self._poll_monitor()
            if timeout is None:
                wait_ms = 100
            else:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000))
                wait_ms = min(wait_ms, 100)
            if not self._sock.poll(wait_ms, zmq.POLLIN):
                if deadline is not None and time.monotonic() >= deadline:
                    self._poll_monitor()
                    return None

    def _bad(self, why: str, parts: int, number: Optional[int] = None) -> None:
        """Counts a refused message: `why` the reason; the text names the
        message by its parts, or by its frame `number` (a frame that passed
        the wire checks but not `verify`)."""
        self.bad += 1
        self.bad_reasons[why] = self.bad_reasons.get(why, 0) + 1
        detail = f"message of {parts} part(s): {why}" if number is None else f"frame {number}: {why}"
        if self.first_bad is None:
            self.first_bad = detail
        text = f"{self.endpoint}: {detail}"
        self.last_error = text
        if self.strict:
            if why.startswith("unsupported wire format version"):
                raise VersionError(text)
            raise FrameRefused(text)

    def _check(self, parts: list) -> Optional[FrameBuffer]:
        header, why = decode_header(parts[0].buffer)
        if why is None and len(parts) == 1:
            why = "message has a header but no payload part"
        elif why is None and len(parts) > 2:
            why = "message has more than two parts"
        if why is not None:
            self._bad(why, len(parts))
            return None
        payload = parts[1]
        size = len(payload)
        if size != header["size"]:
            self._bad("payload size differs from the header's", 2)
            return None
        if header["flags"] & FLAG_END_OF_STREAM:
            if size:
                self._bad("end-of-stream message with a payload", 2)
                return None
            self._count_number(header["number"], header["flags"], end=True)
            self.end_of_stream = header["number"]
            raise EndOfStream(f"{self.endpoint}: the sender ended the stream after numbering {header['number']} "
                              "frames", header["number"])
        if self.exact_size and self.frame_bytes is not None and size != self.frame_bytes:
            self._bad(f"payload of {size} bytes, not the expected frame_bytes={self.frame_bytes}", 2)
            return None
        if self.verify_checksum and wire_checksum(payload.buffer, header["kind"]) != header["checksum"]:
            self._bad("payload checksum differs from the header's", 2)
            return None
        self._frames_since_handshake += 1
        view = np.frombuffer(payload.buffer, dtype=np.uint8)  # the message itself, read-only: no copy
        if self._verify is not None:
            why = self._verify(view)
            if why is not None:
                self._bad(why, 2, number=header["number"])
                return None
        address = address_of(view) if size else 0
        del view  # the FrameBuffer below holds the message; nothing else may
        token = self._next_token
        self._next_token += 1
        try:
            frame = FrameBuffer(address, size, keep=payload, on_release=self._release, token=token, dtype=self.dtype,
                                shape=self.shape, number=header["number"], timestamp_ns=header["timestamp_ns"],
                                sequence=header["number"])
        except ValueError as e:
            self._bad(f"payload of {size} bytes does not fit dtype={self.dtype} shape={self.shape}: {e}", 2)
            return None
        self._count_number(header["number"], header["flags"])
        self._held[token] = True
        self.received += 1
        self.bytes_received += size
        return frame

    def _count_number(self, n: int, flags: int, end: bool = False) -> None:
        """Counts the jump from the last good frame to `n` (a good frame, or
        the end-of-stream message's count with `end`): frames lost, or the
        other PULL receivers' share where this frame or the last one says
        the numbering is shared (flag bit 1); a step back is a restart."""
        last = self.last_number
        shared = bool(flags & FLAG_SHARED_NUMBERING)
        if last is not None:
            if n > last + 1:
                if shared or self._last_shared:
                    self.others_share += n - last - 1
                else:
                    self.gaps += 1
                    self.missing += n - last - 1
            elif n <= last and not end:
                self.restarts += 1
        if not end:
            if self.first_number is None:
                self.first_number = n
            self.last_number, self._last_shared = n, shared

    def _release(self, token: int) -> None:
        if self._held.pop(token, None) is not None:
            self.released += 1

    def __iter__(self) -> Iterator[np.ndarray]:
        """Good frames until the sender's end of stream."""
        while True:
            try:
                a = self.receive()
            except EndOfStream:
                return
            if a is not None:
                yield a

    def counters(self) -> Dict[str, Any]:
        """A snapshot of the counters (received, bad, gaps, missing, held...)."""
        self._poll_monitor()
        return dict(received=self.received, bytes_received=self.bytes_received, bad=self.bad,
                    bad_reasons=dict(self.bad_reasons), gaps=self.gaps, missing=self.missing,
                    others_share=self.others_share, restarts=self.restarts, first_number=self.first_number,
                    last_number=self.last_number, held=self.held, released=self.released,
                    dropped_connections=self.dropped_connections, auth_failures=self.auth_failures,
                    refusal=self.refusal, end_of_stream=self.end_of_stream)

    def _close_sockets(self) -> None:
        mon = getattr(self, "_monitor", None)
        if mon is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            mon.close(0)
        self._sock.close(0)
        if self._own_context:
            self._ctx.term()

    def close(self) -> None:
        """Closes the socket. Arrays already handed out stay valid: each
        keeps its own received message. Idempotent."""
        if not self._sock.closed:
            self._close_sockets()

    def __enter__(self) -> "Receiver":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daq_pool.zmq.Receiver {self.endpoint!r} {self.mode} received={self.received} bad={self.bad}>"
