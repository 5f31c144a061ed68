"""The lifetime rule, with a pure-Python fake owner (no C++ producer): an
array and every view numpy makes of it hold the frame; the frame is released
exactly once, when the last is garbage or at an explicit release()."""
import gc
import mmap
import threading

import numpy as np
import pytest

import daq_pool
from daq_pool import FrameBuffer, address_of, frame_of


class FakeOwner:
    """Plays a server: a mapping, frames handed out over it, a release log."""

    def __init__(self, size=1 << 16):
        self.mapping = mmap.mmap(-1, size)
        self.whole = np.frombuffer(self.mapping, dtype=np.uint8)  # pins the mapping (no close under arrays)
        self.base = address_of(self.whole)
        self.released = []
        self.held = set()

    def frame(self, token, offset, nbytes, **kw):
        self.held.add(token)
        return FrameBuffer(self.base + offset, nbytes, keep=self.whole, on_release=self._release, token=token, **kw)

    def _release(self, token):
        self.held.remove(token)  # KeyError on a double release: the test fails
        self.released.append(token)


@pytest.fixture(autouse=True)
def no_cycle_collector():
    # Release must come from reference counting alone, not a later gc pass.
    gc.disable()
    yield
    gc.enable()


def test_array_holds_until_garbage():
    o = FakeOwner()
    a = o.frame(1, 4096, 1024).array()
    assert o.held == {1}
    assert not a.flags.writeable
    assert address_of(a) == o.base + 4096
    del a
    assert o.released == [1] and not o.held


def test_every_view_holds_and_slice_outlives_parent():
    o = FakeOwner()
    a = o.frame(7, 0, 4096).array()
    views = [a[10:20], a.reshape(64, 64).T, a.view(np.uint32), a[::3], np.lib.stride_tricks.as_strided(a, (10,), (8,)),
             a.reshape(64, 64)[5]]
    del a
    while views:
        assert o.held == {7}, f"released with {len(views)} views alive"
        views.pop(0)
    assert o.released == [7]


def test_readonly_everywhere():
    o = FakeOwner()
    a = o.frame(1, 0, 64).array()
    with pytest.raises(ValueError):
        a[0] = 1
    with pytest.raises(ValueError):
        a.setflags(write=True)
    with pytest.raises(ValueError):
        a[2:4].setflags(write=True)
    assert o.whole[0] == 0


def test_copy_does_not_hold():
    o = FakeOwner()
    a = o.frame(1, 0, 64).array()
    c = a.copy()
    with pytest.raises(ValueError, match="not a view of a daq_pool frame"):
        frame_of(c)
    del a
    assert o.released == [1]
    assert c.size == 64


def test_explicit_release_once():
    o = FakeOwner()
    a = o.frame(3, 0, 64).array()
    b = a[1:]
    daq_pool.release(b)
    assert o.released == [3]
    daq_pool.release(a)  # idempotent
    assert not frame_of(a).held
    del a, b
    assert o.released == [3]


def test_shape_dtype_and_metadata():
    o = FakeOwner()
    f = o.frame(1, 0, 640 * 480 * 2, dtype="<u2", shape=(480, 640), number=42, timestamp_ns=5)
    a = np.asarray(f)
    assert a.shape == (480, 640) and a.dtype == np.dtype("<u2")
    assert frame_of(a[3:, 5]).number == 42 and frame_of(a).timestamp_ns == 5
    with pytest.raises(ValueError, match="needs 614404 bytes"):
        FrameBuffer(o.base, 640 * 480 * 2, keep=o.whole, dtype="<u2", shape=(1, 307202))
    with pytest.raises(ValueError, match="not a whole number"):
        FrameBuffer(o.base, 3, keep=o.whole, dtype="<u2")


def test_release_from_other_threads():
    o = FakeOwner()
    frames = [o.frame(i, i * 64, 64) for i in range(200)]
    arrays = [f.array() for f in frames]
    del frames

    def drop(part):
        for a in part:
            daq_pool.release(a)
    threads = [threading.Thread(target=drop, args=(arrays[i::2] + arrays[::5],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(o.released) == list(range(200))  # each once (a second release would KeyError)
    del arrays


def test_memory_outlives_owner_close():
    o = FakeOwner()
    a = o.frame(1, 128, 64).array()
    keep = o.whole
    with pytest.raises(BufferError):
        o.mapping.close()  # the arrays pin the mapping: it cannot be unmapped under them
    del o, keep
    assert int(a.sum()) == 0  # still readable
