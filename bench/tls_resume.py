#!/usr/bin/env python3
"""New or resumed TLS connections for bench/x509.sh (standard library only).

ApacheBench cannot resume a TLS session, so the resumed-handshake points
come from here: PROCS processes, each in a loop for DURATION seconds:
connect, TLS handshake (presenting CERT's chain, offering the session of
the previous connection with --resume), one `GET PATH` with
`Connection: close`, read to the end. Every connection after a worker's
first offers the newest session (a TLS 1.3 ticket may be single-use, as
with rustls' stateful store). Prints one JSON line: completed, resumed
(the server accepted the session), non2xx, failed, conn/s.

Sockets are TCP_NODELAY, as urllib3 (keystoneauth, the openstack CLI) makes
them. ab's are not: OpenSSL writes a client flight bigger than 4 kB (a
proxy chain with an AC) in two writes, Nagle holds the second until the
server's delayed ACK, and every such handshake waits some 40 ms, with any
server. Without --resume this script gives new handshakes at the rate a
real grid client would reach.
"""
import argparse
import json
import multiprocessing
import socket
import ssl
import time


def worker(a, deadline, out):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.cert:
        ctx.load_cert_chain(a.cert)
    req = f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\nConnection: close\r\n\r\n".encode()
    done = resumed = non2xx = failed = 0
    session = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((a.host, a.port), timeout=10) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with ctx.wrap_socket(raw, session=session if a.resume else None) as s:
                    s.sendall(req)
                    data = b""
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if a.resume:
                        session = s.session
                    resumed += s.session_reused
        except (OSError, ssl.SSLError):
            failed += 1
            session = None
            continue
        done += 1
        if not data.startswith(b"HTTP/1.1 2"):
            non2xx += 1
    out.put((done, resumed, non2xx, failed))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/")
    ap.add_argument("--cert", help="PEM with the client chain and key (as ab -E)")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--procs", type=int, default=8)
    ap.add_argument("--duration", type=float, default=10)
    a = ap.parse_args()
    q = multiprocessing.Queue()
    t0 = time.monotonic()
    deadline = t0 + a.duration
    ps = [multiprocessing.Process(target=worker, args=(a, deadline, q)) for _ in range(a.procs)]
    for p in ps:
        p.start()
    res = [q.get() for _ in ps]
    for p in ps:
        p.join()
    took = time.monotonic() - t0
    done, resumed, non2xx, failed = (sum(r[i] for r in res) for i in range(4))
    print(json.dumps({"completed": done, "resumed": resumed, "non2xx": non2xx, "failed": failed,
                      "rps": round(done / took, 2)}))


if __name__ == "__main__":
    main()
