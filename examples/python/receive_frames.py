#!/usr/bin/env python3
"""Receives the frames of `frame_pipeline --publish` (daq_pool/zmq.hpp's wire
format) with pyzmq and numpy, and checks every one of them.

Each frame is one ZeroMQ message of two parts:
  1. a 32-byte little-endian header:
       offset 0  4 bytes  magic b"DAQZ"
              4  u8       version (1)
              5  u8       checksum kind (0 none, 1 sampled, 2 full)
              6  u16      flags (bit 0: end of stream; bit 1: shared numbering,
                          i.e. frames dealt out among several PULL receivers)
              8  u64      frame number
             16  u32      payload bytes
             20  u32      payload checksum
             24  u64      timestamp, ns since the Unix epoch (0: unknown)
  2. the payload.
The payload is viewed in place, as a numpy array over the message pyzmq
received (recv_multipart(copy=False), np.frombuffer): no copy is made.

The full format: include/daq_pool/zmq/wire.hpp and docs/zmq.md.

usage: receive_frames.py --connect=ENDPOINT [--mode=pull|sub] [--frames=N]
           [--duration=S] [--idle-timeout=S] [--hwm=N] [--max-fps=R]
           [--verify=pattern|checksum] [--server-key=FILE --key=FILE]
           [--max-frame-bytes=N] [--allow-empty] [--json] [--quiet]
       receive_frames.py --gen-key=BASE
With --server-key (the sender's public key file) and --key (this receiver's
secret key file), both in ZeroMQ's certificate format, the stream is CURVE
encrypted and the sender admits this receiver only if its public key is in
the sender's allow-list.
Exit codes: 0 every frame good; 1 a bad frame; 2 bad arguments or setup;
3 no frame received (unless --allow-empty).
Run with /usr/bin/python3 on Debian (python3-zmq python3-numpy).
"""
import argparse
import collections
import errno
import json
import os
import signal
import socket
import struct
import sys
import time

import numpy as np
import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

# ---------------------------------------------------------------- the wire --

MAGIC = b"DAQZ"
VERSION = 1
HEADER = struct.Struct("<4sBBHQIIQ")  # magic, version, kind, flags, number, size, checksum, timestamp
assert HEADER.size == 32
CHECKSUM_NONE, CHECKSUM_SAMPLED, CHECKSUM_FULL = 0, 1, 2
FLAG_END_OF_STREAM = 1
FLAG_SHARED_NUMBERING = 2
PAGE_WORDS, SAMPLE_WORDS = 512, 8  # sampled: the first 8 words of every 512 (64 B of every 4 KiB)
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _fletcher(words, extra=()):
    """a = sum, b = sum of the running a, over `words` then `extra`, mod 2^64."""
    a = int(words.sum(dtype=np.uint64)) if words.size else 0
    b = int(np.cumsum(words, dtype=np.uint64).sum(dtype=np.uint64)) if words.size else 0
    for e in extra:
        a = (a + e) & M64
        b = (b + a) & M64
    return a, b


def wire_checksum(payload, kind):
    """The header's checksum of `payload` (a buffer), as daq_pool/zmq.hpp's
    payload_checksum computes it."""
    n = len(payload)
    if kind == CHECKSUM_NONE or n == 0:
        return 0
    whole, tail = divmod(n, 8)
    w = np.frombuffer(payload, dtype="<u8", count=whole)
    extra = []
    if kind == CHECKSUM_FULL:
        sel = w
        if tail:
            extra.append(int.from_bytes(bytes(payload[whole * 8:]), "little"))
    else:
        pages = whole // PAGE_WORDS
        sel = np.concatenate((w[:pages * PAGE_WORDS].reshape(pages, PAGE_WORDS)[:, :SAMPLE_WORDS].ravel(),
                              w[pages * PAGE_WORDS:pages * PAGE_WORDS + SAMPLE_WORDS]))
        if tail:  # the zero-padded last word: sampled, or added as the last word, once either way
            extra.append(int.from_bytes(bytes(payload[whole * 8:]), "little"))
        elif (whole - 1) % PAGE_WORDS >= SAMPLE_WORDS:
            extra.append(int(w[whole - 1]))
    a, b = _fletcher(sel, extra)
    c = (a ^ (b * GOLDEN)) & M64
    return (c ^ (c >> 32)) & 0xFFFFFFFF


def encode_header(number, payload_bytes, checksum, kind=CHECKSUM_SAMPLED, flags=0, timestamp_ns=0, version=VERSION):
    return HEADER.pack(MAGIC, version, kind, flags, number, payload_bytes, checksum, timestamp_ns)


def decode_header(part):
    """(fields dict, None) or (None, reason)."""
    if len(part) < 5:
        return None, "header part too short for the magic and version"
    if bytes(part[:4]) != MAGIC:
        return None, 'header part does not start with the magic "DAQZ"'
    if part[4] != VERSION:
        return None, "unsupported wire format version"
    if len(part) != HEADER.size:
        return None, "header part is not 32 bytes"
    _, version, kind, flags, number, size, checksum, ts = HEADER.unpack(bytes(part))
    if kind > CHECKSUM_FULL:
        return None, "unknown checksum kind"
    return {"version": version, "kind": kind, "flags": flags, "number": number, "size": size,
            "checksum": checksum, "timestamp_ns": ts}, None


# ------------------------------------------------ the demo's frame pattern --
# examples/frame_pipeline/frame_pattern.hpp: a 32-byte header (magic
# "DAQFRAME", frame number, frame size, checksum) and payload words
# w[i] = mix(number) + i * STEP (mod 2^64), little-endian.

PATTERN_MAGIC = 0x454D415246514144
STEP = 0xD6E8FEB86659FD93
# One base array per frame size seen, the most recent few only: a sender (or
# a stranger) sending many sizes must not grow this without bound.
_BASE_CACHE_SIZES = 4
_base_cache = collections.OrderedDict()


def _mix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def _expected_words(number, words):
    base = _base_cache.get(words)
    if base is None:
        base = _base_cache[words] = np.arange(words, dtype=np.uint64) * np.uint64(STEP)
        while len(_base_cache) > _BASE_CACHE_SIZES:
            _base_cache.popitem(last=False)
    else:
        _base_cache.move_to_end(words)
    return base + np.uint64(_mix(number))  # wraps mod 2^64, like the C++ side


def _tail_bytes(number, words, tail):
    return ((_mix(number) + words * STEP) & M64).to_bytes(8, "little")[:tail]


def pattern_frame(number, size):
    """Frame `number` of `size` bytes, exactly as the demo's sensor makes it."""
    words, tail = divmod(size - 32, 8)
    w = _expected_words(number, words)
    t = _tail_bytes(number, words, tail)
    a, b = _fletcher(w, [int.from_bytes(t, "little")] if tail else [])
    return struct.pack("<QQQQ", PATTERN_MAGIC, number, size, (a ^ (b * GOLDEN)) & M64) + w.tobytes() + t


def verify_pattern(payload):
    """None if `payload` (a buffer) is a frame of the demo's pattern, else why not."""
    n = len(payload)
    if n < 32:
        return "shorter than its header"
    magic, number, size, checksum = struct.unpack_from("<QQQQ", payload, 0)
    if magic != PATTERN_MAGIC:
        return "header magic is wrong"
    if size != n:
        return "size differs from the header's"
    words, tail = divmod(n - 32, 8)
    w = np.frombuffer(payload, dtype="<u8", count=words, offset=32)  # a view of the message: no copy
    expected = _expected_words(number, words)
    if not np.array_equal(w, expected):
        first = int(np.argmax(w != expected))
        return f"payload differs from the sensor's pattern (byte offset {32 + 8 * first})"
    extra = []
    if tail:
        t = bytes(payload[32 + 8 * words:])
        if t != _tail_bytes(number, words, tail):
            return f"payload differs from the sensor's pattern (byte offset {32 + 8 * words})"
        extra.append(int.from_bytes(t, "little"))
    a, b = _fletcher(w, extra)
    if (a ^ (b * GOLDEN)) & M64 != checksum:
        return "payload checksum differs from the header's"
    return None


# ---------------------------------------------------------------- receive --

def check_message(parts):
    """(header fields, payload buffer, None) for a valid frame, else (header or None, None, reason)."""
    header, why = decode_header(parts[0].buffer)
    if why:
        return None, None, why
    if len(parts) == 1:
        return header, None, "message has a header but no payload part"
    if len(parts) > 2:
        return header, None, "message has more than two parts"
    payload = parts[1].buffer  # a memoryview of the received message
    if len(payload) != header["size"]:
        return header, None, "payload size differs from the header's"
    if header["flags"] & FLAG_END_OF_STREAM and len(payload):
        return header, None, "end-of-stream message with a payload"
    if wire_checksum(payload, header["kind"]) != header["checksum"]:
        return header, None, "payload checksum differs from the header's"
    return header, payload, None


def parse_args(argv):
    class Parser(argparse.ArgumentParser):
        def error(self, message):  # exit 2 with the flag named, like the C++ receiver
            sys.stderr.write(f"receive_frames.py: {message}\n")
            sys.exit(2)

    def ranged(kind, lo, hi, lo_open=False, what="a number"):
        def parse(text):
            try:
                v = kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"got {text!r}; allowed: {what}")
            if v != v or v < lo or v > hi or (lo_open and v == lo):
                raise argparse.ArgumentTypeError(f"got {text!r}; allowed: {what}")
            return v
        return parse

    p = Parser(description="Receive and check the frames of frame_pipeline --publish.")
    p.add_argument("--connect", help="tcp://HOST:PORT or ipc://PATH of the sender (required)")
    p.add_argument("--mode", choices=["pull", "sub"], default="pull")
    p.add_argument("--frames", type=ranged(int, 1, 10**12, what="an integer in [1, 1e12]"), default=0)
    p.add_argument("--duration", type=ranged(float, 0, 86400, True, "seconds in (0, 86400]"), default=0)
    p.add_argument("--idle-timeout", type=ranged(float, 0, 86400, True, "seconds in (0, 86400]"), default=10)
    p.add_argument("--hwm", type=ranged(int, 0, 10**6, what="frames in [0, 1000000]"), default=4)
    p.add_argument("--max-fps", type=ranged(float, 0, 1e6, what="frames/s in [0, 1e6]"), default=0)
    p.add_argument("--verify", choices=["pattern", "checksum"], default="pattern")
    p.add_argument("--server-key", help="the sender's public key file (NAME.key): CURVE; needs --key")
    p.add_argument("--key", help="this receiver's secret key file (NAME.key_secret)")
    p.add_argument("--gen-key", metavar="BASE", help="write BASE.key and BASE.key_secret, print the public key, exit")
    p.add_argument("--max-frame-bytes", type=ranged(int, 64, 2**32 - 1, what="bytes in [64, 4294967295]"),
                   default=64 << 20)
    p.add_argument("--allow-empty", action="store_true", help="exit 0 even if no frame arrived")
    p.add_argument("--json", action="store_true")
    p.add_argument("--quiet", action="store_true")
    opt = p.parse_args(argv)
    if opt.gen_key:
        return opt
    if not opt.connect:
        p.error("--connect: missing; allowed: tcp://HOST:PORT or ipc://PATH")
    if bool(opt.server_key) != bool(opt.key):
        p.error(f"{'--key' if opt.key else '--server-key'} given without {'--server-key' if opt.key else '--key'}; "
                "allowed: both (CURVE: the sender's public key file and this receiver's secret key file) or neither")
    return opt


def gen_key(base):
    """Writes BASE.key and BASE.key_secret (ZeroMQ's certificate format)."""
    directory, name = os.path.split(os.path.abspath(base))
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)
    public, _ = zmq.auth.load_certificate(public_file)
    print(f"wrote {public_file} (public: give it to the other side) and {secret_file} (keep it here)\n"
          f"public key {public.decode()}")
    return 0


def unresolvable_host(endpoint):
    """A sentence if tcp://HOST:PORT names a HOST that does not resolve (zmq_connect
    accepts it and retries in silence), else None."""
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


PROTOCOL_ERROR_MECHANISM_MISMATCH = 0x11000002
PROTOCOL_ERROR_CRYPTOGRAPHIC = 0x11000001
PROTOCOL_ERROR_KEY_EXCHANGE = 0x10000003


def describe_handshake_failure(event, value, endpoint):
    """Why the handshake with the sender failed, in words (as daq_pool/zmq/monitor.hpp says it)."""
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


def failure_rank(event):
    """How much a handshake failure says: a receiver keeps the most telling one."""
    return {zmq.EVENT_HANDSHAKE_FAILED_AUTH: 3, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: 2}.get(event, 1)


def main(argv):
    opt = parse_args(argv)
    if opt.gen_key:
        try:
            return gen_key(opt.gen_key)
        except OSError as e:
            sys.stderr.write(f"receive_frames.py: --gen-key={opt.gen_key}: {e}\n")
            return 2
    keys = None
    if opt.key:
        try:
            public, secret = zmq.auth.load_certificate(opt.key)
            if not secret:
                raise ValueError(f"key file {opt.key}: no secret-key (this is a public certificate; give the "
                                 "NAME.key_secret file)")
            server_public, _ = zmq.auth.load_certificate(opt.server_key)
            keys = (public, secret, server_public)
        except (OSError, ValueError) as e:
            which = "--key" if keys is None and "secret" in str(e) else "--server-key"
            sys.stderr.write(f"receive_frames.py: {which}: {e}\n")
            return 2
    why = unresolvable_host(opt.connect)
    if why:
        sys.stderr.write(f"receive_frames.py: --connect={opt.connect}: {why}\n")
        return 2
    info = sys.stderr if opt.json else sys.stdout
    stop = {"signal": False}

    def on_signal(*_):
        stop["signal"] = True
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    ctx = zmq.Context()
    sock = ctx.socket(zmq.SUB if opt.mode == "sub" else zmq.PULL)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVHWM, opt.hwm)
    sock.setsockopt(zmq.RCVTIMEO, 100)
    # A peer's length prefix may not make libzmq allocate more than this (+64:
    # CURVE's per-message overhead, as daq_pool::zmq::max_message_bytes).
    sock.setsockopt(zmq.MAXMSGSIZE, max(opt.max_frame_bytes, HEADER.size) + 64)
    # A vanished sender's host is noticed within seconds: TCP keepalive only,
    # no ZMTP heartbeats (on a receiver that reads slower than frames arrive
    # they crash libzmq 4.3.4; see daq_pool::zmq::set_liveness).
    sock.setsockopt(zmq.TCP_KEEPALIVE, 1)
    sock.setsockopt(zmq.TCP_KEEPALIVE_IDLE, 5)
    sock.setsockopt(zmq.TCP_KEEPALIVE_INTVL, 2)
    sock.setsockopt(zmq.TCP_KEEPALIVE_CNT, 3)
    if keys:
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = keys
    if opt.mode == "sub":
        sock.setsockopt(zmq.SUBSCRIBE, b"")
    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                      zmq.EVENT_HANDSHAKE_FAILED_AUTH)
    try:
        sock.connect(opt.connect)
    except zmq.ZMQError as e:
        sys.stderr.write(f"receive_frames.py: --connect={opt.connect}: zmq_connect({opt.connect}): {e.strerror}; "
                         "allowed: tcp://HOST:PORT or ipc://PATH\n")
        monitor.close()
        sock.close()
        ctx.term()
        return 2
    if not opt.quiet:
        print(f"receive_frames.py: {'subscribing' if opt.mode == 'sub' else 'pulling'} from {opt.connect} "
              f"({'CURVE, encrypted' if keys else 'plain TCP, unencrypted'}), "
              f"verifying {'the pattern of every byte' if opt.verify == 'pattern' else 'checksums'}",
              file=info, flush=True)

    t = {"good": 0, "bad": 0, "bytes": 0, "gaps": 0, "missing": 0, "restarts": 0, "others_share": 0,
         "first": None, "last": None, "last_shared": False, "eos": False, "sender_frames": None, "first_bad": None}
    refusal, refusal_rank = None, 0

    def jump(n, shared):
        """A jump forward from the last frame to `n`: lost, unless the sender shared its numbering."""
        if shared or t["last_shared"]:
            t["others_share"] += n - t["last"] - 1
        else:
            t["gaps"] += 1
            t["missing"] += n - t["last"] - 1

    def bad(why):
        if t["bad"] == 0:
            t["first_bad"] = why
        t["bad"] += 1

    start = last_message = time.monotonic()
    next_print, printed_good, printed_at = start + 1, 0, start
    stop_reason = None
    while True:
        now = time.monotonic()
        while monitor.poll(0):
            ev = recv_monitor_message(monitor)
            why = describe_handshake_failure(ev["event"], ev["value"], ev["endpoint"].decode(errors="replace"))
            if why != refusal:
                sys.stderr.write(f"receive_frames.py: {why}\n")
                sys.stderr.flush()
            if failure_rank(ev["event"]) >= refusal_rank:
                refusal, refusal_rank = why, failure_rank(ev["event"])
        if stop["signal"]:
            stop_reason = "signal"
        elif opt.frames and t["good"] >= opt.frames:
            stop_reason = "frames"
        elif opt.duration and now - start >= opt.duration:
            stop_reason = "duration"
        elif now - last_message >= opt.idle_timeout:
            stop_reason = "idle"
        elif t["eos"]:
            stop_reason = "end_of_stream"
        if stop_reason:
            break
        if not opt.quiet and now >= next_print:
            dt = now - printed_at
            print(f"{now - start:6.1f} s  {t['good']} frames  {(t['good'] - printed_good) / dt if dt else 0:.1f} fps  "
                  f"{t['bytes'] / (now - start) / 1e9:.3f} GB/s  gaps {t['gaps']} ({t['missing']} missing)  "
                  f"bad {t['bad']}", file=info, flush=True)
            printed_good, printed_at, next_print = t["good"], now, next_print + 1
        try:
            parts = sock.recv_multipart(copy=False)  # zmq.Frame objects: the received memory, not copies
        except zmq.Again:
            continue
        except zmq.ZMQError as e:
            if e.errno == zmq.EINTR:
                continue
            sys.stderr.write(f"receive_frames.py: receiving failed: {e.strerror}\n")
            stop_reason = "error"
            break
        last_message = time.monotonic()
        header, payload, why = check_message(parts)
        if why:
            bad(f"message of {len(parts)} part(s): {why}")
            continue
        n = header["number"]
        shared = bool(header["flags"] & FLAG_SHARED_NUMBERING)
        if header["flags"] & FLAG_END_OF_STREAM:
            t["eos"], t["sender_frames"] = True, n
            if t["last"] is not None and n > t["last"] + 1:
                jump(n, shared)
            continue
        if opt.verify == "pattern":
            why = verify_pattern(payload)
            if why:
                bad(f"frame {n}: {why}")
                continue
        t["good"] += 1
        t["bytes"] += len(payload)
        if t["last"] is None:
            t["first"] = n
        elif n > t["last"] + 1:
            jump(n, shared)
        elif n <= t["last"]:
            t["restarts"] += 1
        t["last"], t["last_shared"] = n, shared
        del parts, payload  # let the messages go before pacing
        if opt.max_fps > 0:
            due = start + t["good"] / opt.max_fps
            while time.monotonic() < due and not stop["signal"]:
                time.sleep(0.005)
    elapsed = time.monotonic() - start
    sock.disable_monitor()
    monitor.close()
    sock.close()
    ctx.term()

    empty = t["good"] == 0 and not opt.allow_empty
    code = 1 if t["bad"] or stop_reason == "error" else 3 if empty else 0
    if empty:
        sys.stderr.write(f"receive_frames.py: no frame received from {opt.connect}{': ' + refusal if refusal else ''} "
                         "(exit 3; --allow-empty accepts that)\n")
    fps = t["good"] / elapsed if elapsed > 0 else 0.0
    gbps = t["bytes"] / elapsed / 1e9 if elapsed > 0 else 0.0
    if opt.json:
        print(json.dumps({
            "endpoint": opt.connect, "mode": opt.mode, "verify": opt.verify, "stop_reason": stop_reason,
            "elapsed_s": round(elapsed, 3), "frames_received": t["good"], "bad_frames": t["bad"],
            "first_bad": t["first_bad"], "gaps": t["gaps"], "missing_frames": t["missing"],
            "restarts": t["restarts"], "first_frame": t["first"], "last_frame": t["last"],
            "end_of_stream": t["eos"], "sender_frames": t["sender_frames"], "bytes": t["bytes"],
            "frames_per_s": round(fps, 3), "gb_per_s": round(gbps, 6), "others_share": t["others_share"],
            "security": "curve" if keys else "plain", "refusal": refusal, "exit_code": code}, indent=2))
    else:
        print(f"summary: {elapsed:.2f} s, stopped by {stop_reason}")
        print(f"  frames received      {t['good']} good, {t['bad']} bad")
        if t["first"] is not None:
            print(f"  frame numbers        {t['first']} .. {t['last']}")
        restarts = f", {t['restarts']} restarts of the numbering" if t["restarts"] else ""
        print(f"  gaps                 {t['gaps']}  ({t['missing']} frames missing){restarts}")
        if t["others_share"]:
            print(f"  other receivers      {t['others_share']} frames went to the other PULL receivers (not lost)")
        if t["eos"]:
            print(f"  end of stream        the sender numbered {t['sender_frames']} frames")
        print(f"  throughput           {fps:.1f} frames/s  {gbps:.3f} GB/s")
        if t["bad"]:
            print(f"  first bad frame      {t['first_bad']}")
        print(f"result: {'PASS' if code == 0 else 'FAIL (no frame received)' if code == 3 else 'FAIL (bad frames)'}")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
