#!/usr/bin/env python3
"""Process tests of the ZeroMQ stream: `frame_pipeline --publish` sending to
frame_receiver (C++) and receive_frames.py (Python), with faults.

usage: check_stream.py --sender FRAME_PIPELINE --receiver FRAME_RECEIVER
           --python-receiver RECEIVE_FRAMES_PY [--tsan-suppressions FILE] [--lsan-suppressions FILE] CASE

Every process is real, started here and stopped and reaped by its PID (also
when a check fails: Proc's context manager kills and waits); every wait is
bounded. Endpoints are tcp://127.0.0.1 on ephemeral ports (the sender binds
port * and prints the real one) or ipc:// in a fresh temporary directory,
which also serves as the processes' TMPDIR and must be empty at the end.
Needs pyzmq and numpy (Debian: python3-zmq python3-numpy).
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import zmq

try:
    import daq_pool  # noqa: F401  (the installed package, if any; ctest puts this checkout's first)
except ImportError:  # run from a checkout: the package next to examples/
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
from daq_pool import pattern
from daq_pool.zmq import CHECKSUM_FULL, CHECKSUM_SAMPLED, FLAG_END_OF_STREAM, encode_header, wire_checksum

WAIT_S = 60  # the longest any process may take to do what a case asks of it


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


class Proc:
    """A child process whose stdout and stderr are collected by two threads;
    killed (SIGKILL) and reaped on exit from its `with` block if still running."""

    def __init__(self, name, argv, env):
        self.name = name
        print(f"$ {' '.join(argv)}", flush=True)
        self.p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.out, self.err = [], []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.p.stdout, self.out), (self.p.stderr, self.err))]
        for t in self._threads:
            t.start()

    def _pump(self, stream, into):
        for line in stream:
            with self._lock:
                into.append(line)

    def text(self, which="err"):
        with self._lock:
            return "".join(self.err if which == "err" else self.out)

    def wait_for(self, pattern, which="err", timeout=WAIT_S):
        """The first match of `pattern` in the output, waiting at most `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text(which))
            if m:
                return m
            if self.p.poll() is not None:
                time.sleep(0.1)  # let the pumps finish
                m = re.search(pattern, self.text(which))
                if m:
                    return m
                fail(f"{self.name} exited ({self.p.returncode}) before printing /{pattern}/:\n{self.text('err')}")
            time.sleep(0.02)
        fail(f"{self.name} did not print /{pattern}/ within {timeout} s")

    def finish(self, timeout=WAIT_S):
        """Waits for the exit; returns the exit code. Fails the case on a timeout."""
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            fail(f"{self.name} did not exit within {timeout} s")
        for t in self._threads:
            t.join(timeout=10)
        sys.stdout.write(f"--- {self.name} (exit code {self.p.returncode}) stderr:\n{self.text('err')}")
        sys.stdout.write(f"--- {self.name} stdout:\n{self.text('out')}")
        sys.stdout.flush()
        return self.p.returncode

    def json(self):
        try:
            return json.loads(self.text("out"))
        except json.JSONDecodeError as e:
            fail(f"{self.name}: --json output does not parse: {e}")

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=WAIT_S)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()  # a no-op if it already exited; reaped either way
        return False


class Case:
    def __init__(self, args, tmpdir):
        self.a = args
        self.tmpdir = tmpdir
        self.env = dict(os.environ, TMPDIR=tmpdir)
        if args.tsan_suppressions:
            opts = self.env.get("TSAN_OPTIONS", "")
            self.env["TSAN_OPTIONS"] = (opts + ":" if opts else "") + f"suppressions={args.tsan_suppressions}"
        if args.lsan_suppressions:
            opts = self.env.get("LSAN_OPTIONS", "")
            self.env["LSAN_OPTIONS"] = (opts + ":" if opts else "") + f"suppressions={args.lsan_suppressions}"
        self.python = sys.executable

    def sender(self, *flags):
        return Proc("frame_pipeline", [self.a.sender, "--json", *flags], self.env)

    def endpoint_of(self, sender):
        return sender.wait_for(r"publishing frames \([^)]*\) on (\S+)").group(1)

    def receiver(self, kind, endpoint, *flags, name=None):
        argv = ([self.a.receiver] if kind == "cpp" else [self.python, self.a.python_receiver])
        return Proc(name or ("frame_receiver" if kind == "cpp" else "receive_frames.py"),
                    [*argv, f"--connect={endpoint}", "--json", *flags], self.env)

    def done(self, name):
        left = os.listdir(self.tmpdir)
        # ipc:// socket files too: the binding socket removes its file.
        left = [f for f in left if f != "keys"]
        check(not left, f"files left behind in TMPDIR: {left}")
        print(f"PASS: {name}", flush=True)


# ------------------------------------------------------------------ checks --

def check_sender(s, code, expect_exit=0):
    """The invariants of every publishing run: frames accounted for, nothing
    corrupted, nothing allocated on the hot path, every buffer back."""
    # frame_pipeline exits 1 when it recorded fewer frames than the camera
    # produced (docs/demo.md). Many runs here lose frames on purpose (a
    # stalled receiver, a pool of 4): that alone fails nothing here, provided
    # the summary says so; the losses themselves are checked per case.
    if expect_exit == 0 and code == 1 and s.get("recording_complete") is False and s["integrity_failures"] == 0:
        code = 0
    check(code == expect_exit, f"frame_pipeline exit code {code}, expected {expect_exit}")
    check(s["integrity_failures"] == 0, f"{s['integrity_failures']} integrity failures")
    check(s["frames_produced"] == s["frames_delivered"] + s["frames_dropped"] + s["sdk_overruns"],
          "produced != delivered + dropped + SDK overruns")
    pool = s["pool"]
    check(pool["acquires"] == pool["releases"], f"pool acquires {pool['acquires']} != releases {pool['releases']}")
    if s["allocations_counted"]:
        check(s["hot_path_allocations"] == 0, f"{s['hot_path_allocations']} hot-path allocations")
    p = s["publish"]
    check(p is not None, "no publish section in the summary")
    check(p["views_held_after_close"] == 0, f"{p['views_held_after_close']} views still held by ZeroMQ after close")
    check(p["frames_offered"] == s["frames_delivered"], "frames offered to the network != frames delivered")
    check(p["frames_offered"] == p["frames_sent"] + p["frames_dropped_no_room"] + p["frames_dropped_by_transport"] +
          p["frames_lost_at_close"] + p["unsent_at_shutdown"],
          "offered != sent + dropped (no room) + dropped by ZeroMQ + lost at close + unsent")
    check(p["frames_dropped_no_room"] == p["dropped_budget_full"] + p["dropped_receivers_full"], "no-room causes")
    check(p["error"] is None, f"a send failed: {p['error']}")
    return p


def check_receiver(r, code, expect_exit=0):
    check(code == expect_exit, f"receiver exit code {code}, expected {expect_exit}")
    if expect_exit == 0:
        check(r["bad_frames"] == 0, f"{r['bad_frames']} bad frames: {r['first_bad']}")
    return r


# ------------------------------------------------------------------- cases --

SMALL = ["--frame-bytes=256K", "--fps=100"]


def case_stream(c, endpoint, kind):
    """N frames from the demo to a receiver, all verified, nothing lost
    (--publish-full=wait: the first frame waits for the receiver)."""
    with c.sender("--frames=60", *SMALL, f"--publish={endpoint}", "--publish-mode=push",
                  "--publish-full=wait") as snd:
        ep = c.endpoint_of(snd)
        check("*" not in ep, f"the printed endpoint {ep} is not the bound one")
        with c.receiver(kind, ep, "--idle-timeout=30") as rcv:
            r = check_receiver(rcv.json() if rcv.finish() == 0 else fail("receiver failed"), 0)
        code = snd.finish()
        s = snd.json()
    p = check_sender(s, code)
    check(p["frames_sent"] >= 10, f"only {p['frames_sent']} frames sent")
    check(p["end_of_stream_sent"], "no end-of-stream message")
    check(r["stop_reason"] == "end_of_stream", f"receiver stopped by {r['stop_reason']}")
    check(r["frames_received"] == p["frames_sent"], f"received {r['frames_received']} of {p['frames_sent']} sent")
    check(r["sender_frames"] == p["frames_sent"] + p["frames_dropped_by_transport"], "end-of-stream count differs")
    check(r["gaps"] == 0 and r["missing_frames"] == 0, f"{r['gaps']} gaps over PUSH")
    check(r["first_frame"] == 0 and r["last_frame"] == p["frames_sent"] - 1, "frame numbers are not 0..sent-1")
    check(r["bytes"] == r["frames_received"] * 256 * 1024, "bytes received")


def slow_receiver_run(c, sender_flags, receiver_flags):
    """A 1 s, 200 frames/s camera of 256 KiB frames publishing to a C++
    receiver that takes 20 frames/s with a high-water mark of 1 on both sides.
    Returns (sender summary, its publish section, receiver summary)."""
    with c.sender("--duration=1", "--frame-bytes=256K", "--fps=200", "--publish=tcp://127.0.0.1:*",
                  "--publish-hwm=1", *sender_flags) as snd:
        ep = c.endpoint_of(snd)
        with c.receiver("cpp", ep, "--max-fps=20", "--hwm=1", "--idle-timeout=2", *receiver_flags) as rcv:
            code = snd.finish()
            s = snd.json()
            rcode = rcv.finish()
            r = rcv.json()
    p = check_sender(s, code)
    check_receiver(r, rcode)
    check(0 < r["frames_received"] <= p["frames_sent"], "received count")
    return s, p, r


def case_push_backpressure(c, policy):
    """A receiver at 20 frames/s against a camera at 200: the backpressure
    reaches the pool and --on-exhausted; nothing lost in transit."""
    s, p, r = slow_receiver_run(c, ["--pool=4", "--timeout=5", f"--on-exhausted={policy}", "--publish-mode=push",
                                    "--publish-full=wait"], [])
    check(s["pool_exhausted"] > 0, "the pool never ran dry: the backpressure did not reach it")
    if policy == "drop":
        check(s["frames_dropped"] > 0, "drop policy: no frame dropped")
        check(s["fallbacks"] == 0, "drop policy made heap fallbacks")
    elif policy == "fallback":
        check(s["fallbacks"] > 0, "fallback policy: no heap fallback")
        check(s["frames_dropped"] == 0, "fallback policy dropped frames")
    else:
        check(s["blocked_waits"] > 0, "block policy: no blocked wait")
        check(s["frames_dropped"] == 0 and s["fallbacks"] == 0, "block policy dropped or fell back")
        check(s["sdk_overruns"] > 0, "block policy: the camera never overran")
    check(p["frames_dropped_by_transport"] == 0, "PUSH dropped frames")
    check(r["gaps"] == 0, f"{r['gaps']} gaps over PUSH")


def case_pub_slow(c):
    """A subscriber at 20 frames/s: ZeroMQ drops at the high-water mark, every
    drop counted by the free function, every buffer back."""
    _, p, r = slow_receiver_run(c, ["--pool=8", "--publish-mode=pub", "--publish-budget=4"], ["--mode=sub"])
    check(p["frames_dropped_by_transport"] > 0, "PUB dropped nothing")
    check(p["unsent_at_shutdown"] == 0, "PUB left frames unsent")
    check(r["gaps"] > 0, "a slow subscriber saw no gap")


def case_never_started(c, mode):
    """Nobody ever connects: the sender keeps acquiring, never hangs, and at
    shutdown every buffer is back."""
    start = time.monotonic()
    with c.sender("--duration=1", "--frame-bytes=256K", "--pool=4", "--on-exhausted=drop",
                  "--publish=tcp://127.0.0.1:*", f"--publish-mode={mode}",
                  *(["--publish-full=wait"] if mode == "push" else [])) as snd:
        code = snd.finish()
        s = snd.json()
    took = time.monotonic() - start
    p = check_sender(s, code)
    check(p["frames_sent"] == 0, "frames sent to nobody")
    check(took < 30, f"the sender took {took:.1f} s to stop")
    if mode == "push":
        check(s["frames_dropped"] > 0, "the pool never ran dry (drop policy)")
        check(p["unsent_at_shutdown"] == p["frames_offered"] and p["frames_offered"] > 0, "unsent count")
    else:
        check(p["frames_dropped_by_transport"] == p["frames_offered"] and p["frames_offered"] > 0,
              "PUB without a subscriber: not every frame dropped")
        check(s["frames_dropped"] == 0, "PUB without subscriber: the pool ran dry")


def case_receiver_killed(c):
    """SIGKILL the receiver mid-stream: the sender goes on and ends clean."""
    with c.sender("--duration=3", *SMALL, "--pool=8", "--on-exhausted=drop", "--publish=tcp://127.0.0.1:*",
                  "--publish-mode=push") as snd:
        ep = c.endpoint_of(snd)
        with c.receiver("cpp", ep) as rcv:
            rcv.wait_for(r"\s[1-9]\d* frames\s")  # a progress line: it is receiving
            rcv.p.send_signal(signal.SIGKILL)
            check(rcv.finish() == -signal.SIGKILL, "the receiver was not killed")
        code = snd.finish()
        s = snd.json()
    p = check_sender(s, code)
    check(p["frames_sent"] > 0, "nothing was sent before the kill")


def case_receiver_restarted(c):
    """A subscriber stops; another starts later: both verify everything, and
    the frames published in between show as a jump in frame numbers."""
    with c.sender("--duration=4", *SMALL, "--publish=tcp://127.0.0.1:*", "--publish-mode=pub") as snd:
        ep = c.endpoint_of(snd)
        with c.receiver("cpp", ep, "--mode=sub", "--duration=1", name="first receiver") as a:
            check_receiver(a.json() if a.finish() == 0 else fail("first receiver failed"), 0)
            ra = a.json()
        time.sleep(0.5)
        with c.receiver("python", ep, "--mode=sub", "--idle-timeout=10", name="second receiver") as b:
            rb_code = b.finish()
            rb = b.json()
        code = snd.finish()
        s = snd.json()
    p = check_sender(s, code)
    check_receiver(rb, rb_code)
    check(ra["frames_received"] > 0 and rb["frames_received"] > 0, "a receiver got nothing")
    check(rb["first_frame"] > ra["last_frame"] + 1, "no gap between the two receivers")
    check(rb["stop_reason"] == "end_of_stream", "the second receiver did not see the end of the stream")
    check(rb["sender_frames"] == p["frames_offered"], "end-of-stream count differs from frames offered")


def case_garbage(c, kind):
    """Garbage and truncated messages: each one a counted bad frame, never a
    crash; the valid frames around them are received."""
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 5000)
    push.setsockopt(zmq.SNDTIMEO, WAIT_S * 1000)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    def message(number, payload, kind=CHECKSUM_SAMPLED):
        return [encode_header(number, len(payload), wire_checksum(payload, kind), kind), payload]

    try:
        frame = pattern.make_frame(1, 4096 + 37)
        good = message(0, frame, CHECKSUM_FULL)
        hdr = good[0]
        wrong_pattern = bytearray(frame)
        wrong_pattern[100] ^= 0xFF
        wrong_pattern = bytes(wrong_pattern)
        garbage = [
            [b"hello, frames"],
            [b""],
            [hdr],                                    # truncated: the payload never came
            [hdr, frame, b"extra"],
            [hdr[:10], frame],
            [hdr[:4] + b"\x02" + hdr[5:], frame],     # version 2
            [hdr[:5] + b"\x07" + hdr[6:], frame],     # checksum kind 7
            [hdr, frame[:-1]],                        # payload shorter than the header says
            [encode_header(0, len(frame), 12345, CHECKSUM_FULL), frame],
            message(0, wrong_pattern),
            [os.urandom(32), os.urandom(1000), os.urandom(3)],
        ]
        with c.receiver(kind, f"tcp://127.0.0.1:{port}", "--idle-timeout=20") as rcv:
            push.send_multipart(good)  # blocks until the receiver is connected
            for g in garbage:
                push.send_multipart(g)
            second = pattern.make_frame(2, 1 << 20)
            push.send_multipart(message(1, second))
            push.send_multipart([encode_header(2, 0, 0, 0, FLAG_END_OF_STREAM), b""])
            code = rcv.finish()
            r = rcv.json()
    finally:
        push.close()
        ctx.term()
    check_receiver(r, code, expect_exit=1)
    check(r["bad_frames"] == len(garbage), f"{r['bad_frames']} bad frames counted, {len(garbage)} sent")
    check(r["frames_received"] == 2, f"{r['frames_received']} good frames, expected 2")
    check(r["end_of_stream"] and r["stop_reason"] == "end_of_stream", "the end of the stream was not seen")
    check("part(s)" in r["first_bad"] and "magic" in r["first_bad"], f"first bad frame: {r['first_bad']}")


def case_bad_endpoints(c):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    busy = f"tcp://127.0.0.1:{taken.getsockname()[1]}"
    try:
        cases = [
            ("bogus://nowhere", zmq.strerror(zmq.EPROTONOSUPPORT)),
            ("tcp://127.0.0.1:notaport", zmq.strerror(zmq.EINVAL)),
            (busy, zmq.strerror(zmq.EADDRINUSE)),
            (f"ipc://{c.tmpdir}/no/such/dir/frames.sock", os.strerror(2)),
        ]
        for endpoint, reason in cases:
            with c.sender("--frames=5", "--pool=1", "--frame-bytes=64K", f"--publish={endpoint}") as snd:
                code = snd.finish()
                err = snd.text("err")
            check(code == 2, f"--publish={endpoint}: exit code {code}, expected 2")
            check(f"--publish={endpoint}" in err and reason in err, f"--publish={endpoint}: message lacks '{reason}'")
            check(not snd.text("out"), "printed to stdout on a setup error")
    finally:
        taken.close()
    for args, flag in [(["--publish-mode=fanout", "--publish=tcp://127.0.0.1:*"], "--publish-mode"),
                       (["--publish-hwm=-1", "--publish=tcp://127.0.0.1:*"], "--publish-hwm"),
                       (["--publish-hwm=2000000", "--publish=tcp://127.0.0.1:*"], "--publish-hwm"),
                       (["--publish-mode=pub"], "--publish-mode"),
                       (["--publish-key=s.key_secret", "--publish=tcp://127.0.0.1:*"], "--publish-key"),
                       (["--publish-budget=0", "--publish=tcp://127.0.0.1:*"], "--publish-budget"),
                       (["--publish-full=maybe", "--publish=tcp://127.0.0.1:*"], "--publish-full"),
                       (["--publish="], "--publish")]:
        with c.sender(*args) as snd:
            code = snd.finish()
        check(code == 2 and flag in snd.text("err") and "allowed" in snd.text("err"), f"{args}: not refused")
    # Key files that are not there, or not keys: exit 2 naming the flag and the file.
    k = make_keys(c, "rx")
    for args, words in [([f"--publish-key={c.tmpdir}/none.key_secret", f"--publish-allow={k['rx'][0]}"],
                         ["none.key_secret"]),
                        ([f"--publish-key={k['rx'][0]}", f"--publish-allow={k['rx'][0]}"], ["no secret-key"]),
                        ([f"--publish-key={k['rx'][1]}", f"--publish-allow={c.tmpdir}/keys/rx.key_secret_not"],
                         ["--publish-allow", "rx.key_secret_not"])]:
        with c.sender("--frames=5", "--pool=1", "--frame-bytes=64K", "--publish=tcp://127.0.0.1:*", *args) as snd:
            code = snd.finish()
        check(code == 2 and all(w in snd.text("err") for w in words), f"{args}: not refused with {words}")
    for kind in ("cpp", "python"):
        with c.receiver(kind, "tcp://127.0.0.1:1", f"--server-key={k['rx'][0]}", f"--key={k['rx'][0]}") as rcv:
            code = rcv.finish()
        check(code == 2 and "--key" in rcv.text("err") and "secret" in rcv.text("err"),
              f"{kind}: a public key file as --key not refused")
        with c.receiver(kind, "tcp://nohost.invalid:1") as rcv:
            code = rcv.finish()
        check(code == 2 and "does not resolve" in rcv.text("err"), f"{kind}: an unresolvable host not refused")
    for kind in ("cpp", "python"):
        for endpoint, reason in [("bogus://nowhere", zmq.strerror(zmq.EPROTONOSUPPORT)),
                                 ("tcp://127.0.0.1", zmq.strerror(zmq.EINVAL))]:
            with c.receiver(kind, endpoint) as rcv:
                code = rcv.finish()
            err = rcv.text("err")
            check(code == 2, f"{kind} --connect={endpoint}: exit code {code}, expected 2")
            check(endpoint in err and reason in err, f"{kind} --connect={endpoint}: message lacks '{reason}'")


def case_receiver_bad_args(c):
    bad = [([], "--connect"), (["--connect="], "--connect"), (["--mode=push"], "--mode"), (["--frames=0"], "--frames"),
           (["--duration=abc"], "--duration"), (["--idle-timeout=0"], "--idle-timeout"), (["--hwm=-1"], "--hwm"),
           (["--max-fps=-2"], "--max-fps"), (["--verify=bits"], "--verify"), (["--no-such-flag"], "--no-such-flag")]
    for kind in ("cpp", "python"):
        argv0 = [c.a.receiver] if kind == "cpp" else [c.python, c.a.python_receiver]
        for args, flag in bad:
            if args and args[0] != "--connect=" and flag != "--connect":
                args = ["--connect=tcp://127.0.0.1:1", *args]
            with Proc(kind, [*argv0, *args], c.env) as p:
                code = p.finish()
            check(code == 2, f"{kind} {args}: exit code {code}, expected 2")
            check(flag in p.text("err"), f"{kind} {args}: the message does not name {flag}")
        with Proc(kind, [*argv0, "--help"], c.env) as p:
            check(p.finish() == 0, f"{kind} --help failed")
        for flag in ("--connect", "--mode", "--frames", "--duration", "--idle-timeout", "--hwm", "--max-fps",
                     "--verify", "--json", "--quiet"):
            check(flag in p.text("out"), f"{kind} --help does not list {flag}")


def make_keys(c, *names):
    """Key pairs made by frame_receiver --gen-key in TMPDIR/keys: {name: (public file, secret file)}."""
    d = os.path.join(c.tmpdir, "keys")
    os.makedirs(d, exist_ok=True)
    out = {}
    for n in names:
        with Proc("frame_receiver --gen-key", [c.a.receiver, f"--gen-key={d}/{n}"], c.env) as p:
            check(p.finish() == 0, "--gen-key failed")
        out[n] = (f"{d}/{n}.key", f"{d}/{n}.key_secret")
    return out


def case_never_started_push_drop(c):
    """PUSH with nobody connected, --publish-full=drop (the default): every
    frame dropped here, counted "receivers full or none", and the camera
    never waits for the network: ZeroMQ took no frame (so it held no pool
    buffer) and the publisher never waited. (Whether the pool of 4 runs dry
    is not checked: under a sanitizer on a loaded machine the writer and
    the verifier alone can drain it, which says nothing of the network.)"""
    with c.sender("--duration=1", "--frame-bytes=256K", "--pool=4", "--on-exhausted=drop",
                  "--publish=tcp://127.0.0.1:*", "--publish-mode=push") as snd:
        code = snd.finish()
        s = snd.json()
    p = check_sender(s, code)
    check(p["frames_sent"] == 0, "frames sent to nobody")
    check(p["dropped_receivers_full"] == p["frames_offered"] > 0, "not every frame counted as dropped for no receiver")
    check(p["send_waits"] == 0, "the publisher waited for the network")


def case_curve(c):
    """CURVE: the allowed C++ and Python receivers get every frame; a C++
    receiver with an unknown key and a Python one without CURVE get none,
    exit 3 and say why; the sender says whom it refused."""
    k = make_keys(c, "sender", "cpp", "py", "stranger")
    allow = os.path.join(c.tmpdir, "keys", "allowed.txt")
    with open(allow, "w") as f:  # a list of keys, read from the two public key files
        for n in ("cpp", "py"):
            f.write([l for l in open(k[n][0]) if "public-key" in l][0].split('"')[1] + f"  # {n}\n")
    with c.sender("--duration=3", *SMALL, "--publish=tcp://127.0.0.1:*", "--publish-mode=pub",
                  f"--publish-key={k['sender'][1]}", f"--publish-allow={allow}") as snd:
        ep = c.endpoint_of(snd)
        check("CURVE" in snd.text("err"), "the sender does not say it uses CURVE")
        with c.receiver("cpp", ep, "--mode=sub", f"--server-key={k['sender'][0]}", f"--key={k['cpp'][1]}",
                        name="allowed C++") as good_cpp, \
             c.receiver("python", ep, "--mode=sub", f"--server-key={k['sender'][0]}", f"--key={k['py'][1]}",
                        name="allowed Python") as good_py, \
             c.receiver("cpp", ep, "--mode=sub", f"--server-key={k['sender'][0]}", f"--key={k['stranger'][1]}",
                        "--idle-timeout=3", name="unknown key") as stranger, \
             c.receiver("python", ep, "--mode=sub", "--idle-timeout=3", name="no CURVE") as plain:
            results = {}
            for name, proc in (("cpp", good_cpp), ("py", good_py), ("stranger", stranger), ("plain", plain)):
                results[name] = (proc.finish(), proc.json(), proc.text("err"))
            code = snd.finish()
            s = snd.json()
    p = check_sender(s, code)
    check(p["security"] == "curve", "publish security is not curve")
    for name in ("cpp", "py"):
        rcode, r, _ = results[name]
        check_receiver(r, rcode)
        check(r["security"] == "curve" and r["frames_received"] > 0, f"{name}: no frame under CURVE")
        check(r["stop_reason"] == "end_of_stream", f"{name}: stopped by {r['stop_reason']}")
        # Every number after its first frame: received, or counted missing
        # (PUB: a frame one subscriber had no room for shows only as its gap).
        check(r["frames_received"] + r["missing_frames"] == r["sender_frames"] - r["first_frame"],
              f"{name}: received + missing != numbers sent after its first frame")
    for name, words in (("stranger", "refused this receiver's CURVE key"), ("plain", "security mismatch")):
        rcode, r, err = results[name]
        check(rcode == 3, f"{name}: exit code {rcode}, expected 3 (no frame)")
        check(r["frames_received"] == 0 and r["bad_frames"] == 0, f"{name} received something")
        check(words in err and words in (r["refusal"] or ""), f"{name}: no '{words}' in its message")
    check(p["zap_accepted"] >= 2 and p["zap_refused"] >= 1, "ZAP counts")
    check("not in --publish-allow" in snd.text("err"), "the sender did not say whom it refused")
    check(p["handshake_failures"] >= 1, "the sender did not count the plaintext receiver's failed handshake")


def case_plain_warning(c):
    """Plain TCP bound beyond loopback: a loud warning (before binding: here
    the address is not this machine's, so the bind fails, with the reason
    in words)."""
    with c.sender("--frames=5", "--pool=1", "--frame-bytes=64K", "--publish=tcp://192.0.2.1:*") as snd:
        code = snd.finish()
        err = snd.text("err")
    check("WARNING" in err and "WITHOUT AUTHENTICATION" in err, "no warning for plain TCP beyond loopback")
    check(code == 2 and "not an IP address or network interface of this machine" in err, "bind error not explained")
    with c.sender("--frames=5", "--pool=1", "--frame-bytes=64K", "--publish=tcp://127.0.0.1:*") as snd:
        snd.finish()
    check("WARNING" not in snd.text("err"), "a warning for loopback")


def case_push_stalled(c):
    """A PUSH receiver stopped (SIGSTOP) for 5 s under the demo's defaults:
    ZeroMQ holds at most the budget, the camera never waits: 0 heap
    fallbacks, 0 SDK overruns, 0 pool drops; after SIGCONT the receiver
    reconnects and receives again, to the end of the stream."""
    with c.sender("--duration=10", "--frame-bytes=1M", f"--fps={c.a.stalled_fps}", "--publish=tcp://127.0.0.1:*") as snd:
        ep = c.endpoint_of(snd)
        with c.receiver("cpp", ep, "--idle-timeout=30") as rcv:
            rcv.wait_for(r"\s[1-9]\d* frames\s")
            rcv.p.send_signal(signal.SIGSTOP)
            time.sleep(5)
            rcv.p.send_signal(signal.SIGCONT)
            rcode = rcv.finish()
            r = rcv.json()
        code = snd.finish()
        s = snd.json()
    p = check_sender(s, code)
    check_receiver(r, rcode)
    check(s["fallbacks"] == 0, f"{s['fallbacks']} heap fallbacks while a receiver was stopped")
    check(s["sdk_overruns"] == 0, f"{s['sdk_overruns']} SDK overruns while a receiver was stopped")
    check(s["frames_dropped"] == 0, f"{s['frames_dropped']} frames dropped at the pool")
    check(p["frames_dropped_no_room"] > 0, "nothing dropped for the stopped receiver")
    check(r["stop_reason"] == "end_of_stream", f"the receiver stopped by {r['stop_reason']}, not the end of stream")
    check(r["missing_frames"] > 0, "the stopped receiver saw no gap")
    check(r["last_frame"] >= p["frames_offered"] - 1 - p["frames_dropped_no_room"] - p["frames_lost_at_close"],
          "the receiver did not receive to the end after SIGCONT")


def case_lost_at_close(c):
    """The sender shuts down (SIGINT) while its only PUSH receiver is stopped
    (SIGSTOP), so ZeroMQ still holds frames when the 1 s linger of the close
    runs out: they are counted lost at close, not sent; every view and pool
    buffer comes back all the same. After SIGCONT the receiver reads what
    reached its socket before the close: no more than the frames counted
    sent, and no bad frame (ZeroMQ delivers whole messages only)."""
    with c.sender("--duration=60", "--frame-bytes=1M", f"--fps={c.a.stalled_fps}",
                  "--publish=tcp://127.0.0.1:*") as snd:
        ep = c.endpoint_of(snd)
        with c.receiver("cpp", ep, "--idle-timeout=2") as rcv:
            rcv.wait_for(r"\s[1-9]\d* frames\s")
            rcv.p.send_signal(signal.SIGSTOP)
            try:
                # The socket buffers on both sides and ZeroMQ's queue for the
                # receiver fill within a few frames. The close (shutdown, the
                # end of stream's 100 ms, the 1 s linger) must come before the
                # heartbeat drops the silent receiver (3 s after a PING goes
                # unanswered) and gives its frames back: measured, frames are
                # still lost at close with a 2.5 s pause here under ASan, none
                # with 4 s (dev build). At least 25 frames' time, though:
                # at sanitized builds' 25 fps, 0.5 s (12 frames) fitted in
                # the sockets' buffers and ZeroMQ held nothing at the close
                # (CI, TSan: frames_lost_at_close 0, the end of stream
                # delivered); 25 MiB cannot fit there.
                time.sleep(max(0.5, 25 / c.a.stalled_fps))
                snd.p.send_signal(signal.SIGINT)
                code = snd.finish()
                s = snd.json()
            finally:
                rcv.p.send_signal(signal.SIGCONT)
            rcode = rcv.finish()
            r = rcv.json()
    check(s["interrupted"], "the sender did not stop on SIGINT")
    p = check_sender(s, code)  # the accounting, 0 views held after close, pool acquires == releases
    check(p["frames_lost_at_close"] > 0, "nothing lost at close: ZeroMQ held no frame of the stopped receiver")
    check(p["frames_lost_at_close"] <= p["budget"], f"{p['frames_lost_at_close']} lost at close, above the budget")
    check(p["frames_sent"] > 0, "nothing sent before the receiver was stopped")
    check_receiver(r, rcode)
    check(r["frames_received"] > 0, "the receiver got nothing")
    # frames_sent is what ZeroMQ took minus what the close discarded: a
    # discarded frame never arrives whole (it was still being written, or
    # queued behind one that was).
    check(r["frames_received"] <= p["frames_sent"],
          f"received {r['frames_received']} > {p['frames_sent']} sent (the lost-at-close count is too high)")
    # The end of stream, if ZeroMQ took it, was queued behind the discarded frames.
    check(r["stop_reason"] != "end_of_stream", "an end of stream arrived after frames lost at close")


def case_two_pull(c):
    """Two PULL receivers: each gets an end of stream, neither counts the
    other's share as lost, and together they got every frame sent."""
    with c.sender("--duration=3", *SMALL, "--publish=tcp://127.0.0.1:*", "--publish-full=wait") as snd:
        ep = c.endpoint_of(snd)
        with c.receiver("cpp", ep, "--idle-timeout=30", name="first") as a, \
             c.receiver("python", ep, "--idle-timeout=30", name="second") as b:
            ra_code, rb_code = a.finish(), b.finish()
            ra, rb = a.json(), b.json()
        code = snd.finish()
        s = snd.json()
    p = check_sender(s, code)
    for r, rc in ((ra, ra_code), (rb, rb_code)):
        check_receiver(r, rc)
        check(r["stop_reason"] == "end_of_stream", f"a receiver stopped by {r['stop_reason']}, not its end of stream")
        check(r["gaps"] == 0 and r["missing_frames"] == 0, f"{r['missing_frames']} frames counted missing")
        check(r["others_share"] > 0, "the other receiver's share not reported")
    check(p["end_of_stream_sent"] == 2, f"end of stream sent {p['end_of_stream_sent']} times, expected 2")
    check(ra["frames_received"] + rb["frames_received"] == p["frames_sent"], "frames received != frames sent")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sender", required=True)
    ap.add_argument("--receiver", required=True)
    ap.add_argument("--python-receiver", required=True)
    ap.add_argument("--tsan-suppressions")
    ap.add_argument("--lsan-suppressions")
    ap.add_argument("--stalled-fps", type=int, default=100,
                    help="push_stalled's camera rate (sanitized builds run it slower: see CMakeLists.txt)")
    ap.add_argument("case")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="zmq-stream-test-") as tmpdir:
        c = Case(a, tmpdir)
        cases = {
            "tcp": lambda: case_stream(c, "tcp://127.0.0.1:*", "cpp"),
            "ipc": lambda: case_stream(c, f"ipc://{tmpdir}/frames.sock", "cpp"),
            "python": lambda: case_stream(c, "tcp://127.0.0.1:*", "python"),
            "push_drop": lambda: case_push_backpressure(c, "drop"),
            "push_fallback": lambda: case_push_backpressure(c, "fallback"),
            "push_block": lambda: case_push_backpressure(c, "block"),
            "pub_slow": lambda: case_pub_slow(c),
            "never_started_push": lambda: case_never_started(c, "push"),
            "never_started_pub": lambda: case_never_started(c, "pub"),
            "never_started_push_drop": lambda: case_never_started_push_drop(c),
            "curve": lambda: case_curve(c),
            "plain_warning": lambda: case_plain_warning(c),
            "push_stalled": lambda: case_push_stalled(c),
            "two_pull": lambda: case_two_pull(c),
            "lost_at_close": lambda: case_lost_at_close(c),
            "receiver_killed": lambda: case_receiver_killed(c),
            "receiver_restarted": lambda: case_receiver_restarted(c),
            "garbage_cpp": lambda: case_garbage(c, "cpp"),
            "garbage_python": lambda: case_garbage(c, "python"),
            "bad_endpoints": lambda: case_bad_endpoints(c),
            "receiver_bad_args": lambda: case_receiver_bad_args(c),
        }
        if a.case not in cases:
            fail(f"unknown case {a.case}; known: {', '.join(cases)}")
        cases[a.case]()
        c.done(a.case)


if __name__ == "__main__":
    main()
