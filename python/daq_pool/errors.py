"""The exceptions of the daq_pool package. Each message names the path,
endpoint or argument and the limit that was not met."""
from __future__ import annotations

__all__ = ["DaqPoolError", "ProtocolError", "VersionError", "NoServerError", "FrameRefused", "RecordingError",
           "EndpointError"]


class DaqPoolError(Exception):
    """Base of every error this package raises on purpose."""


class NoServerError(DaqPoolError, ConnectionError):
    """Nothing listens at the given path / endpoint (or it went away)."""


class ProtocolError(DaqPoolError):
    """The peer sent something the protocol does not allow."""


class VersionError(ProtocolError):
    """The peer speaks another version of the protocol or file format."""


class FrameRefused(DaqPoolError):
    """A frame was refused: larger than the receiver accepts, wrong size,
    checksum mismatch. Receivers count these; they raise it only where
    asked to (``strict=True``)."""


class RecordingError(DaqPoolError, ValueError):
    """A recording file that cannot be read (not a recording, unknown
    version, a header that does not fit the file)."""


class EndpointError(DaqPoolError, ValueError):
    """An endpoint that cannot be used: a transport ZeroMQ does not know, a
    malformed address, a host that does not resolve. `endpoint` is the
    endpoint, `reason` says why (and what is allowed)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"endpoint={endpoint!r}: {reason}")
        self.endpoint = endpoint
        self.reason = reason
