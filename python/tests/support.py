"""Helpers of the package's tests: the C++ tools (from environment
variables ctest sets), child processes stopped and reaped by PID, short
private temp directories for sockets."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

CI = os.environ.get("CI") == "true"


def tool(variable):
    """The path in environment variable `variable` (set by ctest), or skip
    the test; with CI=true a missing tool fails it instead."""
    path = os.environ.get(variable)
    if path and os.path.exists(path):
        return path
    why = f"{variable} is not set to an existing program (ctest sets it; see tests/python/CMakeLists.txt)"
    if CI:
        pytest.fail(f"CI=true: {why}")
    pytest.skip(why)


def need_module(name):
    """Import `name` or skip (fail with CI=true)."""
    try:
        return __import__(name)
    except ImportError as e:
        if CI:
            pytest.fail(f"CI=true: module {name} is missing: {e}")
        pytest.skip(f"module {name} is missing: {e}")


class Child:
    """A child process, stopped (SIGTERM, then SIGKILL) and reaped by its
    PID when the `with` block ends, also when the test fails."""

    def __init__(self, argv, *, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=None):
        self.argv = [str(a) for a in argv]
        self.proc = subprocess.Popen(self.argv, stdin=stdin, stdout=stdout, stderr=stderr, text=True, env=env)
        self.pid = self.proc.pid

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def line(self, timeout=20.0):
        """The next stdout line (bounded in time: the child is killed and the
        test fails if none comes)."""
        import selectors
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.stop()
            pytest.fail(f"{self.argv[0]}: no output within {timeout} s")
        text = self.proc.stdout.readline()
        if not text:
            pytest.fail(f"{self.argv[0]} ended (exit {self.proc.wait(5)})")
        return text.rstrip("\n")

    def command(self, text, timeout=20.0):
        """Send one command line, return the reply line parsed as JSON."""
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        return json.loads(self.line(timeout))

    def wait(self, timeout=30.0):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            pytest.fail(f"{self.argv[0]} did not end within {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait(5)
        for f in (self.proc.stdin,):
            if f:
                try:
                    f.close()
                except OSError:
                    pass


def until(predicate, timeout=10.0, what="condition"):
    """Poll `predicate` (bounded in time and count) until it returns a truthy value."""
    end = time.monotonic() + timeout
    for _ in range(100000):
        v = predicate()
        if v:
            return v
        if time.monotonic() > end:
            break
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def short_tmp():
    """A fresh private (0700) directory with a short path (Unix socket paths
    are limited to 107 bytes); removed afterwards."""
    d = tempfile.mkdtemp(prefix="dqpy")
    yield d
    shutil.rmtree(d, ignore_errors=True)


# The demo's frame pattern (examples/frame_pipeline/frame_pattern.hpp,
# daq_pool.pattern), to check that an array shows the producer's bytes in place.
def pattern_ok(a):
    """True if uint8 array `a` is a whole frame of the demo's pattern."""
    from daq_pool import pattern
    return pattern.verify(a) is None


def pattern_number(a):
    """The frame number in `a`'s pattern header."""
    from daq_pool import pattern
    return pattern.frame_number(a)
