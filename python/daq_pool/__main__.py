"""``python -m daq_pool``: the command line of the daq_pool package.

    python -m daq_pool view PATH|ENDPOINT [--snapshot FILE.png] [options]
    python -m daq_pool info PATH|ENDPOINT

Exit codes: 0 success; 1 no frame within --timeout; 2 bad arguments, no
server, wrong protocol version, a refused frame size, an unreadable file.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Tuple

from . import __version__
from .errors import DaqPoolError

EPILOG = """\
sources (told apart by their form):
  tcp://HOST:PORT, ipc://PATH   a ZeroMQ sender (frame_pipeline --publish, daq_pool::zmq::FrameSender)
  PATH of a Unix socket         a daq_pool::shm::Server (frame_pipeline --serve=PATH)
  PATH of a file                a recording: .dqr (daq_pool::recording::Recorder) or HDF5

examples:
  python -m daq_pool view /run/user/1000/daq/frames.sock
  python -m daq_pool view tcp://127.0.0.1:5555 --frame-bytes=8M
  python -m daq_pool view run.dqr --snapshot=last.png

exit codes: 0 success; 1 no frame within --timeout; 2 bad arguments, no server at the path,
wrong protocol version, a refused frame size, an unreadable recording
"""


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    try:
        if text and text[-1].upper() in units:
            return int(text[:-1]) * units[text[-1].upper()]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: bytes, e.g. 4096, 64K, 8M") from None


def _shape(text: str) -> Tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.lower().replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"got {text!r}; allowed: positive dimensions, e.g. 480x640")
    return dims


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m daq_pool", description="Frames from daq-pool as numpy arrays: "
                                "view a shared-memory server, a ZeroMQ stream or a recording.",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"daq_pool {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    v = sub.add_parser("view", help="show the newest frame live (matplotlib), or render one with --snapshot",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    i = sub.add_parser("info", help="print what the source is and its first frame's metadata as JSON")
    for q in (v, i):
        q.add_argument("source", metavar="PATH|ENDPOINT", help="a Unix socket, tcp:// or ipc:// endpoint, or file")
        q.add_argument("--dtype", help="element type of a frame, numpy notation (default: the server's or the "
                                       "recording's layout, else u1)")
        q.add_argument("--shape", type=_shape, help="frame shape, e.g. 480x640 (default: the recording's, else flat)")
        q.add_argument("--frame-bytes", type=_size, metavar="BYTES",
                       help="ZeroMQ: the frame size expected; larger messages are refused (ZMQ_MAXMSGSIZE)")
        q.add_argument("--mode", choices=["pull", "sub"], default="pull", help="ZeroMQ: PULL (default) or SUB")
        q.add_argument("--curve-server-key", metavar="KEY|FILE", help="ZeroMQ: the sender's CURVE public key")
        q.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the server and a frame")
    v.add_argument("--snapshot", metavar="FILE.png", help="render one frame to FILE.png headless (Agg) and exit")
    v.add_argument("--skip", type=int, default=0, help="--snapshot: frames to let pass first (default 0)")
    v.add_argument("--width", type=int, help="pixels per row for flat frames (default 1024, or sqrt of the size)")
    v.add_argument("--duration", type=float, help="stop the live view after this many seconds")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if args.command is None:
        p.print_help()
        return 2
    from . import viewer
    import numpy as np
    try:
        dtype = None if args.dtype is None else np.dtype(args.dtype)
    except TypeError:
        print(f"daq_pool: --dtype={args.dtype}: not a numpy type (e.g. u1, <u2, f4)", file=sys.stderr)
        return 2
    try:
        src = viewer.open_source(args.source, dtype=dtype, shape=args.shape, frame_bytes=args.frame_bytes,
                                 mode=args.mode, connect_timeout=args.timeout, curve_server_key=args.curve_server_key)
    except (DaqPoolError, OSError, ValueError, NotImplementedError) as e:
        print(f"daq_pool: {args.source}: {e}", file=sys.stderr)
        return 2
    try:
        if args.command == "info":
            return _info(src, args)
        if args.snapshot:
            try:
                info = viewer.snapshot(src, args.snapshot, timeout=args.timeout, width=args.width, skip=args.skip)
            except TimeoutError as e:
                print(f"daq_pool: {args.source}: {e}{_why(src)}", file=sys.stderr)
                return 2 if _why(src) else 1
            print(json.dumps(info))
            return 0
        drawn = viewer.live(src, width=args.width, duration=args.duration)
        print(f"view: {drawn} frames drawn, {src.received} received, {src.drops()} dropped")
        return 0
    except DaqPoolError as e:
        print(f"daq_pool: {args.source}: {e}", file=sys.stderr)
        return 2
    finally:
        src.close()


def _why(src: "object") -> str:
    """The reason a source produced nothing, where it knows one."""
    last = getattr(getattr(src, "obj", None), "last_error", None)
    return f"; {last}" if last else ""


def _info(src: "object", args: argparse.Namespace) -> int:
    from ._frame import frame_of
    obj = getattr(src, "obj")
    out = {"source": args.source, "kind": getattr(src, "kind")}
    for name in ("hello", "header", "protocol_version", "swmr"):
        if hasattr(obj, name):
            out[name] = getattr(obj, name)
    if hasattr(obj, "__len__"):
        out["frames"] = len(obj)
    try:
        frame = src.next(args.timeout)  # type: ignore[attr-defined]
    except EOFError:
        frame = None
    if frame is not None:
        f = frame_of(frame)
        out["frame"] = {"number": f.number, "timestamp_ns": f.timestamp_ns, "shape": list(frame.shape),
                        "dtype": str(frame.dtype), "nbytes": frame.nbytes}
    print(json.dumps(out, default=str))
    return 0 if frame is not None else 1


if __name__ == "__main__":
    sys.exit(main())
