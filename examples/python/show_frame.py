#!/usr/bin/env python3
"""Open a stream, show a frame: the shortest daq_pool Python program.

    python3 show_frame.py SOURCE [OUT.png]

SOURCE is a daq_pool::shm::Server's socket path, a ZeroMQ sender's
tcp:// or ipc:// endpoint, or a recording (.dqr, HDF5). Without OUT.png the
frame is shown in a window; with it, it is written there (headless).
"""
import sys

import matplotlib

if len(sys.argv) > 2:
    matplotlib.use("Agg")  # headless: render to a file

import matplotlib.pyplot as plt

from daq_pool.viewer import open_source, to_image

source = sys.argv[1]
# --8<-- [start:open]
stream = open_source(source)              # shm socket, tcp:// / ipc:// endpoint, or recording
frame = stream.next(timeout=10)           # a read-only numpy array over the producer's memory
# --8<-- [end:open]
if frame is None:
    sys.exit(f"show_frame.py: {source}: no frame within 10 s")
# --8<-- [start:show]
plt.imshow(to_image(frame), cmap="gray")  # the frame is held until `frame` (and views) are gone
# --8<-- [end:show]
if len(sys.argv) > 2:
    plt.savefig(sys.argv[2])
    print(f"show_frame.py: {sys.argv[2]}: frame of {frame.nbytes} bytes")
else:
    plt.show()
del frame
stream.close()
