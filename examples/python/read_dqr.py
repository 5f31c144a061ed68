#!/usr/bin/env python3
"""Reads a .dqr recording (daq-pool's raw container, docs/recording.md) with
numpy.memmap only: every committed frame as a zero-copy numpy view of the
file, with its frame number and timestamp. The format, byte by byte, is in
docs/recording.md; this file is its reference reading in Python.

usage: read_dqr.py PATH [--json]
Prints one line per frame (or, with --json, a summary: frames, holes,
frame numbers, sizes, and whether as_video()'s one strided array of the
whole file agrees with the frames read one by one). Exit code 1 on a damaged file, naming the offset.
Run with /usr/bin/python3 on Debian (python3-numpy).
"""
import json
import struct
import sys
import zlib

import numpy as np


# --8<-- [start:read_dqr]
def read_dqr(path):
    """[(frame_number, timestamp_ns, array)] of the committed frames, and the
    number of holes (frames started but never committed)."""
    with open(path, "rb") as f:
        head = f.read(160)
    if len(head) < 160 or head[:8] != b"DQR\0\r\n\x1a\n":
        raise ValueError(f"{path}: offset 0: not a .dqr file")
    if zlib.crc32(head[:156]) != struct.unpack_from("<I", head, 156)[0]:
        raise ValueError(f"{path}: offset 156: header checksum mismatch")
    major, minor, hbytes, A, ebytes, S, C, created, fid = struct.unpack_from("<HHIIIQQqQ", head, 8)
    if major != 1:
        raise ValueError(f"{path}: offset 8: unsupported version {major}.{minor}")
    dtype = np.dtype(head[56:64].rstrip(b"\0").decode() or "|u1")
    ndim, flags = struct.unpack_from("<II", head, 64)
    shape = struct.unpack_from("<4Q", head, 72)[:ndim]
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    frames, holes, empty_run = [], 0, 0
    i = 0
    while A + i * S + 64 <= len(mm):
        at = A + i * S
        e = bytes(mm[at:at + 64])
        i += 1
        if e == bytes(64):
            empty_run += 1                            # a hole, or the unwritten end
            continue
        magic, _, rec, num, ts, off, size, efid = struct.unpack_from("<4sIQQqQQQ", e)
        if (magic != b"DQRF" or zlib.crc32(e[:60]) != struct.unpack_from("<I", e, 60)[0]
                or rec != i - 1 or efid != fid or off != at + A or size > C):
            raise ValueError(f"{path}: offset {at}: damaged index entry")
        if off + size > len(mm):
            raise ValueError(f"{path}: offset {off}: frame {num} truncated")
        frame = mm[off:off + size].view(dtype)      # zero-copy view of the file
        if ndim and frame.size == int(np.prod(shape)):
            frame = frame.reshape(shape)
        frames.append((num, ts, frame))
        holes += empty_run
        empty_run = 0
    return frames, holes
# --8<-- [end:read_dqr]


# --8<-- [start:as_video]
def as_video(path):
    """Every complete record as one (n, *shape) array: a strided zero-copy
    view of the file. No entry is checked (a hole reads as zeros, a short
    frame has stale bytes past its size): check them with read_dqr() first."""
    with open(path, "rb") as f:
        head = f.read(160)
    A, _, S, C = struct.unpack_from("<IIQQ", head, 16)  # alignment, entry_bytes, record_stride, frame_capacity
    dtype = np.dtype(head[56:64].rstrip(b"\0").decode() or "|u1")
    ndim = struct.unpack_from("<I", head, 64)[0]
    shape = struct.unpack_from("<4Q", head, 72)[:ndim] or (C // dtype.itemsize,)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    n = max(0, (len(mm) - A) // S)                     # complete records
    frame_strides = np.cumprod((1, *shape[:0:-1]))[::-1] * dtype.itemsize  # C order within a frame
    return np.ndarray((n, *shape), dtype=dtype, buffer=mm, offset=2 * A, strides=(S, *frame_strides))
# --8<-- [end:as_video]


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    try:
        frames, holes = read_dqr(sys.argv[1])
    except ValueError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
    if "--json" in sys.argv:
        # The strided whole-file view agrees with the per-frame reading
        # when every record holds a full frame (what the demo records).
        video = as_video(sys.argv[1])
        video_matches = len(video) == len(frames) and all(
            np.array_equal(video[k].reshape(-1).view(np.uint8), a.reshape(-1).view(np.uint8))
            for k, (_, _, a) in enumerate(frames))
        print(json.dumps({"frames": len(frames), "holes": holes, "numbers": [int(n) for n, _, _ in frames],
                          "sizes": sorted({int(a.nbytes) for _, _, a in frames}), "video_matches": video_matches}))
    else:
        for num, ts, a in frames:
            print(f"frame {num}: {a.dtype} {a.shape}, timestamp {ts} ns")
        print(f"{len(frames)} frames, {holes} holes")


if __name__ == "__main__":
    main()
