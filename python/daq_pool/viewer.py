"""The live viewer behind ``python -m daq_pool view``: the newest frame of a
shared-memory server, a ZeroMQ stream or a recording, drawn with
matplotlib, with its number, the frame rate and the drops.

Sources are told apart by their name: ``tcp://`` / ``ipc://`` is a ZeroMQ
sender, a Unix socket (or a path that does not exist yet) a shm server, a
regular file a recording (.dqr or HDF5).
"""
from __future__ import annotations

import os
import stat
import time
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from ._frame import frame_of

__all__ = ["open_source", "to_image", "Source", "snapshot", "live"]


class Source:
    """One interface over the three kinds: ``next(timeout)`` returns the
    newest frame available (older ones waiting are let go at once), or
    None; ``drops()`` the frames lost so far; ``close()``."""

    def __init__(self, kind: str, obj: Any, next_fn: Callable[[float], Optional[np.ndarray]],
                 drops_fn: Callable[[], int]) -> None:
        self.kind, self.obj = kind, obj
        self._next, self._drops = next_fn, drops_fn
        self.received = 0  #: frames received, shown or not (the fps counts these)

    def next(self, timeout: float) -> Optional[np.ndarray]:
        a, n = self._next(timeout)
        self.received += n
        return a

    def drops(self) -> int:
        return self._drops()

    def close(self) -> None:
        self.obj.close()


def _newest(receive: Callable[[Optional[float]], Optional[np.ndarray]], end: type) -> Callable[[float], Any]:
    def next_frame(timeout: float) -> Optional[np.ndarray]:
        try:
            a = receive(timeout)
        except end:
            raise EOFError("the stream ended") from None
        if a is None:
            return None, 0
        n = 1
        # Drain what is already waiting: show the newest; each older array is
        # garbage as soon as it is replaced, which releases its frame.
        for _ in range(10000):
            try:
                b = receive(0)
            except end:
                break
            if b is None:
                break
            a = b
            n += 1
        return a, n
    return next_frame


def open_source(target: str, *, dtype: Any = None, shape: Optional[Tuple[int, ...]] = None,
                frame_bytes: Optional[int] = None, mode: str = "pull", connect_timeout: float = 5.0,
                curve_server_key: Optional[str] = None) -> Source:
    """Opens `target` (see the module's doc). Raises the package's errors
    (NoServerError, VersionError, RecordingError...) with the target named."""
    if target.startswith(("tcp://", "ipc://")):
        from . import zmq as dzmq
        rx = dzmq.Receiver(target, mode=mode, frame_bytes=frame_bytes, dtype=np.uint8 if dtype is None else dtype,
                           shape=shape,
                           curve_server_key=curve_server_key)
        return Source("zmq", rx, _newest(rx.receive, dzmq.EndOfStream), lambda: rx.missing)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is None or stat.S_ISSOCK(st.st_mode):
        from . import shm
        sub = shm.Subscriber(target, connect_timeout=connect_timeout, dtype=dtype, shape=shape)
        return Source("shm", sub, _newest(sub.receive, shm.EndOfStream), lambda: sub.skipped)
    from . import recording
    rec = recording.open(target)
    state = {"shown": -1}

    def next_frame(timeout: float) -> Optional[np.ndarray]:
        if state["shown"] >= len(rec) - 1:
            rec.refresh()
        if len(rec) == 0 or state["shown"] >= len(rec) - 1:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return None, 0
        n = len(rec) - 1 - state["shown"]
        state["shown"] = len(rec) - 1
        return rec[-1], n
    return Source("recording", rec, next_frame, lambda: 0)


def to_image(frame: np.ndarray, width: Optional[int] = None) -> np.ndarray:
    """A 2-D image of `frame` (no copy where numpy can view it): a frame of
    two or more dimensions as it is (the first channel of a third), a flat
    one as rows of `width` elements (default: 1024, or fewer for small
    frames, like the FFV1 encoder's GRAY8 pictures)."""
    a = frame
    if a.ndim >= 3:
        a = a[..., 0] if a.shape[-1] <= 4 else a[0]
    if a.ndim == 2:
        return a
    flat = a.reshape(-1)
    w = width or (1024 if flat.size >= 1024 * 16 else max(1, int(np.sqrt(flat.size))))
    rows = flat.size // w
    if rows == 0:
        return flat[None, :]
    return flat[: rows * w].reshape(rows, w)


def _title(frame: np.ndarray, fps: Optional[float], drops: int, kind: str) -> str:
    try:
        f = frame_of(frame)
        number = f.number
    except ValueError:
        number = -1
    rate = "" if fps is None else f"   {fps:.1f} fps"
    return f"{kind}: frame {number}{rate}   drops {drops}"


def snapshot(source: Source, path: str, *, timeout: float = 10.0, width: Optional[int] = None,
             skip: int = 0) -> Dict[str, Any]:
    """Renders one frame (after `skip` others) to `path` with the Agg
    backend (headless); returns what was drawn. Raises TimeoutError if no
    frame came within `timeout` seconds."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    deadline = time.monotonic() + timeout
    frame = None
    seen = 0
    while time.monotonic() < deadline:
        try:
            frame = source.next(max(0.0, min(0.2, deadline - time.monotonic())))
        except EOFError:
            break
        if frame is not None:
            seen += 1
            if seen > skip:
                break
    if frame is None:
        raise TimeoutError(f"no frame within {timeout:g} s")
    img = to_image(frame, width)
    fig, ax = plt.subplots(figsize=(8, 6), dpi=100)
    ax.imshow(img, cmap="gray", interpolation="nearest", aspect="auto")
    ax.set_title(_title(frame, None, source.drops(), source.kind))
    fig.savefig(path)
    plt.close(fig)
    info = dict(path=path, number=frame_of(frame).number if _is_frame(frame) else None, shape=img.shape,
                dtype=str(img.dtype), mean=float(img.mean()), std=float(img.std()))
    return info


def _is_frame(a: np.ndarray) -> bool:
    try:
        frame_of(a)
        return True
    except ValueError:
        return False


def live(source: Source, *, width: Optional[int] = None, duration: Optional[float] = None,
         print_fn: Callable[[str], None] = print) -> int:
    """The interactive viewer: redraws the newest frame until the window is
    closed, the stream ends or `duration` seconds passed. Returns the number
    of frames drawn."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    image = None
    drawn = 0
    t0 = last = time.monotonic()
    count_since = 0
    fps = 0.0
    plt.show(block=False)
    while plt.fignum_exists(fig.number):
        if duration is not None and time.monotonic() - t0 > duration:
            break
        try:
            frame = source.next(0.05)
        except EOFError:
            print_fn("view: the stream ended")
            break
        if frame is not None:
            img = to_image(frame, width)
            if image is None or image.get_array().shape != img.shape:
                ax.clear()
                image = ax.imshow(img, cmap="gray", interpolation="nearest", aspect="auto")
            else:
                image.set_data(img)  # matplotlib holds this array, and so the frame, until the next one
            now = time.monotonic()
            if now - last >= 0.5:
                fps, count_since, last = (source.received - count_since) / (now - last), source.received, now
            ax.set_title(_title(frame, fps, source.drops(), source.kind))
            drawn += 1
            del frame
        plt.pause(0.001)
    plt.close(fig)
    return drawn
