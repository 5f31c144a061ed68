"""daq_pool.pattern (the frame_pipeline demo's pattern) and the checksum
it shares with the wire format: frames made here verify, every kind of
damage is named, the caches stay bounded whatever sizes arrive. The C++
side's frames are verified by test_zmq/test_shm and the zmq_stream_*
ctest cases (receive_frames.py over real `frame_pipeline --publish`)."""
import numpy as np
import pytest

from daq_pool import _checksum, pattern


def reference_frame(number, size):
    """The pattern transcribed word by word from frame_pattern.hpp's fill_frame (slow, independent)."""
    m64 = (1 << 64) - 1
    words, tail = divmod(size - 32, 8)
    w = pattern.mix(number)
    a = b = 0
    out = bytearray()
    for _ in range(words):
        out += w.to_bytes(8, "little")
        a = (a + w) & m64
        b = (b + a) & m64
        w = (w + pattern.WORD_STEP) & m64
    if tail:
        last = int.from_bytes(w.to_bytes(8, "little")[:tail], "little")
        out += w.to_bytes(8, "little")[:tail]
        a = (a + last) & m64
        b = (b + a) & m64
    checksum = (a ^ (b * 0x9E3779B97F4A7C15)) & m64
    head = b"".join(v.to_bytes(8, "little") for v in (pattern.MAGIC, number, size, checksum))
    return head + bytes(out)


@pytest.mark.parametrize("size", [32, 33, 39, 40, 41, 4096, 4096 + 37, 65536 + 5])
def test_make_frame_matches_the_cpp_definition(size):
    for number in (0, 1, 12345, (1 << 64) - 1):
        frame = pattern.make_frame(number, size)
        assert frame == reference_frame(number, size)
        assert pattern.verify(frame) is None
        assert pattern.verify(np.frombuffer(frame, np.uint8)) is None  # any buffer, in place
        assert pattern.verify(memoryview(frame)) is None
        assert pattern.frame_number(frame) == number


def test_damage_is_named():
    frame = pattern.make_frame(7, 4096 + 37)

    def damaged(offset):
        b = bytearray(frame)
        b[offset] ^= 0x01
        return bytes(b)
    assert pattern.verify(frame[:31]) == "shorter than its header"
    assert pattern.verify(damaged(0)) == "header magic is wrong"
    assert pattern.verify(frame[:-1]) == "size differs from the header's"
    assert pattern.verify(damaged(100)) == "payload differs from the sensor's pattern (byte offset 96)"
    assert pattern.verify(damaged(len(frame) - 1)).startswith("payload differs from the sensor's pattern")
    assert pattern.verify(damaged(24)) == "payload checksum differs from the header's"
    assert pattern.verify(frame, previous=7) == "frame number not after the previous frame's"
    assert pattern.verify(frame, previous=6) is None
    # another frame's payload under this header
    other = pattern.make_frame(8, len(frame))
    assert pattern.verify(frame[:32] + other[32:]).startswith("payload differs")
    with pytest.raises(ValueError, match="size=31"):
        pattern.make_frame(0, 31)


def test_caches_stay_bounded_whatever_sizes_arrive():
    """A sender (or a stranger) of many frame sizes must not grow memory without bound."""
    for words in range(1, 60):
        pattern.expected_words(0, words)
        _checksum.fletcher(np.arange(words, dtype=np.uint64))
    assert len(pattern._base_cache) <= pattern.CACHED_SIZES
    assert len(_checksum._weights) <= _checksum.CACHED_SIZES
    # the most recent sizes are the ones kept
    assert list(pattern._base_cache) == list(range(60 - pattern.CACHED_SIZES, 60))


def test_fletcher_matches_a_running_sum():
    rng = np.random.default_rng(3)
    words = rng.integers(0, 1 << 63, 1000, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    m64 = (1 << 64) - 1
    a = b = 0
    for w in words.tolist() + [5, 6]:
        a = (a + w) & m64
        b = (b + a) & m64
    assert _checksum.fletcher(words, [5, 6]) == (a, b)
    assert _checksum.fletcher(words[:0]) == (0, 0)
