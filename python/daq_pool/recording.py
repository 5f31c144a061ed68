"""Recordings as one sequence-of-frames interface: the raw ``.dqr``
container of daq_pool::recording::Recorder (numpy.memmap, no copy) and HDF5
files (h5py; a frames dataset (N, ...) with frame numbers and timestamps).

    import daq_pool.recording
    with daq_pool.recording.open("run.dqr") as rec:
        print(len(rec), rec.frame_numbers[:5], rec.timestamps_ns[:5])
        frame = rec[-1]                   # read-only numpy array (dqr: a view of the file)

Both read a file still being written (``refresh()`` picks up what was
committed since; HDF5 through SWMR when the writer uses it) and a file cut
short by a crash (a .dqr lists exactly the frames whose index entry made it
to the file, each entry vouching for its payload; an HDF5 file lists the
frames present in both the frames and the numbers datasets).

The .dqr format (docs/recording.md, include/daq_pool/recording/dqr_format.hpp),
version 1.x: a header block of A bytes, then records of S bytes, each an
A-byte block with a 64-byte index entry then the payload (A-aligned).
"""
from __future__ import annotations

import builtins
import os
import struct
import zlib
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from ._frame import FrameBuffer, address_of
from .errors import RecordingError, VersionError

__all__ = ["open", "Recording", "DqrRecording", "Hdf5Recording", "DQR_MAGIC"]

DQR_MAGIC = b"DQR\0\r\n\x1a\n"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
DQR_VERSION_MAJOR = 1
_HEADER = struct.Struct("<8sHHIIIQQqQ8sII4Q32s20sI")  # the 160 header bytes
_ENTRY = struct.Struct("<4sIQQqQQQ4sI")  # the 64 entry bytes
assert _HEADER.size == 160 and _ENTRY.size == 64
_ENTRY_MAGIC = b"DQRF"
_EMPTY_ENTRY = bytes(64)


class Recording(Sequence[np.ndarray]):
    """A sequence of frames: ``len``, ``rec[i]`` (a read-only numpy array,
    negative indices and slices of indices too), iteration, and per frame
    ``frame_numbers`` / ``timestamps_ns`` (numpy arrays, same order).
    ``refresh()`` re-reads a file still being written. ``frame(i)`` gives
    the FrameBuffer (number, timestamp) of frame i.

    Thread-safety: not thread-safe (one reader thread; arrays may be used
    anywhere).
    """

    path: str
    dtype: np.dtype
    shape: Tuple[int, ...]

    def __len__(self) -> int:
        return len(self.frame_numbers)

    def __getitem__(self, i: Any) -> Any:  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        n = len(self)
        k = int(i)
        if k < 0:
            k += n
        if not 0 <= k < n:
            raise IndexError(f"{self.path}: frame index {i} out of range (the recording has {n} frames)")
        return self._array(k)

    def __iter__(self) -> Iterator[np.ndarray]:
        for k in range(len(self)):
            yield self._array(k)

    def _array(self, k: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def frame_numbers(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def timestamps_ns(self) -> np.ndarray:
        raise NotImplementedError

    def refresh(self) -> int:
        """Re-read the file (it may still be written): returns how many
        frames were added."""
        raise NotImplementedError

    def close(self) -> None:
        """Lets go of the file. Arrays already handed out stay valid."""

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<daq_pool.recording.{type(self).__name__} {self.path!r}: {len(self)} frames {self.shape} {self.dtype}>"


class DqrRecording(Recording):
    """A .dqr file, memory-mapped read-only: each frame is an array over
    the file's pages (no copy).

    Counters after each scan: ``holes`` (records never committed before the
    last committed one, e.g. writes in flight at a crash), ``damaged``
    (entries that are neither valid nor empty; raised as RecordingError
    unless ``skip_damaged``), ``truncated`` (valid entries whose payload
    runs past the end of the file; same). ``header`` holds the header's
    fields.
    """

    def __init__(self, path: Union[str, os.PathLike], *, skip_damaged: bool = False) -> None:
        self.path = os.fspath(path)
        self.skip_damaged = skip_damaged
        with builtins.open(self.path, "rb") as f:
            head = f.read(160)
        self.header = self._decode_header(head)
        h = self.header
        self.alignment: int = h["alignment"]
        self.record_stride: int = h["record_stride"]
        self.frame_capacity: int = h["frame_capacity"]
        self.dtype = np.dtype(h["dtype"] or "|u1")
        self.shape = tuple(h["shape"])
        self.pixel_format: str = h["pixel_format"]
        self.holes = 0
        self.damaged = 0
        self.truncated = 0
        self._numbers: List[int] = []
        self._stamps: List[int] = []
        self._records: List[Tuple[int, int, int]] = []  # (record, payload offset, size) per listed frame
        self._pending: List[int] = []  # empty records before the last valid one: maybe still being written
        self._scanned = 0  # records looked at (valid, damaged or counted pending)
        self._mm: Optional[np.memmap] = None
        self._size = 0
        self._cache: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.refresh()

    def _decode_header(self, head: bytes) -> Dict[str, Any]:
        p = self.path
        if len(head) < 160:
            raise RecordingError(f"{p}: {len(head)} bytes: shorter than a .dqr header (160 bytes)")
        (magic, major, minor, hbytes, align, ebytes, stride, cap, created, fid, dtype, ndim, flags, s0, s1, s2, s3,
         pixfmt, _reserved, crc) = _HEADER.unpack(head)
        if magic != DQR_MAGIC:
            raise RecordingError(f"{p}: offset 0: not a .dqr file (magic {magic!r})")
        if major != DQR_VERSION_MAJOR:
            raise VersionError(f"{p}: offset 8: .dqr version {major}.{minor}; this package reads "
                               f"{DQR_VERSION_MAJOR}.x")
        if zlib.crc32(head[:156]) != crc:
            raise RecordingError(f"{p}: offset 156: header CRC-32 mismatch (damaged header)")
        if hbytes != 160 or ebytes != 64:
            raise RecordingError(f"{p}: offset 12: header_bytes {hbytes} / entry_bytes {ebytes}, expected 160 / 64")
        if align < 4096 or align > (1 << 20) or align & (align - 1):
            raise RecordingError(f"{p}: offset 16: alignment {align} is not a power of two in [4096, 1 MiB]")
        if not 1 <= cap <= (1 << 48) or stride != align + -(-cap // align) * align:
            raise RecordingError(f"{p}: offset 24: record_stride {stride} does not match frame_capacity {cap} "
                                 f"and alignment {align}")
        if ndim > 4:
            raise RecordingError(f"{p}: offset 64: ndim {ndim} (at most 4)")
        dt = dtype.rstrip(b"\0").decode("ascii", "replace")
        shape = (s0, s1, s2, s3)[:ndim]
        try:
            dtn = np.dtype(dt or "|u1")
        except TypeError as e:
            raise RecordingError(f"{p}: offset 56: dtype {dt!r} is not a numpy typestr") from e
        if ndim and int(np.prod(shape)) * dtn.itemsize > cap:
            raise RecordingError(f"{p}: offset 72: shape {shape} of {dt} needs more than frame_capacity {cap}")
        return dict(version=(major, minor), alignment=align, record_stride=stride, frame_capacity=cap,
                    created_ns=created, file_id=fid, dtype=dt, shape=shape, flags=flags,
                    durable_index=bool(flags & 1), buffered=bool(flags & 2),
                    pixel_format=pixfmt.rstrip(b"\0").decode("ascii", "replace"))

    def refresh(self) -> int:
        """Scans the records committed since the last scan (and the holes
        left then, which a writer may have filled since)."""
        size = os.stat(self.path).st_size
        if size != self._size or self._mm is None:
            # A new mapping of the grown file; arrays over the old one keep it.
            self._mm = np.memmap(self.path, dtype=np.uint8, mode="r") if size else None
            self._size = size
        mm = self._mm
        if mm is None:
            return 0
        A, S = self.alignment, self.record_stride
        before = len(self._records)
        found: List[Tuple[int, int, int, int, int]] = []
        # Holes from before: filled now?
        still: List[int] = []
        for i in self._pending:
            r = self._entry(mm, i)
            if r is None:
                still.append(i)
            elif r is not False:
                found.append(r)
        i = self._scanned
        trailing_empty: List[int] = []
        while A + i * S + 64 <= size:
            r = self._entry(mm, i)
            if r is None:
                trailing_empty.append(i)
            else:
                if r is not False:
                    found.append(r)
                still.extend(trailing_empty)  # empty records before a valid one are holes (for now)
                trailing_empty = []
            i += 1
        # Empty records after the last valid one are the unwritten end: look
        # at them again next time.
        self._scanned = trailing_empty[0] if trailing_empty else i
        self._pending = sorted(still)
        self.holes = len(self._pending)
        if found:
            merged = sorted([(rec, num, ts, off, sz) for (rec, off, sz), num, ts in
                             zip(self._records, self._numbers, self._stamps)] + found)
            self._records = [(r[0], r[3], r[4]) for r in merged]
            self._numbers = [r[1] for r in merged]
            self._stamps = [r[2] for r in merged]
            self._cache = None
        return len(self._records) - before

    def _entry(self, mm: np.memmap, i: int) -> Any:
        """None: empty; False: damaged/truncated and skipped; else
        (record, number, timestamp, offset, size)."""
        A, S = self.alignment, self.record_stride
        at = A + i * S
        e = mm[at:at + 64].tobytes()  # 64 bytes of index: the only bytes this reader copies
        if e == _EMPTY_ENTRY:
            return None
        magic, _flags, rec, num, ts, off, size, fid, _res, crc = _ENTRY.unpack(e)
        if magic != _ENTRY_MAGIC or zlib.crc32(e[:60]) != crc or fid != self.header["file_id"] or rec != i or \
                off != at + A or size > self.frame_capacity:
            self.damaged += 1
            if not self.skip_damaged:
                raise RecordingError(f"{self.path}: offset {at}: damaged index entry of record {i} "
                                     "(pass skip_damaged=True to skip it)")
            return False
        if off + size > self._size:
            self.truncated += 1
            if not self.skip_damaged:
                raise RecordingError(f"{self.path}: offset {off}: frame {num} (record {i}) runs past the end of the "
                                     f"file ({self._size} bytes): the file was cut")
            return False
        return (i, num, ts, off, size)

    @property
    def frame_numbers(self) -> np.ndarray:
        return self._arrays()[0]

    @property
    def timestamps_ns(self) -> np.ndarray:
        return self._arrays()[1]

    @property
    def records(self) -> np.ndarray:
        """The record position of each listed frame (gaps are holes)."""
        return np.array([r[0] for r in self._records], dtype=np.uint64)

    def _arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            self._cache = (np.array(self._numbers, dtype=np.uint64), np.array(self._stamps, dtype=np.int64))
        return self._cache

    def frame(self, k: int) -> FrameBuffer:
        """The FrameBuffer of listed frame k (``np.asarray`` of it is the array)."""
        rec, off, size = self._records[k]
        mm = self._mm
        assert mm is not None
        shape = self.shape if self.shape and int(np.prod(self.shape)) * self.dtype.itemsize == size else None
        if shape is None and size % self.dtype.itemsize:
            dtype: Any = np.uint8
        else:
            dtype = self.dtype
        return FrameBuffer(address_of(mm) + off, size, keep=mm, dtype=dtype, shape=shape,
                           number=self._numbers[k], timestamp_ns=self._stamps[k], sequence=rec)

    def _array(self, k: int) -> np.ndarray:
        return np.asarray(self.frame(k))

    def close(self) -> None:
        self._mm = None


class Hdf5Recording(Recording):
    """An HDF5 recording (needs h5py): a dataset of frames, shape (N, ...),
    and per frame its number and timestamp. The names looked for:
    ``frames`` (else the first dataset of two or more dimensions), then
    ``frame_numbers`` / ``frame_number`` / ``numbers``, ``timestamps_ns`` /
    ``timestamp_ns`` / ``timestamps``, each also inside a group of the
    frames' parent; or a compound dataset with fields ``frame_number`` and
    ``timestamp_ns``. Missing numbers count 0, 1, ...; missing timestamps
    are 0. Opened with SWMR (single writer, multiple readers) when the file
    allows it: ``refresh()`` then sees frames appended since.

    Frames are read into new arrays (h5py copies out of the file; a chunked
    dataset can't be mapped), returned read-only; a contiguous, uncompressed
    dataset is mapped instead (no copy).
    """

    NUMBER_NAMES = ("frame_numbers", "frame_number", "numbers")
    TIME_NAMES = ("timestamps_ns", "timestamp_ns", "timestamps")

    def __init__(self, path: Union[str, os.PathLike], *, dataset: Optional[str] = None) -> None:
        try:
            import h5py
        except ImportError as e:  # pragma: no cover - depends on the installation
            raise RecordingError(f"{os.fspath(path)}: an HDF5 file; reading it needs h5py "
                                 "(Debian: python3-h5py; pip: daq_pool[hdf5])") from e
        self.path = os.fspath(path)
        try:
            self._f = h5py.File(self.path, "r", libver="latest", swmr=True)
            self.swmr = True
        except (OSError, ValueError):
            self._f = h5py.File(self.path, "r")
            self.swmr = False
        try:
            self._frames = self._find_frames(dataset)
            self._numbers_ds, self._times_ds, self._fields = self._find_index()
        except BaseException:
            self._f.close()
            raise
        self.dtype = self._frames.dtype
        self.shape = tuple(self._frames.shape[1:])
        self._mapped = self._map()
        self._n = 0
        self._cache: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self.refresh()

    def _find_frames(self, name: Optional[str]) -> Any:
        import h5py
        f = self._f
        if name is not None:
            if name not in f or not isinstance(f[name], h5py.Dataset):
                raise RecordingError(f"{self.path}: no dataset {name!r}")
            return f[name]
        if "frames" in f and isinstance(f["frames"], h5py.Dataset):
            return f["frames"]
        found: List[Any] = []

        def visit(n: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.ndim >= 2 and obj.dtype.fields is None and not found:
                found.append(obj)
        f.visititems(visit)
        if not found:
            raise RecordingError(f"{self.path}: no frames dataset (a dataset named 'frames', or of 2+ dimensions)")
        return found[0]

    def _find_index(self) -> Tuple[Any, Any, bool]:
        import h5py
        parent = self._frames.parent
        places = [parent] + [g for g in parent.values() if isinstance(g, h5py.Group)]

        def first(names: Sequence[str]) -> Any:
            for g in places:
                for n in names:
                    if n in g and isinstance(g[n], h5py.Dataset) and g[n].dtype.fields is None:
                        return g[n]
            return None
        numbers, times = first(self.NUMBER_NAMES), first(self.TIME_NAMES)
        if numbers is None:
            for g in places:
                for d in g.values():
                    if isinstance(d, h5py.Dataset) and d.dtype.fields and "frame_number" in d.dtype.fields:
                        return d, d, True
        return numbers, times, False

    def _map(self) -> Optional[np.memmap]:
        d = self._frames
        try:
            if d.chunks is not None or d.compression is not None:  # contiguous: never extended
                return None
            offset = d.id.get_offset()
            if offset is None:
                return None
            return np.memmap(self.path, dtype=d.dtype, mode="r", offset=offset, shape=d.shape)
        except (OSError, ValueError, TypeError):
            return None

    def refresh(self) -> int:
        before = self._n
        for d in (self._frames, self._numbers_ds, self._times_ds):
            if d is not None and self.swmr:
                d.refresh()
        n = self._frames.shape[0]
        if self._numbers_ds is not None:
            n = min(n, self._numbers_ds.shape[0])
        if self._times_ds is not None:
            n = min(n, self._times_ds.shape[0])
        self._n = n
        self._cache = None
        return n - before

    def _arrays(self) -> Tuple[np.ndarray, np.ndarray]:
        if self._cache is None:
            n = self._n
            if self._fields:
                idx = self._numbers_ds[:n]
                numbers = np.asarray(idx["frame_number"], dtype=np.uint64)
                times = np.asarray(idx["timestamp_ns"], dtype=np.int64) if "timestamp_ns" in idx.dtype.names \
                    else np.zeros(n, np.int64)
            else:
                numbers = np.asarray(self._numbers_ds[:n], dtype=np.uint64) if self._numbers_ds is not None \
                    else np.arange(n, dtype=np.uint64)
                times = np.asarray(self._times_ds[:n], dtype=np.int64) if self._times_ds is not None \
                    else np.zeros(n, np.int64)
            numbers.setflags(write=False)
            times.setflags(write=False)
            self._cache = (numbers, times)
        return self._cache

    def __len__(self) -> int:
        return self._n

    @property
    def frame_numbers(self) -> np.ndarray:
        return self._arrays()[0]

    @property
    def timestamps_ns(self) -> np.ndarray:
        return self._arrays()[1]

    def frame(self, k: int) -> FrameBuffer:
        a = self._array(k)
        return FrameBuffer(address_of(a), a.nbytes, keep=a, dtype=a.dtype, shape=a.shape,
                           number=int(self.frame_numbers[k]), timestamp_ns=int(self.timestamps_ns[k]), sequence=k)

    def _array(self, k: int) -> np.ndarray:
        if self._mapped is not None:
            return self._mapped[k]  # read-only memmap: no copy
        a = self._frames[k]
        a.setflags(write=False)
        return a

    def close(self) -> None:
        try:
            self._f.close()
        except Exception:
            pass


def open(path: Union[str, os.PathLike], **options: Any) -> Recording:  # noqa: A001 (the module's verb)
    """Opens a recording by its content (not its name): a .dqr container
    or an HDF5 file. Options go to DqrRecording (``skip_damaged``) or
    Hdf5Recording (``dataset``). Raises FileNotFoundError, RecordingError
    (neither format, or damaged), VersionError (a .dqr major version this
    package does not read)."""
    p = os.fspath(path)
    with builtins.open(p, "rb") as f:
        magic = f.read(8)
    if magic == DQR_MAGIC:
        return DqrRecording(p, **options)
    if magic == HDF5_MAGIC:
        return Hdf5Recording(p, **options)
    raise RecordingError(f"{p}: neither a .dqr recording (magic {DQR_MAGIC!r}) nor an HDF5 file (magic "
                         f"{HDF5_MAGIC!r}); it starts with {magic!r}")
