#!/usr/bin/env python3
"""Helpers of bench/instructions.sh (standard library only).

  requests --port P --warmup W --count N --pid PID
                                over 4 keep-alive TLS connections, W
                                sequential GETs of /v3, then callgrind's
                                counters of PID zeroed, N more GETs, and the
                                counters dumped: the handshakes and the
                                warm-up are not counted (fails on any
                                non-200)
  report --requests N A [B] [--nginx C]
                                instructions per request of callgrind
                                profile A (and B, "before"; C, nginx as a
                                TLS reverse proxy on the same path), the
                                ratios, and A's costliest functions (self
                                cost)
"""
import argparse
import collections
import http.client
import ssl
import subprocess


def requests(port, warmup, count, pid):
    ctx = ssl._create_unverified_context()
    conns = [http.client.HTTPSConnection("127.0.0.1", port, context=ctx) for _ in range(4)]

    def get(n):
        for i in range(n):
            c = conns[i % len(conns)]
            c.request("GET", "/v3", headers={"Host": "localhost"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                raise SystemExit(f"request {i}: status {r.status}")

    get(max(warmup, len(conns)))
    subprocess.run(["callgrind_control", "-z", str(pid)], check=True, capture_output=True)
    get(count)
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for c in conns:
        c.close()


def self_costs(path):
    """Self cost per function of an uncompressed callgrind file: cost lines
    count for the current fn=, except the line after calls=, which is the
    callee's inclusive cost."""
    costs = collections.Counter()
    fn, after_call = None, False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("calls="):
                after_call = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                if after_call:
                    after_call = False
                else:
                    costs[fn] += int(parts[1])
    return costs


def report(requests_n, profiles, top, nginx=None):
    rows = []
    for p in profiles:
        c = self_costs(p)
        rows.append((p, c, sum(c.values()) / requests_n))
    names = ["fedgate", "before"]
    for (p, _, per), name in zip(rows, names):
        print(f"{name}: {per:,.0f} instructions per request ({p})")
    if len(rows) == 2:
        print(f"fedgate / before: {rows[0][2] / rows[1][2]:.3f}")
    if nginx:
        per = sum(self_costs(nginx).values()) / requests_n
        print(f"nginx: {per:,.0f} instructions per request ({nginx})")
        print(f"fedgate / nginx: {rows[0][2] / per:.3f}")
    print("\nfedgate's costliest functions (self, instructions per request):")
    c = rows[0][1]
    total = sum(c.values())
    for name, v in c.most_common(top):
        print(f"{v / requests_n:9,.0f} {100 * v / total:5.1f}%  {name[:140]}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("requests")
    r.add_argument("--port", type=int, required=True)
    r.add_argument("--warmup", type=int, default=300)
    r.add_argument("--count", type=int, required=True)
    r.add_argument("--pid", type=int, required=True)
    s = sub.add_parser("report")
    s.add_argument("--requests", type=int, required=True)
    s.add_argument("--top", type=int, default=25)
    s.add_argument("--nginx", help="a callgrind profile of nginx on the same path")
    s.add_argument("profiles", nargs="+")
    a = ap.parse_args()
    if a.cmd == "requests":
        requests(a.port, a.warmup, a.count, a.pid)
    else:
        report(a.requests, a.profiles[:2], a.top, a.nginx)


if __name__ == "__main__":
    main()
