#!/usr/bin/env python3
"""Opens N keep-alive TLS connections to HOST:PORT, sends one GET / on each
and reads its answer, then holds them all open and silent until killed.

    idle_connections.py HOST PORT N CAFILE

Prints "ready N" on stdout once every connection has had its answer (the
caller measures then), or exits non-zero. Used by run.sh's memory figure.
IDLE_ALPN (default "http/1.1") is the ALPN protocol offered; empty offers
none, as wrk does.
"""

import os
import resource
import signal
import socket
import ssl
import sys
import time


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
    request = f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    held = []
    started = time.monotonic()
    for i in range(count):
        raw = socket.create_connection((host, port), timeout=30)
        tls = context.wrap_socket(raw, server_hostname=host)
        tls.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"</form>"):
            chunk = tls.recv(65536)
            if not chunk:
                print(f"error: connection {i} closed before its answer", flush=True)
                return 1
            answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            print(f"error: connection {i}: {answer[:40]!r}", flush=True)
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
