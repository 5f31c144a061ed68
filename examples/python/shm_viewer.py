#!/usr/bin/env python3
"""A subscriber of a daq_pool::shm::Server in Python, over the daq_pool
package (python/): frames as read-only numpy arrays over the server's
shared memory, without any copy, each checked in place.

    /usr/bin/python3 shm_viewer.py --path=/run/user/1000/daq/frames.sock

daq_pool.shm.Subscriber speaks the protocol (version 2: rings in a shared
control region, eventfd wake-ups; docs/shm.md); this script only checks
frames. Each is checked against the frame_pipeline demo's pattern
(daq_pool.pattern, as examples/frame_pipeline/frame_pattern.hpp makes it),
held for --hold-ms, checked again, and released (`del`: the last reference to the array gives the frame
back to the server). With --verify=stable (frames of any source, e.g. a
camera's) a frame is only checked not to change while held.

Exit codes: 0 every frame verified in place; 1 a frame failed verification
or was not a view of the mapping; 2 bad arguments, no server, or a protocol
error (a refusal says why); 3 no frame received (unless --allow-empty).
Needs numpy (Debian: python3-numpy, i.e. /usr/bin/python3) and the package
(this checkout's python/ is used when it is not installed).
"""
import argparse
import json
import os
import signal
import sys
import time

import numpy as np

try:
    import daq_pool
except ImportError:  # run from a checkout: the package next to examples/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
    import daq_pool
from daq_pool import DaqPoolError, address_of, frame_of
from daq_pool.pattern import verify
from daq_pool.shm import EndOfStream, STATE_REVOKED, Subscriber


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
        sub = Subscriber(args.path, connect_timeout=args.connect_timeout)
    except (OSError, DaqPoolError, NotImplementedError) as e:
        print(f"shm_viewer: --path={args.path}: {e}", file=sys.stderr)
        sys.exit(2)
    base, size = sub.base_address, sub.region_size
    whole = np.frombuffer(sub._mapping, dtype=np.uint8)  # the mapping itself, to prove the views are in it
    if not args.quiet:
        print(f"shm_viewer: connected to {args.path} as subscriber {sub.hello['subscriber_id']}: "
              f"{sub.hello['buffer_count']} buffers of {sub.hello['buffer_capacity']} bytes mapped read-only at "
              f"{base:#x}", file=info, flush=True)
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
            frame = sub.receive(timeout=0.1)  # a read-only array over the mapping: the frame is held while it lives
        except EndOfStream:
            s["end_reason"] = "end_of_stream"
            break
        except DaqPoolError:
            s["bad_messages"] += 1
            s["end_reason"] = "end_of_stream"
            break
        if frame is None:
            continue
        sequence = frame_of(frame).sequence
        s["frames"] += 1
        s["bytes"] += frame.size
        if not base <= address_of(frame) < base + size or frame.flags.writeable or not np.shares_memory(frame, whole):
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
        # Just before the release: the bytes must not have changed while held.
        again = check_stable(frame, on_receipt) if args.verify == "stable" else verify(frame, None)
        if again is not None:
            s["recheck_failures"] += 1
            s["first_failure"] = s["first_failure"] or f"sequence {sequence} changed while held: {again}"
        del frame  # the last reference: the frame goes back to the server now
        s["released"] += 1
    elapsed = time.monotonic() - start
    s["missed"] = sub.skipped  # the server's own count: exact, also after our last frame
    s["revoked"] = sub.state == STATE_REVOKED
    failed = s["integrity_failures"] or s["recheck_failures"] or s["not_in_place"] or not sub.write_refused
    empty = s["frames"] == 0 and not args.allow_empty
    s.update(path=args.path, subscriber_id=sub.hello["subscriber_id"], elapsed_s=round(elapsed, 3),
             frames_per_s=round(s["frames"] / elapsed, 3) if elapsed > 0 else 0.0, zero_copy=s["not_in_place"] == 0,
             write_refused=sub.write_refused, mapping={"address": base, "size": size},
             exit_code=1 if failed else 3 if empty else 0)
    if args.json:
        print(json.dumps(s, indent=2))
    else:
        print(f"\nsummary: {elapsed:.2f} s, ended by {s['end_reason']}")
        print(f"  frames received      {s['frames']}  ({s['frames_per_s']} frames/s, numpy views of the mapping)")
        print(f"  frames verified      {s['verified']}  (integrity failures {s['integrity_failures']}, "
              f"changed while held {s['recheck_failures']})")
        print(f"  zero copy            {'yes' if s['zero_copy'] else 'NO'}  (every array inside the read-only "
              f"mapping at {base:#x}; writable mapping refused: {'yes' if sub.write_refused else 'NO'})")
        print(f"  missed               {s['missed']}  (frames the server skipped for this subscriber, its count)")
        print(f"  released             {s['released']}  (revoked by the server: {'yes' if s['revoked'] else 'no'})")
        if s["frames"] == 0:
            print("  no frame received" + (" (--allow-empty)" if args.allow_empty else ": that is a failure (exit 3)"))
        if s["first_failure"]:
            print(f"  first failure        {s['first_failure']}")
        print(f"result: {'FAIL' if failed else 'NOTHING RECEIVED' if empty else 'PASS'}")
    del whole
    sub.close()
    sys.exit(s["exit_code"])


if __name__ == "__main__":
    main()
