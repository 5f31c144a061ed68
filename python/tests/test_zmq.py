"""daq_pool.zmq.Receiver against the real C++ sender (frame_pipeline
--publish, a process of its own) on ipc:// in a temp dir and on
tcp://127.0.0.1, and against hand-made bad messages (a Python PUSH)."""
import os
import re
import subprocess

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from daq_pool import EndpointError, FrameRefused, VersionError, address_of, frame_of, pattern  # noqa: E402
from daq_pool.zmq import (CHECKSUM_FULL, CHECKSUM_NONE, CHECKSUM_SAMPLED, FLAG_SHARED_NUMBERING,  # noqa: E402
                          PROTOCOL_ERROR_MECHANISM_MISMATCH, EndOfStream, Receiver, describe_handshake_failure,
                          encode_header, load_curve_key, wire_checksum, write_curve_keypair)
from support import Child, pattern_ok, tool, until  # noqa: E402


# The demo drops a frame ZeroMQ has no room for unless told to wait (where
# the flag exists): these tests count every frame.
WAIT = ["--publish-full=wait"]


def demo(endpoint, *flags):
    return Child([tool("DAQ_POOL_FRAME_PIPELINE"), f"--publish={endpoint}", "--quiet", *flags],
                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("frame_bytes", [4096, 4099, (1 << 20) + 13])
def test_every_frame_from_the_demo_over_ipc(short_tmp, frame_bytes):
    endpoint = f"ipc://{short_tmp}/frames"
    with Receiver(endpoint, frame_bytes=frame_bytes, exact_size=True) as rx:
        with demo(endpoint, "--frames=40", "--fps=400", f"--frame-bytes={frame_bytes}", *WAIT) as sender:
            numbers, held = [], []
            with pytest.raises(EndOfStream) as eos:
                for _ in range(100):
                    a = rx.receive(timeout=20)
                    if a is None:
                        sender.stop()
                        pytest.fail(f"no frame within 20 s; {rx.counters()}; sender: {sender.proc.stdout.read()}")
                    assert pattern_ok(a) and not a.flags.writeable and a.size == frame_bytes
                    f = frame_of(a)
                    numbers.append(f.number)
                    assert f.timestamp_ns > 0
                    # no copy: the array is the received message's memory
                    assert address_of(a) == address_of(np.frombuffer(f._keep.buffer, np.uint8))
                    if len(held) < 3:
                        held.append(a[100:200])  # slices outliving their parents keep their messages
                    del a, f
            assert eos.value.number == 40
            assert sender.wait() == 0
        # PUSH gives up on a frame after 100 ms without a peer: the first may
        # go before the connection is made; after it, none may be lost.
        assert numbers == list(range(numbers[0], 40)) and numbers[0] < 10
        assert rx.counters()["held"] == 3 and rx.gaps == 0 and rx.missing == 0 and rx.bad == 0
        assert all(pattern_ok(np.frombuffer(frame_of(h)._keep.buffer, np.uint8)) for h in held)
        del held
        assert rx.held == 0 and rx.released == len(numbers)


def test_tcp_and_iteration(short_tmp):
    with demo("tcp://127.0.0.1:*", "--frames=30", "--fps=300", "--frame-bytes=64K", *WAIT) as sender:
        first = sender.line()
        m = re.search(r"on (tcp://127\.0\.0\.1:\d+)", first)
        assert m, first
        with Receiver(m.group(1), frame_bytes=64 * 1024) as rx:
            got = [frame_of(a).number for a in rx]  # until the end of stream
            assert rx.end_of_stream == 30
            # the sender may have offered some before we connected (PUSH keeps them): none lost after
            assert got == list(range(got[0], 30)) and rx.missing == 0
        sender.wait()


def test_max_message_size_refuses_larger_frames(short_tmp):
    endpoint = f"ipc://{short_tmp}/big"
    with Receiver(endpoint, frame_bytes=4096) as rx:
        with demo(endpoint, "--duration=3", "--fps=100", "--frame-bytes=64K"):
            assert rx.receive(timeout=1.5) is None
            until(lambda: rx.counters()["dropped_connections"] >= 1, what="libzmq dropping the oversized connection")
            assert "max_frame_bytes=4096 (ZMQ_MAXMSGSIZE)" in rx.last_error
            assert rx.received == 0


def push_socket(short_tmp):
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 0)
    endpoint = f"ipc://{short_tmp}/py"
    s.bind(endpoint)
    return s, endpoint


def test_bad_messages_counted_and_skipped(short_tmp):
    s, endpoint = push_socket(short_tmp)
    payload = np.arange(1000, dtype=np.uint64).tobytes()
    good = lambda n, kind=CHECKSUM_SAMPLED: [encode_header(n, len(payload), wire_checksum(payload, kind), kind),  # noqa
                                             payload]
    try:
        with Receiver(endpoint) as rx:
            s.send_multipart([b"garbage"])
            s.send_multipart([b"DAQZ\x02" + bytes(27), payload])  # version 2
            s.send_multipart(good(0)[:1])  # header only
            s.send_multipart(good(0) + [b"x"])  # three parts
            s.send_multipart([good(0)[0], payload[:-1]])  # size
            s.send_multipart([good(0)[0], payload[:-8] + b"\x01" * 8])  # checksum
            s.send_multipart(good(0, CHECKSUM_FULL))
            s.send_multipart(good(1, CHECKSUM_NONE))
            s.send_multipart(good(5))
            s.send_multipart([encode_header(6, 0, 0, CHECKSUM_NONE, flags=1), b""])
            nums = [frame_of(a).number for a in rx]
            assert nums == [0, 1, 5]
            assert rx.bad == 6 and rx.gaps == 1 and rx.missing == 3 and rx.end_of_stream == 6
            assert rx.bad_reasons["payload checksum differs from the header's"] == 1
            assert any(r.startswith("unsupported wire format version 2") for r in rx.bad_reasons)
        with Receiver(endpoint, strict=True) as rx:
            s.send_multipart([b"DAQZ\x07" + bytes(27), payload])
            with pytest.raises(VersionError, match="version 7"):
                rx.receive(timeout=10)
            s.send_multipart([good(0)[0], payload[:-1]])
            with pytest.raises(FrameRefused, match="payload size differs"):
                rx.receive(timeout=10)
    finally:
        s.close(0)


def test_shape_dtype_and_refused_size(short_tmp):
    s, endpoint = push_socket(short_tmp)
    img = (np.arange(480 * 640, dtype=np.uint16) % 4096).reshape(480, 640)
    try:
        with Receiver(endpoint, dtype="<u2", shape=(480, 640), frame_bytes=img.nbytes, exact_size=True) as rx:
            s.send_multipart([encode_header(0, img.nbytes, wire_checksum(img.tobytes(), 1)), img.tobytes()])
            small = img[:10].tobytes()
            s.send_multipart([encode_header(1, len(small), wire_checksum(small, 1)), small])
            s.send_multipart([encode_header(2, img.nbytes, wire_checksum(img.tobytes(), 1)), img.tobytes()])
            a = rx.receive(timeout=10)
            assert a.shape == (480, 640) and np.array_equal(a, img)
            b = rx.receive(timeout=10)
            assert frame_of(b).number == 2 and rx.bad == 1
            assert "not the expected frame_bytes=614400" in rx.first_bad
    finally:
        s.close(0)


def test_checksum_matches_the_cpp_definition():
    # Independent slow reference: the C++ loop transcribed word by word.
    def reference(data, kind):
        n = len(data)
        if kind == 0 or n == 0:
            return 0
        words = (n + 7) // 8
        word = lambda i: int.from_bytes(data[i * 8:i * 8 + 8], "little")  # noqa: E731 (zero-padded)
        idx = list(range(words)) if kind == 2 else \
            [i for i in range(words) if i % 512 < 8] + ([words - 1] if (words - 1) % 512 >= 8 else [])
        a = b = 0
        for i in idx:
            a = (a + word(i)) & ((1 << 64) - 1)
            b = (b + a) & ((1 << 64) - 1)
        c = (a ^ (b * 0x9E3779B97F4A7C15)) & ((1 << 64) - 1)
        return (c ^ (c >> 32)) & 0xFFFFFFFF
    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 9, 64, 4095, 4096, 4097, 4096 + 64, 4096 + 65, 3 * 4096 + 5, 9000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        for kind in (0, 1, 2):
            assert wire_checksum(data, kind) == reference(data, kind), (n, kind)


def test_bad_arguments(short_tmp):
    with pytest.raises(ValueError, match="mode='x'"):
        Receiver("ipc://x", mode="x")
    with pytest.raises(ValueError, match="frame_bytes=4294967296"):
        Receiver("ipc://x", frame_bytes=1 << 32)
    with pytest.raises(ValueError, match="endpoint='nope://x'"):
        Receiver("nope://x")
    with pytest.raises(EndpointError) as e:
        Receiver("tcp://127.0.0.1")
    assert e.value.reason.startswith("zmq_connect(tcp://127.0.0.1): ") and "allowed: tcp://HOST:PORT" in e.value.reason
    # zmq_connect would accept the name and retry in silence forever
    with pytest.raises(EndpointError, match="host 'nohost.invalid' does not resolve") as e:
        Receiver("tcp://nohost.invalid:1")
    assert isinstance(e.value, ValueError) and e.value.endpoint == "tcp://nohost.invalid:1"


def message(number, payload, flags=0):
    return [encode_header(number, len(payload), wire_checksum(payload, CHECKSUM_SAMPLED), flags=flags), payload]


def test_verify_counts_a_bad_frame_apart_from_the_numbering(short_tmp):
    """A frame that passes the wire checks but not `verify` is a bad message
    named by its number; it is not handed out and does not count in the
    numbering (a damaged frame 0 after frame 1 is no restart)."""
    s, endpoint = push_socket(short_tmp)
    damaged = bytearray(pattern.make_frame(0, 4096))
    damaged[200] ^= 0xFF
    try:
        with Receiver(endpoint, verify=pattern.verify) as rx:
            s.send_multipart(message(0, pattern.make_frame(0, 4096)))
            s.send_multipart(message(1, pattern.make_frame(1, 4096 + 5)))
            s.send_multipart(message(0, bytes(damaged)))
            s.send_multipart(message(2, pattern.make_frame(2, 4096)))
            s.send_multipart([encode_header(3, 0, 0, CHECKSUM_NONE, flags=1), b""])
            assert [frame_of(a).number for a in rx] == [0, 1, 2]
            c = rx.counters()
            assert c["bad"] == 1 and c["restarts"] == 0 and c["gaps"] == 0
            assert rx.first_bad == "frame 0: payload differs from the sensor's pattern (byte offset 200)"
            assert c["first_number"] == 0 and c["last_number"] == 2 and c["bytes_received"] == 3 * 4096 + 5
    finally:
        s.close(0)


def test_shared_numbering_is_the_other_receivers_share(short_tmp):
    """PULL receivers sharing one sender's numbering (flag bit 1): a jump is
    the others' share, not lost, where this or the previous frame says so."""
    s, endpoint = push_socket(short_tmp)
    payload = b"\x07" * 64
    try:
        with Receiver(endpoint) as rx:
            for n, flags in ((0, FLAG_SHARED_NUMBERING), (2, FLAG_SHARED_NUMBERING), (5, FLAG_SHARED_NUMBERING),
                             (7, 0), (9, 0)):
                s.send_multipart(message(n, payload, flags))
            s.send_multipart([encode_header(12, 0, 0, CHECKSUM_NONE, flags=1), b""])
            assert [frame_of(a).number for a in rx] == [0, 2, 5, 7, 9]
            # 1, 3, 4 and 6 (after the shared 5) were the others'; 8 and 10, 11 (end of stream: 12) are lost
            assert rx.others_share == 4 and rx.gaps == 2 and rx.missing == 3
    finally:
        s.close(0)


def test_handshake_failures_in_words(short_tmp):
    ep = "tcp://127.0.0.1:5"
    assert "refused this receiver's CURVE key" in describe_handshake_failure(zmq.EVENT_HANDSHAKE_FAILED_AUTH, 400, ep)
    assert "security mismatch" in describe_handshake_failure(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL,
                                                             PROTOCOL_ERROR_MECHANISM_MISMATCH, ep)
    import errno
    text = describe_handshake_failure(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL, errno.ECONNRESET, ep)
    assert ep in text and "security mismatch" in text


def test_write_curve_keypair(short_tmp):
    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    public_file, secret_file, public = write_curve_keypair(os.path.join(short_tmp, "viewer"))
    assert public_file.endswith("viewer.key") and secret_file.endswith("viewer.key_secret")
    assert os.stat(secret_file).st_mode & 0o777 == 0o600
    assert load_curve_key(public_file) == public == load_curve_key(secret_file)
    assert len(load_curve_key(secret_file, secret=True)) == 40
    with pytest.raises(ValueError, match="no secret-key"):
        load_curve_key(public_file, secret=True)


def test_curve_keys(short_tmp):
    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    from zmq import auth as zauth
    server_public, server_secret = zmq.curve_keypair()
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 0)
    s.curve_server = True
    s.curve_secretkey = server_secret
    s.curve_publickey = server_public
    endpoint = f"ipc://{short_tmp}/curve"
    s.bind(endpoint)
    payload = b"\x01" * 100
    try:
        pub_file, sec_file = zauth.create_certificates(short_tmp, "server")
        assert load_curve_key(pub_file) == zauth.load_certificate(pub_file)[0]
        with Receiver(endpoint, curve_server_key=server_public) as rx:
            s.send_multipart([encode_header(0, 100, wire_checksum(payload, 1)), payload])
            a = rx.receive(timeout=10)
            assert a is not None and bytes(a) == payload
        wrong_public, _ = zmq.curve_keypair()
        with Receiver(endpoint, curve_server_key=wrong_public) as rx:
            assert rx.receive(timeout=1.0) is None
            until(lambda: rx.counters()["auth_failures"] >= 1 or rx.last_error, what="the failed handshake")
    finally:
        s.close(0)


def test_curve_against_the_cpp_sender(short_tmp):
    """frame_pipeline --publish-key/--publish-allow: an allowed client key
    gets verified frames; a key not on the list gets none and is told."""
    from zmq import auth as zauth
    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    keys = os.path.join(short_tmp, "keys")
    os.mkdir(keys)
    server_pub, server_sec = zauth.create_certificates(keys, "sender")
    client_pub, client_sec = zauth.create_certificates(keys, "viewer")
    with demo("tcp://127.0.0.1:*", "--duration=20", "--fps=100", "--frame-bytes=64K", f"--publish-key={server_sec}",
              f"--publish-allow={client_pub}") as sender:
        m = None
        for _ in range(20):
            m = re.search(r"(tcp://127\.0\.0\.1:\d+)", sender.line())
            if m:
                break
        assert m
        with Receiver(m.group(1), frame_bytes=64 * 1024, curve_server_key=server_pub,
                      curve_secret_key=client_sec) as rx:
            got = [rx.receive(timeout=20) for _ in range(5)]
            assert all(a is not None and pattern_ok(a) for a in got)
        stranger_pub, stranger_sec = zauth.create_certificates(short_tmp, "stranger")
        told = []
        with Receiver(m.group(1), frame_bytes=64 * 1024, curve_server_key=server_pub,
                      curve_secret_key=stranger_sec, on_refusal=told.append) as rx:
            assert rx.receive(timeout=1.5) is None
            until(lambda: rx.counters()["auth_failures"] >= 1, what="the refused handshake")
            assert "handshake failed" in rx.last_error and rx.received == 0
            assert "refused this receiver's CURVE key" in rx.refusal and rx.refusal in told
