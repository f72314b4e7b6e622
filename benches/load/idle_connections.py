#!/usr/bin/env python3
"""Opens N keep-alive TLS connections to HOST:PORT, sends one GET / on each
and reads its answer, then holds them all open and silent until killed.

    idle_connections.py HOST PORT N CAFILE

Prints "ready N" on stdout once every connection has had its answer (the
caller measures then), or exits non-zero. Used by run.sh's memory figure.
IDLE_ALPN (default "http/1.1") is the ALPN protocol offered; empty offers
none, as wrk does; "h2" makes the one GET an HTTP/2 stream, as a browser's
connection is.
"""

import os
import resource
import signal
import socket
import ssl
import struct
import sys
import time

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, SETTINGS, GOAWAY = 0x0, 0x1, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def h2_frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def h2_request(authority: str) -> bytes:
    # HPACK without Huffman: :method GET, :scheme https and :path / from the
    # static table (indices 2, 7, 4), :authority as a literal without
    # indexing (name index 1).
    block = bytes([0x82, 0x87, 0x84, 0x01, len(authority)]) + authority.encode()
    return H2_PREFACE + h2_frame(SETTINGS, 0, 0) + h2_frame(HEADERS, END_STREAM | END_HEADERS, 1, block)


def ok_status(block: bytes) -> bool:
    """Whether a response header block starts with :status 200 (HPACK static
    index 8), after any dynamic table size update."""
    if block[:1] and block[0] & 0xE0 == 0x20:
        block = block[1:]
    return block[:1] == b"\x88"


def h2_get(tls: ssl.SSLSocket, authority: str) -> str | None:
    """Sends GET / as stream 1 and reads until its end; None when it ended
    well, else what went wrong. Acknowledges the server's SETTINGS, as a
    client must."""
    tls.sendall(h2_request(authority))
    buffer = b""
    while True:
        while len(buffer) < 9 or len(buffer) < 9 + int.from_bytes(buffer[:3], "big"):
            chunk = tls.recv(65536)
            if not chunk:
                return "closed before its answer"
            buffer += chunk
        length = int.from_bytes(buffer[:3], "big")
        kind, flags, stream = buffer[3], buffer[4], int.from_bytes(buffer[5:9], "big") & 0x7FFFFFFF
        payload, buffer = buffer[9 : 9 + length], buffer[9 + length :]
        if kind == SETTINGS and not flags & ACK:
            tls.sendall(h2_frame(SETTINGS, ACK, 0))
        elif kind == GOAWAY:
            return f"GOAWAY {payload[4:8].hex()}"
        elif kind == HEADERS and stream == 1 and not ok_status(payload):
            return f"status block {payload[:4].hex()}"
        if kind in (DATA, HEADERS) and stream == 1 and flags & END_STREAM:
            return None


def http1_get(tls: ssl.SSLSocket, authority: str) -> str | None:
    """Sends GET / over HTTP/1.1 and reads the page; None when it came."""
    tls.sendall(f"GET / HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"</form>"):
        chunk = tls.recv(65536)
        if not chunk:
            return "closed before its answer"
        answer += chunk
    if not answer.startswith(b"HTTP/1.1 200"):
        return repr(answer[:40])
    return None


def main() -> int:
    host, port, count, cafile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    # Each connection is a descriptor; the default soft limit is often 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < count + 64:
        print(f"error: RLIMIT_NOFILE hard limit {hard} is below {count + 64}", flush=True)
        return 1
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    context = ssl.create_default_context(cafile=cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    alpn = os.environ.get("IDLE_ALPN", "http/1.1")
    if alpn:
        context.set_alpn_protocols([alpn])
    held = []
    started = time.monotonic()
    for i in range(count):
        raw = socket.create_connection((host, port), timeout=30)
        tls = context.wrap_socket(raw, server_hostname=host)
        get = h2_get if alpn == "h2" else http1_get
        problem = get(tls, f"{host}:{port}")
        if problem:
            print(f"error: connection {i}: {problem}", flush=True)
            return 1
        held.append(tls)
        if (i + 1) % 2000 == 0:
            print(f"{i + 1} connections in {time.monotonic() - started:.0f}s", file=sys.stderr)
    print(f"ready {len(held)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main())
