"""``python -m daq_pool``: --help, the viewer's --snapshot from each kind of
source (its PNG must be a real image: pixel statistics, not blank), and
clear errors. Each command runs as its own process."""
import json
import os
import socket
import struct
import subprocess
import sys
import threading

import numpy as np

import daq_pool
from support import Child, need_module, tool, until

PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(daq_pool.__file__)))


def run_cli(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, MPLBACKEND="Agg")
    return subprocess.run([sys.executable, "-m", "daq_pool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env)


def png_stats(path):
    need_module("matplotlib")
    import matplotlib.image as mpimg
    img = mpimg.imread(path)  # floats in [0, 1], (H, W, 4)
    return img


def assert_real_image(path, info):
    img = png_stats(path)
    assert img.ndim == 3 and img.shape[0] >= 300 and img.shape[1] >= 400
    gray = img[..., :3].mean(axis=2)
    # the axes' area: the frame drawn, not a blank canvas
    h, w = gray.shape
    inner = gray[h // 5: 4 * h // 5, w // 5: 4 * w // 5]
    assert inner.std() > 0.05, f"blank image (std {inner.std()})"
    assert len(np.unique(np.round(inner, 2))) > 20, "too few grey levels to be a frame"
    assert info["std"] > 0


def test_help():
    r = run_cli("--help")
    assert r.returncode == 0 and "view" in r.stdout and "exit codes" in r.stdout
    r = run_cli("view", "--help")
    assert r.returncode == 0 and "--snapshot" in r.stdout
    r = run_cli()
    assert r.returncode == 2
    r = run_cli("view", "x", "--shape=0x3")
    assert r.returncode == 2 and "--shape" in r.stderr


def test_snapshot_of_a_shm_server(short_tmp):
    path = os.path.join(short_tmp, "s.sock")
    png = os.path.join(short_tmp, "shm.png")
    with Child([tool("DAQ_POOL_SHM_SERVER"), path, 256 * 1024, 8, 4]) as server:
        assert server.line() == "ready"
        env = dict(os.environ, PYTHONPATH=PKG_ROOT, MPLBACKEND="Agg")
        viewer = subprocess.Popen([sys.executable, "-m", "daq_pool", "view", path, f"--snapshot={png}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            until(lambda: server.command("stats")["subscribers"] == 1, what="the viewer connected")
            server.command("publish 2")
            out, err = viewer.communicate(timeout=60)
        finally:
            if viewer.poll() is None:
                viewer.kill()
                viewer.wait()
        assert viewer.returncode == 0, err
        info = json.loads(out)
        assert info["number"] in (1, 2) and info["shape"] == [256, 1024]
        assert_real_image(png, info)


def test_snapshot_of_a_zmq_stream(short_tmp):
    endpoint = f"ipc://{short_tmp}/z"
    png = os.path.join(short_tmp, "zmq.png")
    env = dict(os.environ, PYTHONPATH=PKG_ROOT, MPLBACKEND="Agg")
    viewer = subprocess.Popen([sys.executable, "-m", "daq_pool", "view", endpoint, f"--snapshot={png}",
                               "--frame-bytes=64K", "--timeout=30"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env)
    try:
        with Child([tool("DAQ_POOL_FRAME_PIPELINE"), f"--publish={endpoint}", "--quiet", "--duration=20", "--fps=50",
                    "--frame-bytes=64K"], stdin=subprocess.DEVNULL):
            out, err = viewer.communicate(timeout=60)
    finally:
        if viewer.poll() is None:
            viewer.kill()
            viewer.wait()
    assert viewer.returncode == 0, err
    info = json.loads(out)
    assert info["shape"] == [64, 1024]
    assert_real_image(png, info)


def test_snapshot_of_a_recording(short_tmp):
    path = os.path.join(short_tmp, "r.dqr")
    png = os.path.join(short_tmp, "rec.png")
    subprocess.run([tool("DAQ_POOL_RECORDER"), path, str(2 * 200 * 300), "3", "--dtype=<u2", "--shape=200,300"],
                   check=True, capture_output=True, timeout=60)
    r = run_cli("view", path, f"--snapshot={png}")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["number"] == 2 and info["shape"] == [200, 300] and info["dtype"] == "uint16"
    assert_real_image(png, info)
    r = run_cli("info", path)
    assert r.returncode == 0 and json.loads(r.stdout)["frames"] == 3


def test_no_server_at_the_path(short_tmp):
    r = run_cli("view", os.path.join(short_tmp, "none.sock"), "--snapshot=x.png", "--timeout=0.2")
    assert r.returncode == 2
    assert "no daq_pool shm server at" in r.stderr and "none.sock" in r.stderr


def test_wrong_protocol_version(short_tmp):
    path = os.path.join(short_tmp, "v9.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    peers = []

    def serve():
        c, _ = listener.accept()
        c.send(struct.pack("<IHH", 0x48535144, 9, 1) + bytes(64))
        peers.append(c)
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        r = run_cli("view", path, "--snapshot=x.png")
    finally:
        t.join(5)
        listener.close()
        for c in peers:
            c.close()
    assert r.returncode == 2 and "speaks shm protocol version 9" in r.stderr


def test_refused_frame_size(short_tmp):
    endpoint = f"ipc://{short_tmp}/big"
    with Child([tool("DAQ_POOL_FRAME_PIPELINE"), f"--publish={endpoint}", "--quiet", "--duration=20", "--fps=50",
                "--frame-bytes=64K"], stdin=subprocess.DEVNULL):
        r = run_cli("view", endpoint, "--snapshot=x.png", "--frame-bytes=4K", "--timeout=3")
    assert r.returncode == 2, r.stderr
    assert "max_frame_bytes=4096 (ZMQ_MAXMSGSIZE)" in r.stderr


def test_not_a_recording(short_tmp):
    path = os.path.join(short_tmp, "junk.bin")
    with open(path, "wb") as f:
        f.write(b"junk" * 100)
    r = run_cli("view", path, "--snapshot=x.png")
    assert r.returncode == 2 and "neither a .dqr recording" in r.stderr


def test_live_view_draws_frames(short_tmp):
    """The live loop itself, with the Agg backend (no display): it draws the
    newest frames for --duration seconds and says how many."""
    endpoint = f"ipc://{short_tmp}/live"
    with Child([tool("DAQ_POOL_FRAME_PIPELINE"), f"--publish={endpoint}", "--quiet", "--duration=20", "--fps=50",
                "--frame-bytes=64K"], stdin=subprocess.DEVNULL):
        r = run_cli("view", endpoint, "--frame-bytes=64K", "--duration=3")
    assert r.returncode == 0, r.stderr
    import re
    m = re.search(r"view: (\d+) frames drawn, (\d+) received", r.stdout)
    assert m and int(m.group(1)) >= 1 and int(m.group(2)) >= int(m.group(1)), r.stdout
