"""Reads an HDF5 recording written by daq_pool::hdf5::Hdf5Recorder with h5py
and checks every frame: frames[k] must be frame f = frame_numbers[k] with
element i equal to (f * 1000 + i) % 65536 (uint16), timestamps[k] == f * 10.

  read_h5.py PATH N            the file is complete: exactly N frames
  read_h5.py PATH N --follow [--progress=FILE]
                               SWMR: open while it is written, refresh until
                               N frames were seen (60 s at most), checking
                               each as it appears; after each growth, write
                               the count seen to FILE (replaced atomically),
                               so the writer can wait for the reader instead
                               of guessing how fast it is

Prints "frames=<count> checked=<count>"; exits 1 on any mismatch.
"""
import os
import sys
import time

import h5py
import numpy as np


def check(frames, numbers, stamps, k):
    f = int(numbers[k])
    h, w = frames.shape[1:]
    want = ((f * 1000 + np.arange(h * w, dtype=np.int64)) % 65536).astype(np.uint16).reshape(h, w)
    if not np.array_equal(frames[k], want):
        print(f"frame {k} (number {f}): content differs", file=sys.stderr)
        return False
    if int(stamps[k]) != f * 10:
        print(f"frame {k}: timestamp {int(stamps[k])} != {f * 10}", file=sys.stderr)
        return False
    return True


def main():
    path, n = sys.argv[1], int(sys.argv[2])
    follow = "--follow" in sys.argv
    progress = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--progress=")), None)
    if not follow:
        with h5py.File(path, "r") as f:
            frames, numbers, stamps = f["frames"], f["frame_numbers"], f["timestamps"]
            ok = frames.shape[0] == n and numbers.shape[0] == n and stamps.shape[0] == n
            ok = ok and frames.dtype == np.uint16
            checked = sum(check(frames, numbers, stamps, k) for k in range(frames.shape[0]))
            print(f"frames={frames.shape[0]} checked={checked}")
            sys.exit(0 if ok and checked == n else 1)
    deadline = time.monotonic() + 60
    with h5py.File(path, "r", libver="latest", swmr=True) as f:
        frames, numbers, stamps = f["frames"], f["frame_numbers"], f["timestamps"]
        seen = 0
        checked = 0
        growths = 0
        while seen < n and time.monotonic() < deadline:
            for d in (frames, numbers, stamps):
                d.refresh()
            avail = min(frames.shape[0], numbers.shape[0], stamps.shape[0])
            if avail > seen:
                growths += 1
                for k in range(seen, avail):
                    if not check(frames, numbers, stamps, k):
                        print(f"frames={avail} checked={checked}")
                        sys.exit(1)
                    checked += 1
                seen = avail
                if progress:
                    with open(progress + ".tmp", "w") as p:
                        p.write(str(seen))
                    os.replace(progress + ".tmp", progress)
            else:
                time.sleep(0.005)
        print(f"frames={seen} checked={checked} growths={growths}")
        sys.exit(0 if checked == n else 1)


if __name__ == "__main__":
    main()
