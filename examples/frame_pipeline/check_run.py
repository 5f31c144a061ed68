#!/usr/bin/env python3
"""Runs the frame_pipeline demo in one test mode and checks its results.

usage: check_run.py BINARY MODE [demo flags...]
       check_run.py BINARY encode CHECK_ENCODED [demo flags...]

Modes: default, fallback, drop, block (a run whose --json summary is checked),
policies (--policy per consumer: a throttled writer that drops),
bad_args, failures (exit 1 cases), help, json, sigint, sigkill_scratch (a SIGKILLed
run leaves no scratch file), serve (--serve with a
C++ and a Python subscriber process: $SHM_SUBSCRIBER, $SHM_PYTHON $SHM_VIEWER),
serve_stable (the same, both subscribers with --verify=stable), serve_pool_too_small
(exit 2 and what is needed); with Aravis: aravis (a
--source=aravis run), aravis_bad_args, and aravis_gige FAKE_GV_CAMERA (starts
Aravis's GigE Vision fake camera on 127.0.0.1, runs --source=aravis:127.0.0.1,
stops the camera); with FFmpeg: encode (--encode runs whose files
CHECK_ENCODED decodes and verifies, and bad --encode values). Every run gets a fresh, private TMPDIR, which
must be empty again afterwards (the temporary output file is unlinked as soon as it is open).
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

from fake_gige_camera import fake_camera

TIMEOUT_S = 100


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def run(binary, args, tmpdir):
    """Runs the demo to completion; returns (exit code, stdout, stderr)."""
    env = dict(os.environ, TMPDIR=tmpdir)
    print("$ frame_pipeline " + " ".join(args), flush=True)
    proc = subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    sys.stdout.write(proc.stderr)
    sys.stdout.write(proc.stdout)
    print(f"(exit code {proc.returncode})", flush=True)
    return proc.returncode, proc.stdout, proc.stderr


def expect_clean_tmpdir(tmpdir):
    left = os.listdir(tmpdir)
    if left:
        fail(f"files left behind in TMPDIR: {left}")


def check_consumers(s):
    """Every consumer (a Broadcast subscriber) was offered every delivered
    frame, and took it, skipped it by policy, or had it discarded."""
    consumers = s["consumers"]
    for name in ("writer", "preview", "verifier"):
        if name not in consumers:
            fail(f"no '{name}' in the consumers' counts")
    for name, c in consumers.items():
        if c["delivered"] + c["dropped"] + c["discarded"] != s["frames_delivered"]:
            fail(f"consumer {name}: delivered {c['delivered']} + dropped {c['dropped']} + discarded "
                 f"{c['discarded']} != frames delivered {s['frames_delivered']}")
        if c["high_water"] > c["capacity"] or c["timed_out"] > c["dropped"]:
            fail(f"consumer {name}: counts out of range: {c}")
    if consumers["verifier"]["delivered"] != s["frames_delivered"]:
        fail("the verifier (block) missed frames")


def check_summary(summary, allow_incomplete=False):
    """The invariants of every successful run. allow_incomplete: a run that
    lost frames on purpose (a tiny pool, a throttled writer) exits 1 because
    fewer frames were recorded than produced; that must be the only reason,
    and it must be said."""
    s = summary
    incomplete = not s["recording_complete"]
    if incomplete != (s["frames_recorded"] < s["frames_produced"]):
        fail(f"recording_complete {s['recording_complete']} but recorded {s['frames_recorded']} of {s['frames_produced']}")
    if s["exit_code"] != (1 if incomplete else 0) or (incomplete and not allow_incomplete):
        fail(f"exit_code {s['exit_code']} in the summary (recorded {s['frames_recorded']} of {s['frames_produced']})")
    if s["frames_recorded"] != s["writer"]["frames"]:
        fail(f"frames_recorded {s['frames_recorded']} != writer frames {s['writer']['frames']}")
    if s["integrity_failures"] != 0:
        fail(f"{s['integrity_failures']} integrity failures: {s['first_failure']}")
    if s["frames_verified"] + s.get("frames_unchecked", 0) != s["frames_delivered"]:
        fail(f"verified {s['frames_verified']} (+ unchecked) != delivered {s['frames_delivered']}")
    if s["writer"]["frames"] != s["frames_delivered"]:
        fail(f"writer wrote {s['writer']['frames']} frames, delivered {s['frames_delivered']}")
    failed_buffers = s.get("failed_buffers", 0)  # --source=aravis: incomplete frames, re-queued
    if s["frames_produced"] != s["frames_delivered"] + s["frames_dropped"] + s["sdk_overruns"] + failed_buffers:
        fail("produced != delivered + dropped + SDK overruns + failed buffers")
    if s["frames_delivered"] != s["frames_pooled"] + s["fallbacks"]:
        fail("delivered != pooled + fallbacks")
    if s["frames_delivered"] == 0:
        fail("no frame delivered")
    if s["allocations_counted"] and s["hot_path_allocations"] != 0:
        fail(f"{s['hot_path_allocations']} heap allocations on the hot path after warm-up")
    check_consumers(s)
    pool = s["pool"]
    if pool["acquires"] != pool["releases"]:
        fail(f"pool acquires {pool['acquires']} != releases {pool['releases']} at exit")


def summary_of(binary, args, tmpdir, allow_incomplete=False):
    code, out, err = run(binary, [*args, "--json"], tmpdir)
    try:
        summary = json.loads(out)
    except json.JSONDecodeError as e:
        fail(f"--json output does not parse: {e}")
    incomplete = allow_incomplete and not summary["recording_complete"]
    if code != (1 if incomplete else 0):
        fail(f"exit code {code}")
    if incomplete and "frames the camera produced" not in err:
        fail("an incomplete recording was not reported on stderr")
    return summary


def mode_run(binary, mode, args, tmpdir):
    # The exhausted-pool modes lose frames on purpose (SDK overruns behind a
    # throttled writer, drops): exit 1, said, is right for them.
    lossy = mode in ("fallback", "drop", "block")
    s = summary_of(binary, args, tmpdir, allow_incomplete=lossy)
    check_summary(s, allow_incomplete=lossy)
    if mode == "fallback":
        if s["fallbacks"] == 0 or s["pool_exhausted"] == 0:
            fail("the pool never ran dry: expected fallbacks > 0")
        if s["frames_dropped"] != 0:
            fail("fallback policy dropped frames")
        # Fallbacks after warm-up are counted apart, as the expected allocations.
        if s["allocations_counted"] and s["fallbacks"] > 10 and s["fallback_allocations"] == 0:
            fail("fallbacks were not counted as (expected) allocations")
    elif mode == "drop":
        if s["frames_dropped"] == 0:
            fail("expected dropped frames")
        if s["fallbacks"] != 0:
            fail("drop policy made heap fallbacks")
    elif mode == "block":
        if s["blocked_waits"] == 0:
            fail("expected blocked waits")
        if s["frames_dropped"] != 0 or s["fallbacks"] != 0:
            fail("block policy dropped frames or fell back to the heap")
        if s["acquire_wait_us"]["max"] < s["config"]["timeout_ms"] * 1000:
            fail("a blocked wait should exceed --timeout")
    expect_clean_tmpdir(tmpdir)
    print(f"PASS: {mode}")


BAD_ARGS = [
    (["--frame-bytes=0"], "--frame-bytes"),
    (["--frame-bytes=12Q"], "--frame-bytes"),
    (["--frame-bytes=2G"], "--frame-bytes"),
    (["--pool=0"], "--pool"),
    (["--pool=-3"], "--pool"),
    (["--fps=-5"], "--fps"),
    (["--fps=0"], "--fps"),
    (["--fps=1e9"], "--fps"),
    (["--fps=nan"], "--fps"),
    (["--duration=0"], "--duration"),
    (["--duration=abc"], "--duration"),
    (["--frames=0"], "--frames"),
    (["--timeout=-1"], "--timeout"),
    (["--on-exhausted=panic"], "--on-exhausted"),
    (["--writer-mbps=-1"], "--writer-mbps"),
    (["--preview-every=0"], "--preview-every"),
    (["--corrupt-every=x"], "--corrupt-every"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--fps"], "--fps"),
    (["stray"], "stray"),
    (["--frame-bytes=1G", "--pool=4096"], "--frame-bytes"),
    (["--serve="], "--serve"),
    (["--source=camera"], "--source"),
    (["--source=aravis:"], "--source"),
    (["--policy=writer:fast"], "--policy"),
    (["--policy=writer:block:0"], "--policy"),
    (["--policy=nobody:block"], "--policy"),
]


def expect_usage_error(binary, args, flag, tmpdir):
    """A rejected command line: exit 2, a message on stderr naming `flag`, nothing on stdout or left behind."""
    code, out, err = run(binary, args, tmpdir)
    if code != 2:
        fail(f"{args}: exit code {code}, expected 2")
    if flag not in err:
        fail(f"{args}: the message does not name {flag}")
    if out:
        fail(f"{args}: printed to stdout on a usage error")
    expect_clean_tmpdir(tmpdir)
    return err


def mode_bad_args(binary, tmpdir):
    cases = BAD_ARGS + [
        ([f"--out={tmpdir}/no/such/dir/frames.bin", "--frames=5"], "--out"),
        ([f"--out={tmpdir}", "--frames=5"], "--out"),  # a directory
    ]
    for args, flag in cases:
        err = expect_usage_error(binary, args, flag, tmpdir)
        if flag.startswith("--") and flag != "--no-such-flag" and "allowed" not in err and "missing value" not in err:
            fail(f"{args}: the message does not give the allowed range")
    print("PASS: bad_args")


def mode_failures(binary, tmpdir):
    """Corrupted frames and a failing writer must fail the run with exit 1."""
    s = None
    code, out, _ = run(binary, ["--frames=40", "--fps=400", "--frame-bytes=64K", "--corrupt-every=7", "--json"], tmpdir)
    s = json.loads(out)
    if code != 1 or s["exit_code"] != 1:
        fail(f"corrupted frames: exit code {code}, expected 1")
    if s["integrity_failures"] == 0 or s["first_failure"] is None:
        fail("corrupted frames were not caught")
    if s["integrity_failures"] != s["frames_delivered"] - s["frames_verified"]:
        fail("integrity failures + verified != delivered")
    expect_clean_tmpdir(tmpdir)
    if os.path.exists("/dev/full"):
        code, out, err = run(binary, ["--frames=20", "--fps=400", "--frame-bytes=64K", "--out=/dev/full", "--json"],
                             tmpdir)
        s = json.loads(out)
        if code != 1 or s["writer"]["error"] is None or "/dev/full" not in err or s["recording_complete"]:
            fail(f"a failing writer: exit code {code}, expected 1 and an error message")
    print("PASS: failures")


FLAGS = ["--duration", "--frames", "--frame-bytes", "--fps", "--pool", "--timeout", "--on-exhausted", "--out",
         "--writer-mbps", "--preview-every", "--corrupt-every", "--source", "--publish",
         "--publish-mode", "--publish-hwm", "--publish-budget", "--publish-full", "--publish-key", "--publish-allow",
         "--serve", "--encode",
         "--json", "--quiet", "--help"]


def mode_help(binary, tmpdir):
    code, out, _ = run(binary, ["--help"], tmpdir)
    if code != 0:
        fail(f"--help exit code {code}")
    for flag in FLAGS:
        if flag not in out:
            fail(f"--help does not list {flag}")
    for default in ["5\n", "none\n", "8M\n", "100\n", "30\n", "50\n", "fallback\n", "a temp file\n",
                    "0 (unthrottled)\n", "10\n", "0 (never)\n", "sim\n"]:
        if default not in out:
            fail(f"--help does not give the default {default.strip()}")
    print("PASS: help")


def mode_json(binary, args, tmpdir):
    code, out, _ = run(binary, [*args, "--json"], tmpdir)
    if code != 0:
        fail(f"exit code {code}")
    tool = subprocess.run([sys.executable, "-m", "json.tool"], input=out, capture_output=True, text=True)
    if tool.returncode != 0:
        fail(f"python3 -m json.tool rejects the output: {tool.stderr}")
    check_summary(json.loads(out))
    expect_clean_tmpdir(tmpdir)
    print("PASS: json")


def start_flowing(binary, args, tmpdir, note):
    """Starts the demo with TMPDIR=tmpdir and waits, at most 30 s, until frames
    flow (a progress line on stderr that counts delivered frames; a loaded
    machine may take a while to set up). Returns (proc, err_lines, reader): a
    thread keeps reading stderr into err_lines (communicate() can't: it would
    race it for the same pipe). On failure the demo is killed and reaped."""
    env = dict(os.environ, TMPDIR=tmpdir)
    print("$ frame_pipeline " + " ".join(args) + f"   ({note})", flush=True)
    proc = subprocess.Popen([binary, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err_lines = []
    flowing = threading.Event()

    def read_stderr():
        for line in proc.stderr:
            err_lines.append(line)
            m = re.search(r" s  (\d+) frames ", line)
            if m and int(m.group(1)) > 0:
                flowing.set()

    reader = threading.Thread(target=read_stderr)
    reader.start()
    if not flowing.wait(timeout=30):
        proc.kill()
        proc.wait()
        reader.join()
        sys.stdout.write("".join(err_lines))
        fail("no frame delivered within 30 s (progress lines)")
    return proc, err_lines, reader


def open_scratch_files(pid, tmpdir):
    """The demo's descriptors on scratch files in tmpdir, as {fd path: target}
    (Linux /proc; a target whose name is gone ends in " (deleted)")."""
    found = {}
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith(os.path.join(tmpdir, "daq-pool-frames-")):
            found[f"{fd_dir}/{fd}"] = target
    return found


def mode_sigint(binary, args, tmpdir):
    proc, err_lines, reader = start_flowing(binary, [*args, "--json"], tmpdir, "SIGINT after 0.5 s")
    # The scratch file is open in TMPDIR and its name already gone.
    scratch = open_scratch_files(proc.pid, tmpdir)
    if not scratch or os.listdir(tmpdir):
        proc.kill()
        proc.wait()
        reader.join()
        fail(f"expected the scratch file open in TMPDIR and unlinked: open {scratch}, "
             f"in TMPDIR {os.listdir(tmpdir)}")
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    out = proc.stdout.read()
    proc.wait()
    watchdog.cancel()
    reader.join()
    err = "".join(err_lines)
    if proc.returncode == -signal.SIGKILL:
        fail("no exit within 60 s of SIGINT")
    sys.stdout.write(err)
    sys.stdout.write(out)
    print(f"(exit code {proc.returncode}, {time.monotonic() - sent:.2f} s after SIGINT)")
    s = json.loads(out)
    # What this case checks is the stop: on time, clean, summarized. A run
    # that lost frames before the SIGINT (SDK overruns: a machine too loaded
    # to keep a sanitized pipeline at 100 fps) exits 1 and says so; that is
    # the truth told, not a failure of the stop (check_summary verifies it
    # is the only reason and that it was said).
    incomplete = proc.returncode == 1 and not s["recording_complete"]
    if proc.returncode != 0 and not incomplete:
        fail(f"exit code {proc.returncode} after SIGINT")
    if incomplete and "frames the camera produced" not in err:
        fail("an incomplete recording was not reported on stderr")
    if s["stop_reason"] != "signal" or not s["interrupted"]:
        fail("the summary does not say the run was interrupted")
    check_summary(s, allow_incomplete=True)
    expect_clean_tmpdir(tmpdir)
    print("PASS: sigint")


def mode_sigkill_scratch(binary, args, tmpdir):
    """SIGKILL while recording to the default scratch file: nothing may be
    left in TMPDIR (the file's name goes as soon as the recorder has it open;
    its blocks go with the last descriptor, i.e. with the process)."""
    proc, err_lines, reader = start_flowing(binary, [*args, "--json"], tmpdir, "SIGKILL once recording")
    try:
        # Recording: the scratch file, found through the demo's descriptors,
        # holds more than its header. At most 30 s, in 0.1 s steps.
        recording = False
        for _ in range(300):
            if proc.poll() is not None:
                break
            for fd_path in open_scratch_files(proc.pid, tmpdir):
                try:
                    if os.stat(fd_path).st_size > 1 << 20:
                        recording = True
                except OSError:
                    pass
            if recording:
                break
            time.sleep(0.1)
        if not recording:
            fail("the demo never recorded 1 MiB to a scratch file in TMPDIR within 30 s")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join()
    sys.stdout.write("".join(err_lines[-3:]))
    print(f"(exit code {proc.returncode})")
    if proc.returncode != -signal.SIGKILL:
        fail(f"exit code {proc.returncode}, expected death by SIGKILL")
    expect_clean_tmpdir(tmpdir)
    print("PASS: sigkill_scratch")


def mode_serve_pool_too_small(binary, tmpdir):
    """--serve with a --pool the viewers could drain: refused with exit 2 and
    a message saying what is needed (shm_server.hpp: 4 subscribers x 2 frames
    in flight + a margin of 8 = 16 buffers), nothing left behind."""
    err = expect_usage_error(binary, [f"--serve={tmpdir}/frames.sock", "--pool=8", "--frames=10"], "--serve", tmpdir)
    for needed in ("the pool has 8 buffers", "give a pool of at least 16 buffers"):
        if needed not in err:
            fail(f"the message does not say {needed!r}")
    print("PASS: serve_pool_too_small")


def mode_serve(binary, args, tmpdir, stable=False):
    """--serve: a C++ and a Python subscriber process verify every frame they get, in place.
    stable (serve_stable, for camera sources whose frames are not the demo's
    pattern): both subscribers with --verify=stable."""
    sock_dir = os.path.join(tmpdir, "serve")  # created 0700 by the server
    path = os.path.join(sock_dir, "frames.sock")
    env = dict(os.environ, TMPDIR=tmpdir)
    print(f"$ frame_pipeline {' '.join(args)} --serve={path} --json", flush=True)
    demo = subprocess.Popen([binary, *args, f"--serve={path}", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    subs = [
        ("C++", [os.environ["SHM_SUBSCRIBER"], f"--path={path}", "--json", "--quiet", "--connect-timeout=30",
                 "--keep=2"]),
        ("Python", [os.environ.get("SHM_PYTHON", ""), os.environ.get("SHM_VIEWER", ""), f"--path={path}", "--json", "--quiet",
                    "--connect-timeout=30"]),
    ]
    if stable:
        subs = [(name, cmd + ["--verify=stable"]) for name, cmd in subs]
    procs = [(name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for name, cmd in subs]
    try:
        out, err = demo.communicate(timeout=TIMEOUT_S)
        results = [(name, *p.communicate(timeout=60), p.returncode) for name, p in procs]
    finally:
        for p in [demo] + [p for _, p in procs]:
            if p.poll() is None:
                p.kill()
                p.wait()
    sys.stdout.write(err)
    sys.stdout.write(out)
    s = json.loads(out)
    # A camera source (stable: --source=aravis) may overrun on a loaded
    # machine: the demo then exits 1 and says so (check_summary checks that
    # this is the only reason); the simulated source must not lose a frame.
    if demo.returncode != 0 and not (stable and demo.returncode == 1 and not s["recording_complete"]):
        fail(f"frame_pipeline --serve: exit code {demo.returncode}")
    check_summary(s, allow_incomplete=stable)
    serve = s["serve"]
    if serve is None or serve["subscribers"] != len(subs):
        fail(f"expected {len(subs)} subscribers served: {serve}")
    if serve["published"] != s["frames_pooled"] or serve["not_shared"] != s["fallbacks"]:
        fail("every pooled frame must be published, every heap fallback refused")
    if serve["sent"] == 0 or serve["bad_messages"] != 0:
        fail(f"nothing sent, or bad messages: {serve}")
    for name, sout, serr, code in results:
        sys.stdout.write(serr)
        sys.stdout.write(sout)
        if code != 0:
            fail(f"the {name} subscriber: exit code {code}")
        r = json.loads(sout)
        if r["frames"] == 0 or r["verified"] != r["frames"] or r["recheck_failures"] != 0:
            fail(f"the {name} subscriber: {r['frames']} frames, {r['verified']} verified")
        if not r["zero_copy"] or r["end_reason"] != "end_of_stream":
            fail(f"the {name} subscriber: zero_copy {r['zero_copy']}, ended by {r['end_reason']}")
    expect_clean_tmpdir(tmpdir)
    print("PASS: serve")


def mode_serve_stopped(binary, args, tmpdir):
    """--serve with 4 viewers stopped by SIGSTOP early in the run: acquisition
    keeps its full rate with no heap fallback, no overrun and no exhausted
    pool (the server refused any --pool they could drain), the viewers are
    told what they missed, and after SIGCONT they exit cleanly."""
    path = os.path.join(tmpdir, "serve", "frames.sock")
    env = dict(os.environ, TMPDIR=tmpdir)
    print(f"$ frame_pipeline {' '.join(args)} --serve={path} --json   (4 viewers, SIGSTOP 0.5 s after the socket appears)", flush=True)
    demo = subprocess.Popen([binary, *args, f"--serve={path}", "--json"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    viewers = [subprocess.Popen([os.environ["SHM_SUBSCRIBER"], f"--path={path}", "--json", "--quiet",
                                 "--connect-timeout=30", "--keep=2"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(path) and time.monotonic() < deadline and demo.poll() is None:
            time.sleep(0.01)
        time.sleep(0.5)  # the viewers connect within milliseconds of the socket appearing
        for v in viewers:
            v.send_signal(signal.SIGSTOP)
        out, err = demo.communicate(timeout=TIMEOUT_S)
        for v in viewers:
            v.send_signal(signal.SIGCONT)
        results = [(*v.communicate(timeout=60), v.returncode) for v in viewers]
    finally:
        for p in [demo, *viewers]:
            if p.poll() is None:
                p.send_signal(signal.SIGCONT)
                p.kill()
                p.wait()
    sys.stdout.write(err)
    sys.stdout.write(out)
    if demo.returncode != 0:
        fail(f"frame_pipeline --serve: exit code {demo.returncode}")
    s = json.loads(out)
    check_summary(s)
    if s["fallbacks"] != 0 or s["sdk_overruns"] != 0 or s["frames_dropped"] != 0:
        fail(f"stopped viewers slowed acquisition: {s['fallbacks']} fallbacks, {s['sdk_overruns']} overruns, "
             f"{s['frames_dropped']} dropped")
    serve = s["serve"]
    if serve is None or serve["skipped"] == 0:
        fail(f"the stopped viewers should have been skipped: {serve}")
    for sout, serr, code in results:
        sys.stdout.write(serr)
        sys.stdout.write(sout)
        if code not in (0, 3):
            fail(f"a viewer: exit code {code}")
        r = json.loads(sout)
        if r["integrity_failures"] != 0 or r["recheck_failures"] != 0:
            fail(f"a viewer saw a changed frame: {r}")
    expect_clean_tmpdir(tmpdir)
    print("PASS: serve_stopped")


def check_camera_run(s, what):
    """A --source=aravis run of the fake camera: zero copy, every pixel checked.
    The camera may overrun on a loaded machine (then the demo exits 1 and says
    so: allow_incomplete), but never copies, drops or corrupts."""
    check_summary(s, allow_incomplete=True)
    if not s["source"].startswith("aravis"):
        fail(f"{what}: source is {s['source']}")
    if s["copies_per_frame"] != 0:
        fail(f"{what}: {s['copies_per_frame']} copies per frame in our code, expected 0")
    if "fake camera" not in s["verification"] or s["frames_unchecked"] != 0:
        fail(f"{what}: the fake camera's frames were not all checked: {s['verification']}")
    if s["fallbacks"] != 0 or s["frames_dropped"] != 0:
        fail(f"{what}: a camera source neither copies to the heap nor drops")
    if s["camera_error"] is not None:
        fail(f"{what}: camera error {s['camera_error']}")
    for key in ("frames_lost_to_underruns", "failed_buffers", "library_allocations"):
        if key not in s:
            fail(f"{what}: the summary lacks {key}")


def mode_aravis(binary, args, tmpdir):
    s = summary_of(binary, ["--source=aravis", *args], tmpdir, allow_incomplete=True)
    check_camera_run(s, "aravis")
    expect_clean_tmpdir(tmpdir)
    print(f"PASS: aravis ({s['frames_verified']} frames verified pixel by pixel, {s['camera']})")


def mode_aravis_bad_args(binary, tmpdir):
    cases = [
        (["--source=aravis", "--corrupt-every=3"], "--corrupt-every"),
        (["--source=aravis:no-such-camera", "--frames=5"], "--source=aravis:no-such-camera"),
    ]
    for args, flag in cases:
        expect_usage_error(binary, args, flag, tmpdir)
    print("PASS: aravis_bad_args")


def mode_aravis_gige(binary, camera_exe, args, tmpdir):
    """The demo over real GigE Vision: Aravis's fake camera as a child process."""
    with fake_camera(camera_exe, fail):
        s = summary_of(binary, ["--source=aravis:127.0.0.1", *args], tmpdir, allow_incomplete=True)
        check_camera_run(s, "aravis_gige")
        if s["frames_delivered"] * 10 < (s["frames_delivered"] + s["failed_buffers"]) * 9:
            fail(f"fewer than 90 % of the frames complete: {s['failed_buffers']} failed")
    expect_clean_tmpdir(tmpdir)
    print(f"PASS: aravis_gige ({s['frames_verified']} frames verified, {s['failed_buffers']} failed, "
          f"{s['library_allocations']} allocations on Aravis's threads)")


def mode_encode(binary, checker, args, tmpdir):
    """--encode into .nut and .mkv: every delivered frame encoded or counted
    as skipped, the file decodes to exactly the camera's frames that were
    encoded; bad --encode values: exit 2."""
    frame_bytes = None
    fps = "100"
    for a in args:
        if a.startswith("--frame-bytes="):
            frame_bytes = a.split("=", 1)[1]
        if a.startswith("--fps="):
            fps = a.split("=", 1)[1]
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    size = int(frame_bytes[:-1]) * units[frame_bytes[-1]] if frame_bytes[-1] in units else int(frame_bytes)
    for ext in ("nut", "mkv"):
        path = os.path.join(tmpdir, f"frames.{ext}")
        s = summary_of(binary, [*args, f"--encode={path}"], tmpdir)
        check_summary(s)
        e = s["encoder"]
        if e is None:
            fail("no encoder in the summary")
        if e["error"] is not None:
            fail(f"encoder error: {e['error']}")
        if e["frames"] + e["skipped"] != s["frames_delivered"] or e["frames"] == 0:
            fail(f"encoded {e['frames']} + skipped {e['skipped']} frames, delivered {s['frames_delivered']}")
        if e["width"] != 1024 or e["height"] != size // 1024:
            fail(f"picture {e['width']} x {e['height']}, expected 1024 x {size // 1024}")
        print(f"$ check_encoded {path} {size} {fps}", flush=True)
        proc = subprocess.run([checker, path, str(size), fps], capture_output=True, text=True, timeout=TIMEOUT_S)
        sys.stdout.write(proc.stderr)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            fail(f"check_encoded exit code {proc.returncode}")
        decoded = json.loads(proc.stdout)
        if decoded["frames"] != e["frames"] or decoded["verified"] != e["frames"]:
            fail(f"decoded {decoded['frames']} frames, verified {decoded['verified']}, encoded {e['frames']}")
        os.unlink(path)
        expect_clean_tmpdir(tmpdir)
    bad = [
        ([f"--encode={tmpdir}/frames.txt", "--frames=5"], "--encode"),
        ([f"--encode={tmpdir}/no/such/dir/frames.nut", "--frames=5"], "--encode"),
        ([f"--encode={tmpdir}/frames.nut", "--frames=5", "--frame-bytes=4K"], "--frame-bytes"),
        (["--encode=", "--frames=5"], "--encode"),
    ]
    for bad_args, flag in bad:
        code, out, err = run(binary, bad_args, tmpdir)
        if code != 2:
            fail(f"{bad_args}: exit code {code}, expected 2")
        if flag not in err or "allowed" not in err:
            fail(f"{bad_args}: the message does not name {flag} and what is allowed")
        expect_clean_tmpdir(tmpdir)
    print("PASS: encode")


def mode_policies(binary, args, tmpdir):
    """--policy per consumer: a throttled writer that drops (drop_newest) never
    holds up the acquisition, and its counts add up; the verifier (block)
    still gets every frame."""
    s = summary_of(binary, ["--policy=writer:drop_newest:2", "--policy=preview:keep_latest:1",
                            "--policy=verifier:block:4", *args], tmpdir, allow_incomplete=True)
    w = s["consumers"]["writer"]
    if w["policy"] != "drop_newest" or w["capacity"] != 2 or s["consumers"]["verifier"]["capacity"] != 4:
        fail(f"--policy not applied: {s['consumers']}")
    if w["dropped"] == 0:
        fail("the throttled drop_newest writer dropped nothing")
    if s["writer"]["frames"] != w["delivered"]:
        fail(f"writer wrote {s['writer']['frames']} frames, its subscriber delivered {w['delivered']}")
    check_consumers(s)
    if s["integrity_failures"] != 0 or s["frames_verified"] != s["frames_delivered"]:
        fail("verification failed")
    if s["pool"]["acquires"] != s["pool"]["releases"]:
        fail("buffers not returned")
    expect_clean_tmpdir(tmpdir)
    print("PASS: policies")


def mode_record(binary, args, tmpdir):
    """--out=*.dqr and --out=*.h5: every frame the summary counts as recorded
    is in the file, read back by another process: examples/python/read_dqr.py
    (numpy.memmap, docs/recording.md's reading) and h5py ($RECORD_PYTHON: a
    Python with numpy and h5py)."""
    python = os.environ.get("RECORD_PYTHON", "/usr/bin/python3")
    here = os.path.dirname(os.path.abspath(__file__))
    reader = os.path.join(here, "..", "python", "read_dqr.py")
    outdir = tempfile.mkdtemp(dir=tmpdir)
    for name in ("rec.dqr", "rec.h5"):
        path = os.path.join(outdir, name)
        s = summary_of(binary, [*args, f"--out={path}"], tmpdir)
        check_summary(s)
        if s["frames_recorded"] != s["frames_produced"]:
            fail(f"{name}: recorded {s['frames_recorded']} of {s['frames_produced']}")
        if name.endswith(".dqr"):
            if not s["writer"]["o_direct"] and "tmpfs" not in open("/proc/mounts").read():
                print("note: O_DIRECT not used (see the summary's writer line)")
            proc = subprocess.run([python, reader, path, "--json"], capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                fail(f"read_dqr.py {path}: {proc.stderr}")
            got = json.loads(proc.stdout)
            size = s["config"]["frame_bytes"] if "frame_bytes" in s["config"] else None
            if got["frames"] != s["frames_recorded"] or got["holes"] != 0:
                fail(f"{name}: the file lists {got['frames']} frames ({got['holes']} holes), "
                     f"the summary {s['frames_recorded']}")
            if got["numbers"] != sorted(set(got["numbers"])):
                fail(f"{name}: frame numbers not increasing")
            if size is not None and got["sizes"] != [size]:
                fail(f"{name}: frame sizes {got['sizes']}, expected {size}")
            if not got["video_matches"]:
                fail(f"{name}: read_dqr.as_video() (one strided array of the file) differs from the frames")
        else:
            code = ("import h5py,sys\n"
                    "f=h5py.File(sys.argv[1],'r')\n"
                    "n=f['frames'].shape[0]\n"
                    "nums=list(f['frame_numbers'][:])\n"
                    "print(n, int(nums==sorted(set(nums))), f['frames'][n-1].nbytes)\n")
            proc = subprocess.run([python, "-c", code, path], capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                fail(f"h5py {path}: {proc.stderr}")
            n, ordered, nbytes = (int(x) for x in proc.stdout.split())
            if n != s["frames_recorded"] or not ordered:
                fail(f"{name}: h5py sees {n} frames (ordered {ordered}), the summary {s['frames_recorded']}")
        os.unlink(path)
        print(f"PASS: record {name}: {s['frames_recorded']} frames, writer {s['writer']}")
    os.rmdir(outdir)
    expect_clean_tmpdir(tmpdir)
    print("PASS: record")


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    binary, mode, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="frame-pipeline-test-") as tmpdir:
        if mode in ("default", "fallback", "drop", "block"):
            mode_run(binary, mode, args, tmpdir)
        elif mode == "policies":
            mode_policies(binary, args, tmpdir)
        elif mode == "bad_args":
            mode_bad_args(binary, tmpdir)
        elif mode == "failures":
            mode_failures(binary, tmpdir)
        elif mode == "help":
            mode_help(binary, tmpdir)
        elif mode == "json":
            mode_json(binary, args, tmpdir)
        elif mode == "sigint":
            mode_sigint(binary, args, tmpdir)
        elif mode == "sigkill_scratch":
            mode_sigkill_scratch(binary, args, tmpdir)
        elif mode == "serve_pool_too_small":
            mode_serve_pool_too_small(binary, tmpdir)
        elif mode == "serve":
            mode_serve(binary, args, tmpdir)
        elif mode == "serve_stopped":
            mode_serve_stopped(binary, args, tmpdir)
        elif mode == "serve_stable":
            mode_serve(binary, args, tmpdir, stable=True)
        elif mode == "aravis":
            mode_aravis(binary, args, tmpdir)
        elif mode == "aravis_bad_args":
            mode_aravis_bad_args(binary, tmpdir)
        elif mode == "aravis_gige":
            mode_aravis_gige(binary, args[0], args[1:], tmpdir)
        elif mode == "record":
            mode_record(binary, args, tmpdir)
        elif mode == "encode":
            mode_encode(binary, args[0], args[1:], tmpdir)
        else:
            fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
