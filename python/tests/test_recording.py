"""daq_pool.recording.open: .dqr files written by the C++ recorder (a real
process, tests/python/py_recorder.cpp: finished, still being written, killed
mid-recording), damaged copies of them, and HDF5 files written by h5py
(finished, cut short, appended to under SWMR by another process)."""
import os
import shutil
import signal
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from daq_pool import RecordingError, VersionError, address_of, frame_of
from daq_pool import recording
from support import Child, need_module, tool

T0 = 1_700_000_000_000_000_000


def record(path, frame_bytes, n, *flags):
    out = subprocess.run([tool("DAQ_POOL_RECORDER"), path, str(frame_bytes), str(n), *flags], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def expected(i, nbytes):
    return ((i + np.arange(nbytes, dtype=np.int64)) % 251).astype(np.uint8)


def check_frames(rec, indices, nbytes):
    assert list(rec.frame_numbers) == list(indices)
    assert list(rec.timestamps_ns) == [T0 + 1000 * i for i in indices]
    for k, i in enumerate(indices):
        a = rec[k]
        assert not a.flags.writeable
        assert np.array_equal(a.reshape(-1).view(np.uint8)[:nbytes], expected(i, nbytes)), f"frame {i}"


def test_cpp_recording_read_back_in_place(short_tmp):
    path = os.path.join(short_tmp, "run.dqr")
    record(path, 10000, 12, "--dtype=<u2", "--shape=50,100")
    with recording.open(path) as rec:
        assert len(rec) == 12 and rec.shape == (50, 100) and rec.dtype == np.dtype("<u2")
        check_frames(rec, range(12), 10000)
        a = rec[-1]
        assert a.shape == (50, 100) and frame_of(a).number == 11
        # no copy: the array lies in the file's mapping, at the record's payload offset
        mm = rec._mm
        A, S = rec.alignment, rec.record_stride
        assert address_of(a) == address_of(mm) + A + 11 * S + A
        assert address_of(a) % 4096 == 0
        assert rec.holes == 0 and rec.damaged == 0 and rec.truncated == 0
        assert [frame_of(x).number for x in rec[2:5]] == [2, 3, 4]
        with pytest.raises(IndexError, match="out of range .* 12 frames"):
            rec[12]


def test_cpp_recording_still_being_written(short_tmp):
    path = os.path.join(short_tmp, "live.dqr")
    with Child([tool("DAQ_POOL_RECORDER"), path, 5000, 9, "--pause-after=4"]) as writer:
        assert writer.line() == "written 4"
        rec = recording.open(path)
        check_frames(rec, range(4), 5000)
        held = rec[3]
        writer.proc.stdin.write("go\n")
        writer.proc.stdin.flush()
        assert '"frames_written":9' in writer.line()
        assert writer.wait() == 0
        assert rec.refresh() == 5
        check_frames(rec, range(9), 5000)
        assert np.array_equal(held, expected(3, 5000))  # an array from before the refresh still reads right
        rec.close()


def test_cpp_recording_killed_mid_run(short_tmp):
    path = os.path.join(short_tmp, "killed.dqr")
    with Child([tool("DAQ_POOL_RECORDER"), path, 70000, 50, "--pause-after=6", "--first=100"]) as writer:
        assert writer.line() == "written 6"
        os.kill(writer.pid, signal.SIGKILL)
        writer.proc.wait(10)
    with recording.open(path) as rec:
        check_frames_first(rec, 100, 6, 70000)


def check_frames_first(rec, first, n, nbytes):
    assert list(rec.frame_numbers) == list(range(first, first + n))
    for k in range(n):
        assert np.array_equal(rec[k], expected(k, nbytes))


def damaged_copy(src, dst, at, data):
    shutil.copy(src, dst)
    with open(dst, "r+b") as f:
        f.seek(at)
        f.write(data)


def test_cut_short_holes_and_damage(short_tmp):
    path = os.path.join(short_tmp, "r.dqr")
    record(path, 6000, 5)
    rec = recording.open(path)
    A, S = rec.alignment, rec.record_stride
    size = os.path.getsize(path)

    cut = os.path.join(short_tmp, "cut.dqr")  # the last payload cut in the middle
    shutil.copy(path, cut)
    os.truncate(cut, A + 4 * S + A + 3000)
    with pytest.raises(RecordingError, match=r"offset %d: frame 4 \(record 4\) runs past the end" % (A + 4 * S + A)):
        recording.open(cut)
    r2 = recording.open(cut, skip_damaged=True)
    assert len(r2) == 4 and r2.truncated == 1
    check_frames(r2, range(4), 6000)

    cut_entry = os.path.join(short_tmp, "cut2.dqr")  # cut inside an index entry: that record is not there yet
    shutil.copy(path, cut_entry)
    os.truncate(cut_entry, A + 3 * S + 30)
    assert list(recording.open(cut_entry).frame_numbers) == [0, 1, 2]

    hole = os.path.join(short_tmp, "hole.dqr")  # record 1 never committed
    damaged_copy(path, hole, A + 1 * S, bytes(64))
    r3 = recording.open(hole)
    assert list(r3.frame_numbers) == [0, 2, 3, 4] and r3.holes == 1 and list(r3.records) == [0, 2, 3, 4]

    bad = os.path.join(short_tmp, "bad.dqr")  # a flipped bit in record 2's entry
    damaged_copy(path, bad, A + 2 * S + 17, b"\xff")
    with pytest.raises(RecordingError, match=r"offset %d: damaged index entry of record 2" % (A + 2 * S)):
        recording.open(bad)
    r4 = recording.open(bad, skip_damaged=True)
    assert list(r4.frame_numbers) == [0, 1, 3, 4] and r4.damaged == 1
    assert size == A + 5 * S or size >= A + 4 * S + A + 6000


def test_bad_files(short_tmp):
    path = os.path.join(short_tmp, "r.dqr")
    record(path, 100, 1)
    with open(path, "rb") as f:
        head = bytearray(f.read(160))
    v2 = os.path.join(short_tmp, "v2.dqr")
    head2 = bytearray(head)
    head2[8:10] = struct.pack("<H", 2)
    head2[156:160] = struct.pack("<I", zlib.crc32(bytes(head2[:156])))
    damaged_copy(path, v2, 0, bytes(head2))
    with pytest.raises(VersionError, match="dqr version 2.0; this package reads 1.x"):
        recording.open(v2)
    crc = os.path.join(short_tmp, "crc.dqr")
    damaged_copy(path, crc, 40, b"\x01")
    with pytest.raises(RecordingError, match="offset 156: header CRC-32 mismatch"):
        recording.open(crc)
    other = os.path.join(short_tmp, "x.bin")
    with open(other, "wb") as f:
        f.write(b"hello world, not a recording")
    with pytest.raises(RecordingError, match="neither a .dqr recording .* nor an HDF5 file"):
        recording.open(other)
    short = os.path.join(short_tmp, "short.dqr")
    with open(short, "wb") as f:
        f.write(bytes(head[:100]))
    with pytest.raises(RecordingError, match="100 bytes: shorter than a .dqr header"):
        recording.open(short)
    with pytest.raises(FileNotFoundError):
        recording.open(os.path.join(short_tmp, "missing.dqr"))


# ---- HDF5 ------------------------------------------------------------------

def write_h5(path, n, *, contiguous=False, numbers_n=None, h=48, w=64):
    h5py = need_module("h5py")
    with h5py.File(path, "w") as f:
        data = np.stack([expected(i, h * w).reshape(h, w) for i in range(n)])
        if contiguous:
            f.create_dataset("frames", data=data)
        else:
            f.create_dataset("frames", data=data, chunks=(1, h, w), maxshape=(None, h, w))
        m = n if numbers_n is None else numbers_n
        f.create_dataset("frame_numbers", data=np.arange(10, 10 + m, dtype=np.uint64))
        f.create_dataset("timestamps_ns", data=T0 + 1000 * np.arange(m, dtype=np.int64))


@pytest.mark.parametrize("contiguous", [False, True])
def test_hdf5_written_by_h5py(short_tmp, contiguous):
    path = os.path.join(short_tmp, "run.h5")
    write_h5(path, 7, contiguous=contiguous)
    with recording.open(path) as rec:
        assert isinstance(rec, recording.Hdf5Recording) and len(rec) == 7 and rec.shape == (48, 64)
        assert list(rec.frame_numbers) == list(range(10, 17))
        assert list(rec.timestamps_ns) == [T0 + 1000 * i for i in range(7)]
        for k, a in enumerate(rec):
            assert not a.flags.writeable and np.array_equal(a.reshape(-1), expected(k, 48 * 64))
        if contiguous:  # mapped: the array is the file's page cache, no copy
            assert isinstance(rec[3].base, np.memmap) or isinstance(rec[3], np.memmap)


def test_hdf5_cut_short(short_tmp):
    path = os.path.join(short_tmp, "cut.h5")
    write_h5(path, 6, numbers_n=4)  # the frames were extended, the index not yet: list only what both have
    with recording.open(path) as rec:
        assert len(rec) == 4 and list(rec.frame_numbers) == [10, 11, 12, 13]


SWMR_WRITER = textwrap.dedent("""
    import sys, numpy as np, h5py
    path, n = sys.argv[1], int(sys.argv[2])
    f = h5py.File(path, "w", libver="latest")
    fr = f.create_dataset("frames", shape=(0, 16, 32), maxshape=(None, 16, 32), chunks=(1, 16, 32), dtype="u1")
    num = f.create_dataset("frame_numbers", shape=(0,), maxshape=(None,), chunks=(64,), dtype="u8")
    ts = f.create_dataset("timestamps_ns", shape=(0,), maxshape=(None,), chunks=(64,), dtype="i8")
    f.swmr_mode = True
    for i in range(n):
        fr.resize(i + 1, axis=0); fr[i] = (i + np.arange(512)).reshape(16, 32) % 251
        num.resize(i + 1, axis=0); num[i] = i
        ts.resize(i + 1, axis=0); ts[i] = 1000 * i
        for d in (fr, num, ts):
            d.flush()
        if i + 1 in (3, n):
            print("written", i + 1, flush=True)
            sys.stdin.readline()
    f.close()
""")


def test_hdf5_swmr_while_written(short_tmp):
    need_module("h5py")
    path = os.path.join(short_tmp, "swmr.h5")
    with Child([sys.executable, "-c", SWMR_WRITER, path, "8"]) as writer:
        assert writer.line() == "written 3"
        rec = recording.open(path)
        assert rec.swmr and len(rec) == 3
        writer.proc.stdin.write("\n")
        writer.proc.stdin.flush()
        assert writer.line() == "written 8"
        assert rec.refresh() == 5 and len(rec) == 8
        assert list(rec.frame_numbers) == list(range(8))
        for i in range(8):
            assert np.array_equal(rec[i].reshape(-1), (i + np.arange(512)) % 251)
        writer.proc.stdin.write("\n")
        writer.proc.stdin.flush()
        assert writer.wait() == 0
        rec.close()


def test_hdf5_written_by_the_cpp_recorder(short_tmp):
    """daq_pool::hdf5::Hdf5Recorder (SWMR, one chunk per frame), in a real
    process: read while it is written, then the finished file; and a file
    whose writer was SIGKILLed."""
    need_module("h5py")
    path = os.path.join(short_tmp, "cpp.h5")
    with Child([tool("DAQ_POOL_RECORDER"), path, 2 * 40 * 60, 7, "--dtype=<u2", "--shape=40,60", "--pause-after=3",
                "--first=50"]) as writer:
        line = writer.line()
        if "without daq_pool::hdf5" in line:
            pytest.fail(line)
        assert line == "written 3"
        rec = recording.open(path)
        assert isinstance(rec, recording.Hdf5Recording) and rec.swmr and len(rec) == 3
        assert rec.shape == (40, 60) and rec.dtype == np.dtype("<u2")
        writer.proc.stdin.write("\n")
        writer.proc.stdin.flush()
        assert '"frames_written":7' in writer.line()
        assert writer.wait() == 0
        rec.refresh()
        assert len(rec) == 7
        assert list(rec.frame_numbers) == list(range(50, 57))
        assert list(rec.timestamps_ns) == [T0 + 1000 * i for i in range(7)]
        for k in range(7):
            assert np.array_equal(rec[k].reshape(-1).view(np.uint8), expected(k, 2 * 40 * 60)), k
        rec.close()
    killed = os.path.join(short_tmp, "killed.h5")
    with Child([tool("DAQ_POOL_RECORDER"), killed, 100 * 100, 9, "--dtype=|u1", "--shape=100,100",
                "--pause-after=4"]) as writer:
        assert writer.line() == "written 4"
        os.kill(writer.pid, signal.SIGKILL)
        writer.proc.wait(10)
    with recording.open(killed) as rec:
        assert len(rec) == 4
        for k in range(4):
            assert np.array_equal(rec[k].reshape(-1), expected(k, 100 * 100))
