#!/usr/bin/env python3
"""The lifetime rule, live: hold some frames of a daq_pool::shm::Server,
keep a slice of one, and watch the subscriber's `held` counter (the server
counts the same frames as in flight).

    python3 hold_frames.py /run/user/1000/daq/frames.sock
"""
import sys

import daq_pool
from daq_pool.shm import Subscriber

with Subscriber(sys.argv[1], connect_timeout=10) as sub:
    # --8<-- [start:hold]
    frames = [sub.receive(timeout=10) for _ in range(3)]  # three frames held at the server
    corner = frames[0][:16]                                # a view: it holds frame 0 too
    del frames                                             # frames 1 and 2 go back now
    print("held after del:", sub.held)                     # 1: the slice still holds frame 0
    daq_pool.release(corner)                               # or: del corner
    print("held after release:", sub.held)                 # 0
    # --8<-- [end:hold]
    print(sub.counters())
