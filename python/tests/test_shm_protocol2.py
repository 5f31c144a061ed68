"""The protocol-2 subscriber against a Python fake of the server
(fake_shm_v2.py): the rings, the sleep/wake handshake, the end of the
stream, revocation, refusals and a corrupt control region. The real C++
server is in test_shm.py."""
import gc
import os
import socket
import struct
import threading
import time

import pytest

import daq_pool
from daq_pool import ProtocolError, VersionError, address_of, frame_of
from daq_pool.shm import EndOfStream, RefusedError, Subscriber
from fake_shm_v2 import FakeServerV2


@pytest.fixture
def fake(short_tmp):
    server = FakeServerV2(os.path.join(short_tmp, "v2.sock"))
    yield server
    server.close()


@pytest.fixture(autouse=True)
def refcount_only():
    gc.disable()
    yield
    gc.enable()


def test_frames_held_by_arrays_and_views(fake):
    with Subscriber(fake.path) as sub:
        assert sub.protocol_version == 2
        for i in range(3):
            fake.pool[i * 4096:(i + 1) * 4096] = bytes([i + 1]) * 4096
            fake.publish(i)
        arrays = [sub.receive(timeout=5) for _ in range(3)]
        assert [int(a[0]) for a in arrays] == [1, 2, 3]
        assert [frame_of(a).sequence for a in arrays] == [1, 2, 3]
        assert all(sub.base_address <= address_of(a) < sub.base_address + sub.region_size for a in arrays)
        assert fake.collect() == 3 and sub.held == 3
        view = arrays[1][10:20]
        del arrays
        assert fake.collect() == 1 and fake.held == {1: 2}  # the slice keeps frame 2
        del view
        assert fake.collect() == 0 and sub.released == 3


def test_backpressure_skips_and_explicit_release(fake):
    with Subscriber(fake.path) as sub:
        got = []
        for i in range(6):
            fake.publish(i % 8)
        got = [sub.receive(timeout=5) for _ in range(4)]
        assert sub.receive(timeout=0.05) is None
        assert sub.skipped == 2 and sub.counters()["held"] == 4
        daq_pool.release(got[2])
        assert fake.collect() == 3
        fake.publish(7)
        a = sub.receive(timeout=5)
        assert frame_of(a).sequence == 5 and fake.held[2] == 5  # the released slot reused
        del got, a


def test_sleeping_subscriber_is_woken(fake):
    with Subscriber(fake.path) as sub:
        t = threading.Timer(0.3, lambda: fake.publish(0))
        t.start()
        start = time.monotonic()
        a = sub.receive(timeout=10)
        t.join()
        assert a is not None and fake.wakes_sent == 1
        assert time.monotonic() - start < 5  # woken, not timed out (generous: no timing claim)
        del a


def test_server_sleeping_is_woken_by_release(fake):
    with Subscriber(fake.path) as sub:
        fake.publish(0)
        a = sub.receive(timeout=5)
        fake.c32[384 // 4] = 1  # the server says it sleeps
        del a
        assert os.read(fake.server_wake, 8) == (1).to_bytes(8, "little") and fake.c32[384 // 4] == 0


def test_end_of_stream_after_the_ring_drains(fake):
    sub = Subscriber(fake.path)
    fake.publish(0)
    fake.publish(1)
    fake.stop()
    got = [frame_of(a).sequence for a in sub]
    assert got == [1, 2]
    with pytest.raises(EndOfStream):
        sub.receive(timeout=1)
    sub.close()


def test_revoked(fake):
    sub = Subscriber(fake.path)
    fake.c32[88 // 4] = 1
    with pytest.raises(EndOfStream, match="revoked"):
        sub.receive(timeout=1)
    sub.close()


def test_corrupt_descriptor(fake):
    sub = Subscriber(fake.path)
    fake.publish(0, slot=0)
    a = sub.receive(timeout=5)
    fake.publish(1, slot=0)  # a slot the subscriber still holds
    with pytest.raises(ProtocolError, match="frame descriptor 1 is invalid"):
        sub.receive(timeout=5)
    del a
    sub.close()


def test_out_of_range_frame_refused_and_given_back(fake):
    with Subscriber(fake.path, dtype="<u2", shape=(32, 64)) as sub:
        fake.publish(0, size=fake.region + 1)  # past the pool
        fake.publish(1, size=100)  # too small for the shape
        fake.publish(2)
        a = sub.receive(timeout=5)
        assert a.shape == (32, 64) and frame_of(a).sequence == 3 and sub.refused == 2
        assert fake.collect() == 1
        del a


def test_inconsistent_hello(short_tmp):
    def patch(fields):
        fields[10] = 8  # ring_slots not the power of two for max_in_flight 4
    s = FakeServerV2(os.path.join(short_tmp, "bad.sock"), hello_patch=patch)
    try:
        with pytest.raises(ProtocolError, match="ring_slots is not the power of two"):
            Subscriber(s.path)
    finally:
        s.close()


@pytest.mark.parametrize("patch, why", [
    (lambda f: f.__setitem__(13, b"<u2\0x"), "dtype is not ASCII text padded with NULs"),
    (lambda f: f.__setitem__(14, 5), "ndim exceeds 4"),
    (lambda f: f.__setitem__(18, 3), "a shape dimension beyond ndim is set"),
    (lambda f: (f.__setitem__(14, 1), f.__setitem__(16, 8)), "a shape without a dtype"),
    (lambda f: f.__setitem__(15, 1), "reserved field not 0"),
    (lambda f: (f.__setitem__(13, b"no-such"), f.__setitem__(14, 0)), "is not a numpy dtype"),
])
def test_bad_layout_in_hello(short_tmp, patch, why):
    s = FakeServerV2(os.path.join(short_tmp, "layout.sock"), hello_patch=patch)
    try:
        with pytest.raises(ProtocolError, match=why):
            Subscriber(s.path)
    finally:
        s.close()


def test_future_version(short_tmp):
    s = FakeServerV2(os.path.join(short_tmp, "v3.sock"), version=3)
    try:
        with pytest.raises(VersionError, match="speaks shm protocol version 3; this package reads versions 2"):
            Subscriber(s.path)
    finally:
        s.close()


def test_refused_with_reason(short_tmp):
    path = os.path.join(short_tmp, "full.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(1)
    peers = []

    def serve():
        c, _ = listener.accept()
        c.send(struct.pack("<IHHII", 0x48535144, 2, 4, 2, 8))
        peers.append(c)
    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(RefusedError, match=r"refused this subscriber: max_subscribers \(8\) are already connected"):
            Subscriber(path)
    finally:
        t.join(5)
        listener.close()
        for c in peers:
            c.close()


def test_fileno_for_event_loops(fake):
    import select
    with Subscriber(fake.path) as sub:
        assert sub.receive(timeout=0) is None  # arms the wake
        assert select.select([sub], [], [], 0)[0] == []
        fake.publish(0)
        assert select.select([sub], [], [], 5)[0] == [sub]
        a = sub.receive(timeout=0)
        assert a is not None and sub.receive(timeout=0) is None
        del a
