#!/usr/bin/env python3
"""TLS handshake-rate client for benches/load.sh: one new TLS connection per request.

    handshake.py HOST PORT SECONDS MODE PROCESSES

MODE `full` makes every connection a full handshake (no session offered); MODE `resumed` offers
the session ticket of the process's previous connection, so every connection after the first is
a resumption when the server supports it. Each connection sends `GET /v1/ping` with
`Connection: close` over HTTP/1.1 and reads the answer to its end. PROCESSES clients run in
parallel (the server, not this client, must be the bottleneck for CPU per handshake to be
meaningful; the script runs them on the client's own core).

Prints one line: `HSRESULT requests=N duration_us=D errors=E resumed=R status=S` where R counts
connections the server resumed and S counts answers that were not `HTTP/1.1 200`. TLS 1.3 only,
certificate not verified (the benchmark's own throwaway certificate).
"""

import multiprocessing
import socket
import ssl
import sys
import time

REQUEST = b"GET /v1/ping HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"


def client(host, port, seconds, resumed, out):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.set_alpn_protocols(["http/1.1"])
    session = None
    done = errors = reused = bad_status = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=5) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with context.wrap_socket(raw, server_hostname="bench", session=session) as tls:
                    tls.sendall(REQUEST)
                    answer = b""
                    while True:
                        chunk = tls.recv(65536)
                        if not chunk:
                            break
                        answer += chunk
                    if tls.session_reused:
                        reused += 1
                    if resumed:
                        # TLS 1.3 tickets arrive after the handshake: read once the answer is in.
                        session = tls.session
            if not answer.startswith(b"HTTP/1.1 200"):
                bad_status += 1
            done += 1
        except (OSError, ssl.SSLError):
            errors += 1
    out.put((done, errors, reused, bad_status))


def main():
    if len(sys.argv) != 6 or sys.argv[4] not in ("full", "resumed"):
        sys.exit("usage: handshake.py HOST PORT SECONDS full|resumed PROCESSES")
    host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    resumed = sys.argv[4] == "resumed"
    processes = int(sys.argv[5])
    out = multiprocessing.Queue()
    started = time.monotonic()
    workers = [
        multiprocessing.Process(target=client, args=(host, port, seconds, resumed, out))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    totals = [0, 0, 0, 0]
    for _ in workers:
        for i, value in enumerate(out.get()):
            totals[i] += value
    for worker in workers:
        worker.join()
    elapsed_us = int((time.monotonic() - started) * 1e6)
    done, errors, reused, bad_status = totals
    print(
        f"HSRESULT requests={done} duration_us={elapsed_us} errors={errors} "
        f"resumed={reused} status={bad_status}"
    )


if __name__ == "__main__":
    main()
