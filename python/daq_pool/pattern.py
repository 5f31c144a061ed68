"""The frame_pipeline demo's test pattern (examples/frame_pipeline/frame_pattern.hpp):
make and verify frames whose every byte is known, to check a transport end
to end. numpy only.

A frame is a 32-byte little-endian header (magic "DAQFRAME", frame number,
frame size, checksum of the payload) and a payload of 64-bit words
``w[i] = mix(number) + i * WORD_STEP`` (mod 2^64); a tail shorter than a
word holds the first bytes of the next word. The checksum is the
Fletcher-style one of daq_pool's C++ side over the words and the
zero-padded tail word. Every word depends on the frame number, so a reused
buffer, a torn, shifted or stale copy all fail `verify`.

    from daq_pool import pattern
    frame = pattern.make_frame(7, 4096)          # bytes
    assert pattern.verify(frame) is None         # else the reason, in words
"""
from __future__ import annotations

import struct
from typing import Any, Optional

import numpy as np

from ._checksum import M64, RecentArrays, fletcher_value

__all__ = ["HEADER_BYTES", "MAGIC", "WORD_STEP", "mix", "expected_words", "make_frame", "verify", "frame_number"]

HEADER_BYTES = 32
MAGIC = 0x454D415246514144  #: "DAQFRAME", little-endian
WORD_STEP = 0xD6E8FEB86659FD93  #: odd: adjacent words always differ
_HEADER = struct.Struct("<QQQQ")  # magic, frame number, frame size, checksum

# One base array (i * WORD_STEP) per payload word count, the most recent few
# only: a sender (or a stranger) sending many sizes must not grow this
# without bound.
CACHED_SIZES = 4
_base_cache = RecentArrays(CACHED_SIZES)


def mix(x: int) -> int:
    """splitmix64's finalizer: the first payload word of frame `x`. Pure."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def expected_words(number: int, words: int) -> np.ndarray:
    """The first `words` payload words of frame `number` (a new uint64
    array; the ``i * WORD_STEP`` base is cached for the last
    `CACHED_SIZES` word counts). Allocates one array of `words`."""
    base = _base_cache.get_or_make(words, lambda: np.arange(words, dtype=np.uint64) * np.uint64(WORD_STEP))
    return base + np.uint64(mix(number))  # wraps mod 2^64, like the C++ side


def _tail_bytes(number: int, words: int, tail: int) -> bytes:
    return ((mix(number) + words * WORD_STEP) & M64).to_bytes(8, "little")[:tail]


def make_frame(number: int, size: int) -> bytes:
    """Frame `number` of `size` bytes (at least HEADER_BYTES), exactly as the
    demo's sensor makes it. Allocates the frame (and its words)."""
    if size < HEADER_BYTES:
        raise ValueError(f"size={size}: allowed: at least {HEADER_BYTES} bytes (the frame's header)")
    words, tail = divmod(size - HEADER_BYTES, 8)
    w = expected_words(number, words)
    t = _tail_bytes(number, words, tail)
    checksum = fletcher_value(w, [int.from_bytes(t, "little")] if tail else [])
    return _HEADER.pack(MAGIC, number, size, checksum) + w.tobytes() + t


def frame_number(frame: Any) -> int:
    """The frame number in `frame`'s header (any buffer of >= 16 bytes);
    nothing else is checked."""
    return struct.unpack_from("<Q", frame, 8)[0]


def verify(frame: Any, previous: Optional[int] = None) -> Optional[str]:
    """None if `frame` (any buffer: bytes, memoryview, a uint8 numpy array)
    is a whole frame of the pattern, numbered above `previous` (if given);
    else what is wrong, in the C++ check's words. The payload is compared
    as uint64 words viewed in place (no copy of the frame; one array of the
    expected words is made). Thread-safe."""
    raw = np.frombuffer(frame, dtype=np.uint8)
    n = raw.size
    if n < HEADER_BYTES:
        return "shorter than its header"
    magic, number, size, checksum = _HEADER.unpack(raw[:HEADER_BYTES].tobytes())
    if magic != MAGIC:
        return "header magic is wrong"
    if size != n:
        return "size differs from the header's"
    if previous is not None and number <= previous:
        return "frame number not after the previous frame's"
    words, tail = divmod(n - HEADER_BYTES, 8)
    w = raw[HEADER_BYTES:HEADER_BYTES + 8 * words].view("<u8")  # a view of the frame: no copy
    expected = expected_words(number, words)
    if not np.array_equal(w, expected):
        first = int(np.argmax(w != expected))
        return f"payload differs from the sensor's pattern (byte offset {HEADER_BYTES + 8 * first})"
    extra = []
    if tail:
        t = raw[HEADER_BYTES + 8 * words:].tobytes()
        if t != _tail_bytes(number, words, tail):
            return f"payload differs from the sensor's pattern (byte offset {HEADER_BYTES + 8 * words})"
        extra.append(int.from_bytes(t, "little"))
    if fletcher_value(w, extra) != checksum:
        return "payload checksum differs from the header's"
    return None
