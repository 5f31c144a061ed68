"""The lifetime machinery: a frame held by the numpy arrays over it.

Every frame this package hands out is a read-only numpy array whose memory
belongs to someone else: a server's shared memory, a message libzmq
received, a memory-mapped file. The array is made by numpy from a small
exporter object, a `FrameBuffer`, through the array interface
(``__array_interface__``, a raw address plus shape and type). numpy then
keeps the exporter as the array's ``base``; every view, slice, reshape or
transpose numpy makes keeps its parent (and so, in the end, the exporter)
alive. When the last of them is garbage, CPython's reference counting
destroys the exporter at once (not at some later collection: an exporter
is never part of a reference cycle, it references only its owner), and its
``__del__`` gives the frame back to its owner, e.g. sends "done" to the
shared-memory server. `FrameBuffer.release` does that early, explicitly.

Why not a ``with`` block: zero-copy views that outlive the block that made
them are the classic failure (the buffer is reused under a live view).
Here the view *is* what holds the buffer.

The owner keeps whatever the address points into (a mapping, a message)
alive as long as any exporter references it: each exporter holds a
reference to its owner's memory object (`keep`), so closing a subscriber
with arrays still alive never unmaps memory under them.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

__all__ = ["FrameBuffer", "frame_of", "release", "address_of"]

ReleaseFn = Callable[[Any], None]


class FrameBuffer:
    """One frame, held until this object is garbage or `release` is called.

    Exposes the frame's bytes to numpy (``np.asarray(buffer)``) read-only,
    as ``dtype`` and ``shape``; carries the frame's metadata (``number``,
    ``timestamp_ns``, ``sequence``). Made by the subscribers and receivers
    of this package, not by users.

    Thread-safety: the release callback runs once, on whichever thread
    drops the last reference (or calls `release`); owners make it safe to
    call from any thread. Cost: one small object per frame; no copy.
    """

    __slots__ = ("__array_interface__", "number", "timestamp_ns", "sequence", "nbytes", "_keep", "_on_release",
                 "_token", "_lock", "__weakref__")

    def __init__(self, address: int, nbytes: int, *, keep: Any, on_release: Optional[ReleaseFn] = None,
                 token: Any = None, dtype: Union[str, np.dtype] = np.uint8,
                 shape: Optional[Tuple[int, ...]] = None, number: int = 0, timestamp_ns: int = 0,
                 sequence: int = 0) -> None:
        """`address`..`address + nbytes` must stay valid while `keep` lives.

        `on_release(token)` is called once when the frame is let go. `shape`
        defaults to the whole frame as one dimension of ``dtype``; a shape
        whose size times the item size exceeds ``nbytes`` is refused
        (ValueError) so that an array can never reach past its frame.
        """
        self._on_release = None  # first: __del__ of a half-made object must find it
        dt = np.dtype(dtype)
        if shape is None:
            if nbytes % dt.itemsize:
                raise ValueError(f"frame of {nbytes} bytes is not a whole number of {dt} items ({dt.itemsize} bytes)")
            shape = (nbytes // dt.itemsize,)
        else:
            shape = tuple(int(s) for s in shape)
            need = dt.itemsize
            for s in shape:
                if s < 0:
                    raise ValueError(f"shape {shape} has a negative dimension")
                need *= s
            if need > nbytes:
                raise ValueError(f"shape {shape} of {dt} needs {need} bytes; the frame has {nbytes}")
        self.__array_interface__ = {"data": (address, True), "shape": shape, "typestr": dt.str,
                                    "descr": dt.descr, "version": 3}
        self.nbytes = nbytes
        self.number = number
        self.timestamp_ns = timestamp_ns
        self.sequence = sequence
        self._keep = keep
        self._on_release = on_release
        self._token = token
        self._lock = None

    # The array: numpy reads __array_interface__; "True" there marks it
    # read-only, so every view of it is read-only too (numpy refuses to
    # make a read-only base writeable again).
    def array(self) -> np.ndarray:
        """A new read-only numpy array over the frame (no copy); it, and
        every view of it, holds the frame. Thread-safe."""
        return np.asarray(self)

    @property
    def held(self) -> bool:
        """True until the frame was released (explicitly or by garbage)."""
        return self._on_release is not None

    def release(self) -> None:
        """Give the frame back now (idempotent). Arrays over it still point
        to valid memory (it stays mapped) but its bytes may change from now
        on, as the producer reuses the buffer: do not read them. Thread-safe."""
        fn = self._on_release
        if fn is None:
            return
        # A lock only on this rare path; __del__ cannot race with it (the
        # caller holds a reference), only another release() can.
        lock = _release_lock
        with lock:
            fn = self._on_release
            self._on_release = None
        if fn is not None:
            fn(self._token)

    def __del__(self) -> None:
        # Reference counting runs this as the last array/view goes: nobody
        # else can call release() concurrently any more.
        fn = self._on_release
        if fn is not None:
            self._on_release = None
            try:
                fn(self._token)
            except Exception:  # never raise from a finalizer; owners count failures themselves
                pass

    def __repr__(self) -> str:
        ai = self.__array_interface__
        return (f"<daq_pool.FrameBuffer number={self.number} sequence={self.sequence} shape={ai['shape']} "
                f"dtype={ai['typestr']} {'held' if self.held else 'released'}>")


_release_lock = threading.Lock()


def frame_of(array: Any) -> FrameBuffer:
    """The FrameBuffer an array (or any view of it) was made over.

    Raises ValueError if `array` is not over a frame of this package (e.g.
    a copy). Thread-safe; never copies.
    """
    base = array
    while base is not None:
        if isinstance(base, FrameBuffer):
            return base
        base = getattr(base, "base", None)
    raise ValueError("this array is not a view of a daq_pool frame (was it copied?)")


def release(array: Any) -> None:
    """Give back, now, the frame `array` is a view of (see FrameBuffer.release)."""
    frame_of(array).release()


def address_of(array: np.ndarray) -> int:
    """The address of an array's first byte (for zero-copy checks)."""
    return int(array.__array_interface__["data"][0])
