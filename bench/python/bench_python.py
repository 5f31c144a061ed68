#!/usr/bin/env python3
"""Frames/s and CPU per frame of the Python package's shm subscriber and
ZeroMQ receiver, against the C++ subscriber / receiver in the same run.

    /usr/bin/python3 bench/python/bench_python.py --peer build/dev/bench/python/py_bench_peer
        [--sizes 4K,1M,8M] [--transports shm,zmq] [--json out.json] [--markdown]

For each transport and frame size, a C++ producer process (py_bench_peer
shm-serve / zmq-send) offers N frames as fast as the receiver takes them
(shm: the server waits for room at the subscriber, so none is skipped;
zmq: PUSH blocks at the high-water mark); the receiver is a process of its
own: the C++ one (py_bench_peer shm-subscribe / zmq-receive), then the
Python one (this script, --child). Both touch the first and last byte of
each frame and let it go. Reported: frames/s (wall clock from the first
frame to the end) and CPU microseconds per frame of the receiving process
(all its threads). Every Python frame is checked to be a view of the
shared mapping / the received message (never a copy); a copy fails the run.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "python"))

FRAMES = {4096: 40000, 1 << 20: 3000, 8 << 20: 400}


def parse_size(text):
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def child(transport, target, frames_hint):
    """The Python receiver process: prints one JSON summary line."""
    import numpy as np
    from daq_pool import address_of, frame_of
    frames = total = touched = copies = 0
    start = cpu0 = None
    if transport == "shm":
        from daq_pool.shm import Subscriber
        src = Subscriber(target, connect_timeout=30)
        lo, hi = src.base_address, src.base_address + src.region_size

        def in_place(a):
            return lo <= address_of(a) < hi
    else:
        from daq_pool.zmq import Receiver
        src = Receiver(target, hwm=8)

        def in_place(a):
            return address_of(a) == address_of(np.frombuffer(frame_of(a)._keep.buffer, np.uint8))
    for a in src:
        if start is None:
            start, cpu0 = time.perf_counter(), time.process_time()
        touched += int(a[0]) + int(a[-1])
        if frames % 64 == 0 and not in_place(a):  # sampled: the check costs more than a frame
            copies += 1
        frames += 1
        total += a.size
        del a  # released here: the server / libzmq gets it back
    wall = time.perf_counter() - start if start else 0.0
    cpu = time.process_time() - cpu0 if cpu0 is not None else 0.0
    src.close()
    print(json.dumps(dict(frames=frames, bytes=total, seconds=wall, cpu_seconds=cpu, copies=copies, touched=touched)))
    return 0 if copies == 0 else 1


def run_pair(peer, transport, size, n, receiver):
    """Starts the producer, then `receiver` ("cpp" or "python"); returns its summary."""
    d = tempfile.mkdtemp(prefix="dqbench")
    target = os.path.join(d, "s.sock") if transport == "shm" else f"ipc://{d}/z"
    mode = "shm-serve" if transport == "shm" else "zmq-send"
    # zmq-send keeps its socket open until its stdin closes (see py_bench_peer.cpp)
    producer = subprocess.Popen([peer, mode, target, str(size), str(n)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True)
    try:
        if producer.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{peer} {mode} did not start")
        if receiver == "cpp":
            argv = [peer, "shm-subscribe" if transport == "shm" else "zmq-receive", target]
        else:
            argv = [sys.executable, os.path.abspath(__file__), "--child", transport, target, str(n)]
        out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: exit {out.returncode}: {out.stderr[-2000:]}")
        r = json.loads(out.stdout.strip().splitlines()[-1])
        producer.stdin.close()
        producer.wait(120)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()
        for f in os.listdir(d):
            try:
                os.unlink(os.path.join(d, f))
            except OSError:
                pass
        os.rmdir(d)
    r["fps"] = r["frames"] / r["seconds"] if r["seconds"] else 0.0
    r["cpu_us_per_frame"] = 1e6 * r["cpu_seconds"] / r["frames"] if r["frames"] else 0.0
    r["gb_per_s"] = r["bytes"] / r["seconds"] / 1e9 if r["seconds"] else 0.0
    return r


def _shm_v2(peer):
    """True if the shm server the peer was built with speaks protocol 2."""
    import daq_pool.shm  # noqa: F401  (the package's own default)
    d = tempfile.mkdtemp(prefix="dqv")
    path = os.path.join(d, "s.sock")
    server = subprocess.Popen([peer, "shm-serve", path, "4096", "1"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        server.stdout.readline()
        from daq_pool.shm import Subscriber
        with Subscriber(path, connect_timeout=10) as sub:
            return sub.protocol_version == 2
    finally:
        server.kill()
        server.wait()
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def human(size):
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--child", nargs=3, metavar=("TRANSPORT", "TARGET", "N"), help=argparse.SUPPRESS)
    p.add_argument("--peer", help="py_bench_peer (build/<preset>/bench/python/py_bench_peer)")
    p.add_argument("--sizes", default="4K,1M,8M")
    p.add_argument("--transports", default="shm,zmq")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the frame counts (e.g. 0.1 for a smoke run)")
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--markdown", help="write the table here (bench/python/results.md)")
    args = p.parse_args()
    if args.child:
        return child(args.child[0], args.child[1], int(args.child[2]))
    if not args.peer:
        p.error("--peer is required")
    rows = []
    for transport in args.transports.split(","):
        for size in map(parse_size, args.sizes.split(",")):
            n = max(10, int(FRAMES.get(size, 1000) * args.scale))
            cpp = run_pair(args.peer, transport, size, n, "cpp")
            py = run_pair(args.peer, transport, size, n, "python")
            rows.append(dict(transport=transport, size=size, frames=n, cpp=cpp, python=py))
            print(f"{transport} {human(size):>7}: C++ {cpp['fps']:10.0f} frames/s {cpp['cpu_us_per_frame']:7.1f} us CPU/frame"
                  f" | Python {py['fps']:10.0f} frames/s {py['cpu_us_per_frame']:7.1f} us CPU/frame"
                  f" | Python/C++ {py['fps'] / cpp['fps'] if cpp['fps'] else 0:.2f}  copies {py['copies']}",
                  flush=True)
    import platform
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}; frames per run: "
             + ", ".join(f"{human(r['size'])} {r['frames']}" for r in rows if r['transport'] == rows[0]['transport'])
             + "; shm protocol " + ("2" if _shm_v2(args.peer) else "1") + ".", "",
             "| transport | frame | C++ frames/s | C++ CPU µs/frame | Python frames/s | Python CPU µs/frame | Python/C++ "
             "frames/s | Python copies |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c, q = r["cpp"], r["python"]
        lines.append(f"| {r['transport']} | {human(r['size'])} | {c['fps']:.0f} | {c['cpu_us_per_frame']:.1f} | "
                     f"{q['fps']:.0f} | {q['cpu_us_per_frame']:.1f} | {q['fps'] / c['fps'] if c['fps'] else 0:.2f} | "
                     f"{q['copies']} |")
    print()
    print("\n".join(lines))
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 1 if any(r["python"]["copies"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
