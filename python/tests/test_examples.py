"""examples/python/*.py run as tests, against real producers."""
import os
import subprocess
import sys

import daq_pool
from support import Child, tool, until

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(daq_pool.__file__)))
EXAMPLES = os.path.join(os.path.dirname(PKG_ROOT), "examples", "python")


def script(name, *args, timeout=60):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, MPLBACKEND="Agg")
    return subprocess.Popen([sys.executable, os.path.join(EXAMPLES, name), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def finish(p, timeout=60):
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0, err
    return out


def test_show_frame_and_hold_frames(short_tmp):
    path = os.path.join(short_tmp, "s.sock")
    with Child([tool("DAQ_POOL_SHM_SERVER"), path, 65536, 8, 4]) as server:
        assert server.line() == "ready"
        hold = script("hold_frames.py", path)
        until(lambda: server.command("stats")["subscribers"] == 1, what="hold_frames.py connected")
        server.command("publish 3")
        out = finish(hold)
        assert "held after del: 1" in out and "held after release: 0" in out
        until(lambda: server.command("stats")["subscribers"] == 0, what="hold_frames.py gone")
        png = os.path.join(short_tmp, "f.png")
        show = script("show_frame.py", path, png)
        until(lambda: server.command("stats")["subscribers"] == 1, what="show_frame.py connected")
        server.command("publish 1")
        assert "frame of 65536 bytes" in finish(show)
        assert os.path.getsize(png) > 1000
