"""The Fletcher-style 64-bit checksum that daq-pool's C++ side uses in two
places: the ZeroMQ wire format's payload checksum (daq_pool/zmq/wire.hpp,
`daq_pool.zmq.wire_checksum`) and the demo's frame pattern
(examples/frame_pipeline/frame_pattern.hpp, `daq_pool.pattern`). One copy,
numpy only, so that the pattern needs no pyzmq.
"""
from __future__ import annotations

import collections
from typing import Iterable, Tuple

import numpy as np

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15  #: the odd constant that mixes b into the value (a ^ b * GOLDEN)
CACHED_SIZES = 4


class RecentArrays(collections.OrderedDict):
    """Arrays kept for the `limit` keys used last (least recently used
    evicted): a stream has one frame size, and a sender (or a stranger)
    sending many sizes must not grow a cache without bound. Thread-safe
    under CPython's GIL as far as results go: two threads may both build an
    array, and an eviction between a lookup and its refresh only costs a
    rebuild later."""

    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def get_or_make(self, key, make, keep: bool = True) -> np.ndarray:
        """The array for `key`, made by make() if absent (and kept if
        `keep`); marks `key` as used last."""
        a = self.get(key)
        if a is None:
            a = make()
            if keep:
                self[key] = a
                while len(self) > self.limit:
                    self.popitem(last=False)
        else:
            try:
                self.move_to_end(key)
            except KeyError:  # another thread evicted it meanwhile: `a` is still good
                pass
        return a


# The weights of the few most recent word counts.
_weights = RecentArrays(CACHED_SIZES)
_MAX_CACHED_WEIGHTS = 1 << 21  # words (16 MiB of weights): larger sums make theirs each time


def fletcher(words: np.ndarray, extra: Iterable[int] = ()) -> Tuple[int, int]:
    """(a, b): a = sum of the uint64 `words`, then of `extra`; b = sum of
    the running a; both mod 2^64, as the C++ ``Checksum::add`` loop.

    Never copies `words` (a view of the payload is fine); allocates the
    weights once per word count (the last `CACHED_SIZES` counts of up to
    2^21 words are kept). Thread-safe under CPython's GIL as far as the
    result goes (two threads may both build the same weights)."""
    n = words.size
    if n:
        a = int(words.sum(dtype=np.uint64))
        # b = sum over i of (n - i) * x_i (mod 2^64): one dot product with
        # cached weights instead of a cumulative sum the size of the payload.
        w = _weights.get_or_make(n, lambda: np.arange(n, 0, -1, dtype=np.uint64), keep=n <= _MAX_CACHED_WEIGHTS)
        b = int(np.dot(words, w))
    else:
        a = b = 0
    for e in extra:
        a = (a + e) & M64
        b = (b + a) & M64
    return a, b


def fletcher_value(words: np.ndarray, extra: Iterable[int] = ()) -> int:
    """The 64-bit checksum value a ^ (b * GOLDEN) of `fletcher`."""
    a, b = fletcher(words, extra)
    return (a ^ (b * GOLDEN)) & M64
