"""Aravis's GigE Vision fake camera (arv-fake-gv-camera) as a child process of
the demo's process tests: one definition for check_run.py (aravis_gige) and
check_camera_lost.py. GVCP's UDP port 3956 is fixed, so ctest serializes
these cases (RESOURCE_LOCK) and a camera that is not ours is refused, never
killed.
"""
import contextlib
import ctypes
import signal
import socket
import subprocess
import time

GVCP_PORT = 3956


def udp_port_bound(address, port):
    """True if some process has bound UDP address:port (the fake camera is up)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind((address, port))
        return False
    except OSError:
        return True
    finally:
        probe.close()


def die_with_parent():
    """preexec_fn: the child gets SIGKILL if this script dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


@contextlib.contextmanager
def fake_camera(camera_exe, fail, stderr=None):
    """Starts the fake camera on 127.0.0.1 and yields its Popen once it has
    bound UDP 3956 (10 s at most, else fail()). On leaving, also when a check
    failed, stops it (SIGTERM, SIGKILL after 10 s) and reaps it by its PID.
    fail(message) must not return (the scripts' fail() exits)."""
    if udp_port_bound("127.0.0.1", GVCP_PORT):
        fail(f"UDP 127.0.0.1:{GVCP_PORT} is already taken (another fake camera?): refusing to talk to it")
    print(f"$ {camera_exe} -i 127.0.0.1 &", flush=True)
    camera = subprocess.Popen([camera_exe, "-i", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=stderr,
                              preexec_fn=die_with_parent)
    try:
        deadline = time.monotonic() + 10
        while not udp_port_bound("127.0.0.1", GVCP_PORT):
            if camera.poll() is not None or time.monotonic() > deadline:
                fail("the fake camera did not come up")
            time.sleep(0.02)
        yield camera
    finally:
        if camera.poll() is None:
            camera.terminate()
            try:
                camera.wait(timeout=10)
            except subprocess.TimeoutExpired:
                camera.kill()
                camera.wait()
