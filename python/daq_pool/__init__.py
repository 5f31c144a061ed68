"""daq_pool: frames from daq-pool as numpy arrays that hold their buffer
exactly as long as Python uses them.

Modules (imported on use, so that each needs only its own dependency):

- ``daq_pool.shm``: `Subscriber` of a daq_pool::shm::Server (shared memory; numpy only).
- ``daq_pool.zmq``: `Receiver` of a daq_pool::zmq::FrameSender stream (needs pyzmq).
- ``daq_pool.pattern``: the frame_pipeline demo's test pattern (make and verify frames; numpy only).
- ``daq_pool.recording``: `open` a recording (.dqr raw container: numpy; HDF5: h5py).
- ``python -m daq_pool``: the command line (``view`` with a live or ``--snapshot`` viewer).

The lifetime rule: every frame is a read-only numpy array over the
producer's memory; the array and every view numpy makes of it hold the
frame; it is given back when the last of them is garbage, or by
``daq_pool.release(array)``.
"""
from __future__ import annotations

from ._frame import FrameBuffer, address_of, frame_of, release
from .errors import (DaqPoolError, EndpointError, FrameRefused, NoServerError, ProtocolError, RecordingError,
                     VersionError)

__version__ = "0.1.0"

__all__ = ["FrameBuffer", "frame_of", "release", "address_of", "DaqPoolError", "EndpointError", "FrameRefused",
           "NoServerError", "ProtocolError", "RecordingError", "VersionError", "__version__"]
