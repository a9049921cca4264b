#!/usr/bin/env python3
"""Memory per idle keep-alive TLS connection, for bench/idle-memory.sh
(standard library only; process-tree helpers from bench/bench.py).

Per repetition, for each N, for each target in turn (interleaved):
  idle   RSS of the server's process tree (VmRSS of the root and every
         descendant: nginx's master + workers; fedgate is one process);
  open   N TLS connections (ALPN http/1.1, as urllib3 offers), one
         `GET /v3` on each, answer read in full, all kept open and idle;
         after SETTLE seconds: RSS, and how many are still open;
  closed every connection closed (close_notify + FIN); after SETTLE
         seconds: RSS.
Per-connection KB = (RSS_open - RSS_idle) / connections still open, with
RSS_idle measured just before that point. Medians over repetitions;
ratios fedgate/nginx.
"""
import argparse
import asyncio
import os
import ssl
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import children_map  # noqa: E402

REQ = b"GET /v3 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: fedgate-idle-memory\r\n\r\n"


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_kb(root):
    """VmRSS summed over `root` and its descendants (shared pages of a
    forked master and its workers count once per process, as `ps` shows)."""
    kids = children_map()
    total, todo = rss_kb(root), list(kids.get(root, []))
    while todo:
        p = todo.pop()
        total += rss_kb(p)
        todo.extend(kids.get(p, []))
    return total


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


async def open_one(host, port, ctx, sem):
    async with sem:
        r, w = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost"), 30)
        w.write(REQ)
        await w.drain()
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 30)
        status = head.split(b" ", 2)[1]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v)
        if length:
            await r.readexactly(length)
        if status != b"200":
            raise RuntimeError(f"status {status!r}")
        return r, w


async def close_one(w):
    w.close()
    try:
        await asyncio.wait_for(w.wait_closed(), 10)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        pass


async def point(host, port, pid, n, settle, conc):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    idle = tree_rss_kb(pid)
    sem = asyncio.Semaphore(conc)
    t0 = time.monotonic()
    res = await asyncio.gather(*(open_one(host, port, ctx, sem) for _ in range(n)), return_exceptions=True)
    opened = [x for x in res if not isinstance(x, BaseException)]
    errors = [x for x in res if isinstance(x, BaseException)]
    t_open = time.monotonic() - t0
    await asyncio.sleep(settle)
    held = tree_rss_kb(pid)
    still = sum(1 for r, _ in opened if not r.at_eof())
    await asyncio.gather(*(close_one(w) for _, w in opened))
    await asyncio.sleep(settle)
    closed = tree_rss_kb(pid)
    err = ""
    if errors:
        err = f"{len(errors)} failed, first: {type(errors[0]).__name__}: {errors[0]}"
    return {"idle_kb": idle, "held_kb": held, "closed_kb": closed, "opened": len(opened), "still_open": still,
            "per_conn_kb": (held - idle) / max(still, 1), "open_s": t_open, "errors": err}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conns", default="1000,10000")
    ap.add_argument("--settle", type=float, default=5)
    ap.add_argument("--conc", type=int, default=64, help="connections being opened at once")
    ap.add_argument("--target", action="append", required=True, help="name=host:port=pid")
    a = ap.parse_args()
    targets = [t.split("=", 2) for t in a.target]
    ns = [int(x) for x in a.conns.split(",")]
    first = {name: tree_rss_kb(int(pid)) for name, _, pid in targets}
    load_start = loadavg()
    print(f"loadavg start {load_start}; fresh RSS: "
          + ", ".join(f"{k} {v / 1024:.1f} MB" for k, v in first.items()), flush=True)
    pts = []
    for rep in range(a.reps):
        for n in ns:
            for name, addr, pid in targets:
                host, port = addr.rsplit(":", 1)
                p = asyncio.run(point(host, int(port), int(pid), n, a.settle, a.conc))
                p.update(rep=rep, n=n, target=name, load=loadavg())
                pts.append(p)
                print(f"rep {rep + 1} N={n:<6} {name:8} idle {p['idle_kb'] / 1024:7.1f} MB  "
                      f"held {p['held_kb'] / 1024:7.1f} MB ({p['still_open']}/{p['opened']} open, "
                      f"opened in {p['open_s']:.1f} s)  {p['per_conn_kb']:6.1f} KB/conn  "
                      f"after close {p['closed_kb'] / 1024:7.1f} MB  load {p['load']} {p['errors']}", flush=True)
    print(f"loadavg end {loadavg()}")
    print()
    print(f"{a.reps} interleaved repetitions, settle {a.settle:g} s; medians "
          f"(per rep in brackets); loadavg start {load_start} / end {loadavg()}")
    print()
    print("| N | server | idle MB | held MB | KB per connection | per rep | after close MB | after close - idle MB |")
    print("|---|---|---|---|---|---|---|---|")
    med = {}
    for n in ns:
        for name, _, _ in targets:
            ps = [p for p in pts if p["n"] == n and p["target"] == name]
            m = {k: statistics.median(p[k] for p in ps) for k in ("idle_kb", "held_kb", "closed_kb", "per_conn_kb")}
            m["ret"] = statistics.median(p["closed_kb"] - p["idle_kb"] for p in ps)
            med[(n, name)] = m
            print(f"| {n} | {name} | {m['idle_kb'] / 1024:.1f} | {m['held_kb'] / 1024:.1f} | {m['per_conn_kb']:.1f} | "
                  f"{[round(p['per_conn_kb'], 1) for p in ps]} | {m['closed_kb'] / 1024:.1f} | {m['ret'] / 1024:.1f} |")
    names = [t[0] for t in targets]
    if "fedgate" in names and "nginx" in names:
        print()
        for n in ns:
            f, g = med[(n, "fedgate")], med[(n, "nginx")]
            per_rep = [round(p["per_conn_kb"] / q["per_conn_kb"], 2)
                       for p, q in zip([p for p in pts if p["n"] == n and p["target"] == "fedgate"],
                                       [p for p in pts if p["n"] == n and p["target"] == "nginx"])]
            print(f"N={n}: fedgate/nginx KB per connection {f['per_conn_kb'] / g['per_conn_kb']:.2f} "
                  f"(per rep {per_rep}); after-close RSS fedgate/nginx {f['closed_kb'] / g['closed_kb']:.2f}")
    print()
    print("fresh RSS (before any connection): " + ", ".join(f"{k} {v / 1024:.1f} MB" for k, v in first.items()))


if __name__ == "__main__":
    main()
