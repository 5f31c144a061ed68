#!/usr/bin/env python3
"""The camera lost mid-run: --source=aravis:127.0.0.1 with Aravis's GigE Vision
fake camera as a child process, killed (SIGKILL) once frames flow.

usage: check_camera_lost.py FRAME_PIPELINE FAKE_GV_CAMERA [demo flags...]

Checks that the demo
  - tells the user at once: the loss and why the shutdown takes a while are
    on stderr before the summary (not only together with it);
  - exits 1 ("1 = camera lost"), the summary naming the loss;
  - counts the wait for Aravis's teardown in the summary's elapsed time (no
    less than the wall time from the first progress line to the summary);
  - reports 0 hot-path allocations: the loss report is not the frame path;
  - balances its books: every frame delivered is verified and written.
The camera is stopped and reaped by PID, also when a check fails.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from fake_gige_camera import die_with_parent, fake_camera

TIMEOUT_S = 100


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    binary, camera_exe, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    with tempfile.TemporaryDirectory(prefix="frame_pipeline_lost_") as tmpdir, \
            fake_camera(camera_exe, fail, stderr=subprocess.DEVNULL) as camera:
        demo = None
        try:
            cmd = [binary, "--source=aravis:127.0.0.1", "--json", "--duration=60", *args]
            print("$ " + " ".join(cmd), flush=True)
            demo = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env=dict(os.environ, TMPDIR=tmpdir), preexec_fn=die_with_parent)
            lines = []  # (time read, stderr line)
            first_progress = threading.Event()

            def read_stderr():
                for line in demo.stderr:
                    lines.append((time.monotonic(), line.rstrip("\n")))
                    if " frames " in line:
                        first_progress.set()

            reader = threading.Thread(target=read_stderr)
            reader.start()
            if not first_progress.wait(timeout=30):
                fail("no progress line within 30 s")
            t_progress = time.monotonic()
            camera.kill()  # the camera is lost: no answer, no frame
            camera.wait()
            print("killed the fake camera", flush=True)
            # stdout here, stderr on the reader thread (communicate() would
            # read stderr too); a timer bounds the wait.
            watchdog = threading.Timer(TIMEOUT_S, demo.kill)
            watchdog.start()
            out = demo.stdout.read()
            t_summary = time.monotonic()  # the summary comes at exit (--json)
            demo.wait()
            watchdog.cancel()
            reader.join()
            if demo.returncode == -signal.SIGKILL:
                fail(f"the demo did not exit within {TIMEOUT_S} s of losing its camera")
        finally:
            stop(camera)
            if demo is not None:
                stop(demo)
        for t, line in lines:
            print(f"[{t - t_progress:6.2f} s] {line}")
        print(out)
        print(f"(exit code {demo.returncode}; summary {t_summary - t_progress:.2f} s after the first progress line)")
        if demo.returncode != 1:
            fail(f"exit code {demo.returncode}, expected 1 (camera lost)")
        s = json.loads(out)
        if s["stop_reason"] != "camera_lost" or not s.get("camera_error"):
            fail(f"stop_reason {s['stop_reason']}, camera_error {s.get('camera_error')}")
        told = [t for t, line in lines if "camera is lost" in line]
        stopping = [t for t, line in lines if "stopping; Aravis waits" in line]
        if not told or not stopping:
            fail("the loss and the coming wait were not reported on stderr while the demo shut down")
        # What the user sees on stderr precedes the summary, which comes at
        # exit: the loss is told while Aravis's teardown is still running.
        if stopping[0] > t_summary:
            fail("the loss was reported only at exit")
        waited = t_summary - t_progress
        if s["elapsed_s"] + 0.5 < waited:
            fail(f"summary elapsed {s['elapsed_s']:.2f} s leaves out the shutdown wait ({waited:.2f} s since the first "
                 "progress line)")
        if s["allocations_counted"] and s["hot_path_allocations"] != 0:
            fail(f"{s['hot_path_allocations']} hot-path allocations (the loss report must not count)")
        if s["frames_verified"] != s["frames_delivered"] or s["writer"]["frames"] != s["frames_delivered"]:
            fail("delivered frames not all verified and written")
        if s["frames_delivered"] == 0:
            fail("no frame delivered before the loss")
        left = os.listdir(tmpdir)
        if left:
            fail(f"files left behind in TMPDIR: {left}")
    print(f"PASS: camera lost ({s['frames_delivered']} frames before, elapsed {s['elapsed_s']:.2f} s, "
          f"exit code 1)")


if __name__ == "__main__":
    main()
