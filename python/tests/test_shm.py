"""daq_pool.shm.Subscriber against the real C++ server (a daq_pool::shm::Server
in its own process, tests/python/py_shm_server.cpp, driven over stdin): the
lifetime rule as the *server* counts it, no copy, bad paths, a subscriber
killed while holding frames."""
import gc
import os
import select
import signal
import socket
import struct
import sys
import textwrap

import numpy as np
import pytest

import daq_pool
from daq_pool import NoServerError, ProtocolError, VersionError, address_of, frame_of
from daq_pool.shm import EndOfStream, Subscriber
from support import Child, pattern_number, pattern_ok, tool, until


@pytest.fixture
def server(short_tmp):
    """(child, path): a server of 4 KiB frames, pool 8, max_in_flight 4."""
    path = os.path.join(short_tmp, "frames.sock")
    with Child([tool("DAQ_POOL_SHM_SERVER"), path, 4096, 8, 4]) as child:
        assert child.line() == "ready"
        yield child, path


def subscribe(child, path, n=1, **kw):
    """A Subscriber, once the server has registered it (the v1 server sends
    the hello just before it registers the connection: a frame published in
    between would not be sent to it)."""
    sub = Subscriber(path, **kw)
    until(lambda: child.command("stats")["subscribers"] == n, what=f"{n} subscriber(s) registered")
    return sub


def in_flight(child, n_expected, what):
    return until(lambda: (lambda s: s if s["in_flight"] == n_expected else None)(child.command("stats")),
                 what=f"server in_flight == {n_expected} ({what})")


@pytest.fixture(autouse=True)
def refcount_only():
    gc.disable()  # releases must come from reference counting alone
    yield
    gc.enable()


def test_held_while_array_or_view_lives(server):
    child, path = server
    with subscribe(child, path) as sub:
        child.command("publish 1")
        a = sub.receive(timeout=10)
        assert a is not None and pattern_ok(a) and not a.flags.writeable
        in_flight(child, [1], "the array is alive")
        view = a.reshape(64, 64)[3:5, ::2]  # a slice outliving its parent
        del a
        in_flight(child, [1], "a slice of the array is alive")
        assert sub.held == 1
        del view
        s = in_flight(child, [0], "array and views are garbage")
        assert s["done"] == 1 and s["bad_messages"] == 0
        assert sub.counters()["held"] == 0 and sub.released == 1


def test_no_copy_data_inside_mapping(server):
    child, path = server
    with subscribe(child, path) as sub:
        child.command("publish 3")
        arrays = [sub.receive(timeout=10) for _ in range(3)]
        lo, hi = sub.base_address, sub.base_address + sub.region_size
        for a in arrays:
            assert lo <= address_of(a) and address_of(a) + a.nbytes <= hi
            assert np.shares_memory(a, sub._whole)
            assert pattern_ok(a)
        assert [pattern_number(a) for a in arrays] == [1, 2, 3]
        assert [frame_of(a).sequence for a in arrays] == [1, 2, 3]
        in_flight(child, [3], "three arrays alive")
        del arrays, a  # `a`, the loop's variable, still holds the last one
        in_flight(child, [0], "arrays gone")


def test_explicit_release_and_backpressure(server):
    child, path = server
    with subscribe(child, path) as sub:
        child.command("publish 6")  # max_in_flight 4: two skipped for this subscriber
        got = [sub.receive(timeout=10) for _ in range(4)]
        assert all(g is not None for g in got)
        assert sub.receive(timeout=0.2) is None
        s = child.command("stats")
        assert s["skipped"] == 2 and s["in_flight"] == [4]
        daq_pool.release(got[0])
        daq_pool.release(got[0][5:])  # idempotent
        in_flight(child, [3], "one released explicitly")
        child.command("publish 1")
        a = sub.receive(timeout=10)
        assert frame_of(a).sequence == 7 and sub.skipped == 2  # the gap 5, 6 counted
        del got, a
        in_flight(child, [0], "all dropped")
        assert sub.counters()["received"] == 5


def test_iteration_fileno_and_end_of_stream(server):
    child, path = server
    sub = subscribe(child, path)
    assert sub.receive(timeout=0) is None  # nothing yet: this arms fileno()
    assert select.select([sub], [], [], 0)[0] == []
    child.command("publish 3")
    assert select.select([sub], [], [], 10)[0] == [sub]  # the server woke it
    numbers = []
    child.proc.stdin.write("quit\n")
    child.proc.stdin.flush()
    for a in sub:  # ends at the end of the stream
        numbers.append(frame_of(a).sequence)
        del a
    assert numbers == [1, 2, 3]
    assert child.wait() == 0
    with pytest.raises(EndOfStream):
        sub.receive(timeout=1)
    sub.close()


def test_arrays_outlive_subscriber_close(server):
    child, path = server
    sub = subscribe(child, path)
    child.command("publish 1")
    a = sub.receive(timeout=10)
    sub.close()
    del sub
    in_flight(child, [1], "closed subscriber, array alive: still held")
    assert pattern_ok(a)  # still mapped
    del a
    until(lambda: child.command("stats")["in_flight"] == [], what="the connection closed with the last frame")


def test_subscriber_killed_while_holding(server, short_tmp):
    child, path = server
    holder = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {os.path.dirname(os.path.dirname(daq_pool.__file__))!r})
        from daq_pool.shm import Subscriber
        sub = Subscriber({path!r})
        print("connected", flush=True)
        held = [sub.receive(timeout=20) for _ in range(3)]
        print("holding", len([h for h in held if h is not None]), flush=True)
        sys.stdin.read()
    """)
    with Child([sys.executable, "-c", holder]) as sub_proc:
        assert sub_proc.line() == "connected"
        until(lambda: child.command("stats")["subscribers"] == 1, what="the subscriber connected")
        child.command("publish 3")
        assert sub_proc.line() == "holding 3"
        s = in_flight(child, [3], "the subscriber process holds three")
        assert s["pool_free"] == 5
        os.kill(sub_proc.pid, signal.SIGKILL)
        sub_proc.wait()
    s = until(lambda: (lambda s: s if s["disconnected"] == 1 else None)(child.command("stats")),
              what="the server noticed the dead subscriber")
    assert s["in_flight"] == [] and s["pool_free"] == 8  # every buffer back


def test_no_server(short_tmp):
    with pytest.raises(NoServerError, match="no daq_pool shm server at .*nothing.sock"):
        Subscriber(os.path.join(short_tmp, "nothing.sock"), connect_timeout=0.1)


def _fake_server(path, hello):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.listen(1)
    return s


@pytest.mark.parametrize("version", [1, 3, 99])
def test_wrong_protocol_version(short_tmp, version):
    path = os.path.join(short_tmp, "v.sock")
    listener = _fake_server(path, None)
    fd = os.memfd_create("x")
    os.ftruncate(fd, 4096)
    client = None
    try:
        import threading

        def serve():
            c, _ = listener.accept()
            hello = struct.pack("<IHHQQQIIQ", 0x48535144, version, 1, 4096, 4096, 4096, 1, 1, 1)
            c.sendmsg([hello], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))])
            nonlocal client
            client = c
        t = threading.Thread(target=serve)
        t.start()
        with pytest.raises(VersionError, match=f"speaks shm protocol version {version}; this package reads versions 2"):
            Subscriber(path)
        t.join(10)
    finally:
        os.close(fd)
        listener.close()
        if client:
            client.close()


def test_not_a_hello(short_tmp):
    path = os.path.join(short_tmp, "g.sock")
    listener = _fake_server(path, None)
    import threading
    peer = []

    def serve():
        c, _ = listener.accept()
        c.send(b"garbage garbage garbage")
        peer.append(c)
    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(ProtocolError, match="not a daq_pool shm hello"):
            Subscriber(path)
    finally:
        t.join(10)
        listener.close()
        for c in peer:
            c.close()


def test_layout_from_the_server(short_tmp):
    """A server that states its frame layout (ServerOptions::layout): arrays
    come with that dtype and shape unless the caller chooses; a frame of the
    demo's pattern viewed as bytes is still the same memory."""
    path = os.path.join(short_tmp, "layout.sock")
    with Child([tool("DAQ_POOL_SHM_SERVER"), path, 4096, 8, 4, 1, "<u2:32x64"]) as child:
        assert child.line() == "ready"
        with subscribe(child, path) as sub:
            assert sub.layout == ("<u2", (32, 64))
            child.command("publish 1")
            a = sub.receive(timeout=10)
            assert a.dtype == np.dtype("<u2") and a.shape == (32, 64) and not a.flags.writeable
            assert pattern_ok(a.view(np.uint8).reshape(-1))
            del a
        with subscribe(child, path, dtype=np.uint8) as sub:  # the caller's choice wins
            child.command("publish 1")
            b = sub.receive(timeout=10)
            assert b.dtype == np.uint8 and b.shape == (4096,)
            del b


def test_no_layout_means_bytes(server):
    child, path = server
    with subscribe(child, path) as sub:
        assert sub.layout == ("", ())
        child.command("publish 1")
        a = sub.receive(timeout=10)
        assert a.dtype == np.uint8 and a.shape == (4096,)
        del a


def test_bad_layout_refused_by_the_server(short_tmp):
    """A layout larger than a frame: the C++ server refuses to start, naming it."""
    import subprocess
    path = os.path.join(short_tmp, "bad.sock")
    with Child([tool("DAQ_POOL_SHM_SERVER"), path, 4096, 8, 4, 1, "<u2:64x64"], stderr=subprocess.PIPE) as child:
        code = child.wait()
        err = child.proc.stderr.read()
    assert code != 0
    assert "options.layout" in err and "4096 bytes" in err, err
