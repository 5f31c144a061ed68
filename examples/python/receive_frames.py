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
received: no copy is made.

This script is the command line over the daq_pool package (python/):
daq_pool.zmq.Receiver speaks the wire format and checks every message
(header, parts, size, checksum, gaps in the numbering, ZMQ_MAXMSGSIZE,
CURVE); daq_pool.pattern checks the demo's pattern of every byte. The full
format: include/daq_pool/zmq/wire.hpp and docs/zmq.md.

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
Run with /usr/bin/python3 on Debian (python3-zmq python3-numpy). The
package: the installed daq_pool, else this checkout's python/.
"""
import argparse
import json
import os
import signal
import sys
import time

import zmq

try:
    import daq_pool  # noqa: F401  (the installed package, if any)
except ImportError:  # run from a checkout: the package next to examples/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from daq_pool import EndpointError, pattern
from daq_pool.zmq import EndOfStream, Receiver, load_curve_key, write_curve_keypair


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
    public_file, secret_file, public = write_curve_keypair(base)
    print(f"wrote {public_file} (public: give it to the other side) and {secret_file} (keep it here)\n"
          f"public key {public.decode()}")
    return 0


def load_keys(opt):
    """(this receiver's public, its secret, the sender's public) from the key
    files, or None without CURVE; exits 2 naming the flag of a bad file."""
    if not opt.key:
        return None
    try:
        own = load_curve_key(opt.key), load_curve_key(opt.key, secret=True)
    except ValueError as e:
        sys.stderr.write(f"receive_frames.py: --key: {e}\n")
        sys.exit(2)
    try:
        return (*own, load_curve_key(opt.server_key))
    except ValueError as e:
        sys.stderr.write(f"receive_frames.py: --server-key: {e}\n")
        sys.exit(2)


def print_progress(rx, start, now, printed, info):
    """One progress line; returns the new (frames, time) printed."""
    dt = now - printed[1]
    good = rx.received
    print(f"{now - start:6.1f} s  {good} frames  {(good - printed[0]) / dt if dt else 0:.1f} fps  "
          f"{rx.bytes_received / (now - start) / 1e9:.3f} GB/s  gaps {rx.gaps} ({rx.missing} missing)  "
          f"bad {rx.bad}", file=info, flush=True)
    return good, now


def main(argv):
    opt = parse_args(argv)
    if opt.gen_key:
        try:
            return gen_key(opt.gen_key)
        except OSError as e:
            sys.stderr.write(f"receive_frames.py: --gen-key={opt.gen_key}: {e}\n")
            return 2
    keys = load_keys(opt)
    info = sys.stderr if opt.json else sys.stdout
    stop = {"signal": False}

    def on_signal(*_):
        stop["signal"] = True
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    def on_refusal(why):
        sys.stderr.write(f"receive_frames.py: {why}\n")
        sys.stderr.flush()

    curve = {}
    if keys:
        curve = dict(curve_public_key=keys[0], curve_secret_key=keys[1], curve_server_key=keys[2])
    try:
        rx = Receiver(opt.connect, mode=opt.mode, hwm=opt.hwm, max_frame_bytes=opt.max_frame_bytes,
                      verify=pattern.verify if opt.verify == "pattern" else None, on_refusal=on_refusal, **curve)
    except EndpointError as e:
        sys.stderr.write(f"receive_frames.py: --connect={opt.connect}: {e.reason}\n")
        return 2
    if not opt.quiet:
        print(f"receive_frames.py: {'subscribing' if opt.mode == 'sub' else 'pulling'} from {opt.connect} "
              f"({'CURVE, encrypted' if keys else 'plain TCP, unencrypted'}), "
              f"verifying {'the pattern of every byte' if opt.verify == 'pattern' else 'checksums'}",
              file=info, flush=True)

    start = last_message = time.monotonic()
    next_print, printed = start + 1, (0, start)
    stop_reason = None
    with rx:
        while True:
            now = time.monotonic()
            if stop["signal"]:
                stop_reason = "signal"
            elif opt.frames and rx.received >= opt.frames:
                stop_reason = "frames"
            elif opt.duration and now - start >= opt.duration:
                stop_reason = "duration"
            elif now - last_message >= opt.idle_timeout:
                stop_reason = "idle"
            elif rx.end_of_stream is not None:
                stop_reason = "end_of_stream"
            if stop_reason:
                break
            if not opt.quiet and now >= next_print:
                printed = print_progress(rx, start, now, printed, info)
                next_print += 1
            seen = rx.received + rx.bad
            try:
                frame = rx.receive_frame(timeout=0.1)  # the received message itself, not a copy
            except EndOfStream:
                continue
            except zmq.ZMQError as e:
                if e.errno == zmq.EINTR:
                    continue
                sys.stderr.write(f"receive_frames.py: receiving failed: {e.strerror}\n")
                stop_reason = "error"
                break
            if frame is None and rx.received + rx.bad == seen:
                continue
            last_message = time.monotonic()
            if frame is None:
                continue  # a bad message: counted by the receiver
            frame.release()  # let the message go before pacing
            del frame
            if opt.max_fps > 0:
                due = start + rx.received / opt.max_fps
                while time.monotonic() < due and not stop["signal"]:
                    time.sleep(0.005)
        elapsed = time.monotonic() - start
        c = rx.counters()

    good = c["received"]
    empty = good == 0 and not opt.allow_empty
    code = 1 if c["bad"] or stop_reason == "error" else 3 if empty else 0
    if empty:
        sys.stderr.write(f"receive_frames.py: no frame received from {opt.connect}"
                         f"{': ' + c['refusal'] if c['refusal'] else ''} (exit 3; --allow-empty accepts that)\n")
    fps = good / elapsed if elapsed > 0 else 0.0
    gbps = c["bytes_received"] / elapsed / 1e9 if elapsed > 0 else 0.0
    eos = c["end_of_stream"] is not None
    if opt.json:
        print(json.dumps({
            "endpoint": opt.connect, "mode": opt.mode, "verify": opt.verify, "stop_reason": stop_reason,
            "elapsed_s": round(elapsed, 3), "frames_received": good, "bad_frames": c["bad"],
            "first_bad": rx.first_bad, "gaps": c["gaps"], "missing_frames": c["missing"],
            "restarts": c["restarts"], "first_frame": c["first_number"], "last_frame": c["last_number"],
            "end_of_stream": eos, "sender_frames": c["end_of_stream"], "bytes": c["bytes_received"],
            "frames_per_s": round(fps, 3), "gb_per_s": round(gbps, 6), "others_share": c["others_share"],
            "security": "curve" if keys else "plain", "refusal": c["refusal"], "exit_code": code}, indent=2))
    else:
        print(f"summary: {elapsed:.2f} s, stopped by {stop_reason}")
        print(f"  frames received      {good} good, {c['bad']} bad")
        if c["first_number"] is not None:
            print(f"  frame numbers        {c['first_number']} .. {c['last_number']}")
        restarts = f", {c['restarts']} restarts of the numbering" if c["restarts"] else ""
        print(f"  gaps                 {c['gaps']}  ({c['missing']} frames missing){restarts}")
        if c["others_share"]:
            print(f"  other receivers      {c['others_share']} frames went to the other PULL receivers (not lost)")
        if eos:
            print(f"  end of stream        the sender numbered {c['end_of_stream']} frames")
        print(f"  throughput           {fps:.1f} frames/s  {gbps:.3f} GB/s")
        if c["bad"]:
            print(f"  first bad frame      {rx.first_bad}")
        print(f"result: {'PASS' if code == 0 else 'FAIL (no frame received)' if code == 3 else 'FAIL (bad frames)'}")
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
