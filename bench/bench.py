#!/usr/bin/env python3
"""Interleaved measurements for bench/core.sh (standard library only).

Per repetition: keep-alive points for every target, then new-connection
points for every target, with a pause before each point.
  keep-alive: wrk -t2 -cCONC -dDURATION --latency  -> req/s, p50, p99
  handshakes: ab -q -r -cCONC -tDURATION -n 30000   -> conn/s (no -k: every
              request is a new TCP connection and a full TLS handshake)
Server CPU: utime+stime of the server's whole process tree from /proc
(live children, plus the root's reaped-children counters), before and
after each point, divided by completed requests. The upstream's CPU is
reported separately. Medians over repetitions; ratios against --baseline
(nginx for bench/core.sh), and with --pair A:B a table of A/B for every
figure (bench/uwsgi.sh: fedgate/Apache per socket kind). --modes picks the
kinds of points (bench/uwsgi.sh measures keep-alive only).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        ppid = int(s[s.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def stat_ticks(pid, with_reaped):
    try:
        with open(f"/proc/{pid}/stat") as f:
            s = f.read()
    except OSError:
        return 0
    fields = s[s.rindex(")") + 2:].split()
    # fields[11..14] = utime stime cutime cstime (stat fields 14-17)
    t = int(fields[11]) + int(fields[12])
    if with_reaped:
        t += int(fields[13]) + int(fields[14])
    return t


def tree_cpu_ms(root):
    kids = children_map()
    total, todo = stat_ticks(root, True), list(kids.get(root, []))
    while todo:
        p = todo.pop()
        total += stat_ticks(p, False)
        todo.extend(kids.get(p, []))
    return total * 1000.0 / TICK


def to_ms(v):
    m = re.match(r"([\d.]+)(us|ms|s)", v)
    n, u = float(m.group(1)), m.group(2)
    return n / 1000 if u == "us" else n * 1000 if u == "s" else n


def run_wrk(url, conc, duration):
    out = subprocess.run(["wrk", "-t2", f"-c{conc}", f"-d{duration}s", "--timeout", "5s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    lat = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": to_ms(lat["50"]), "p99_ms": to_ms(lat["99"]),
        "errors": (errors.group(1) if errors else "") + (f" non2xx {non2xx.group(1)}" if non2xx else ""),
        "raw": out,
    }


def run_ab(url, conc, duration):
    out = subprocess.run(["ab", "-q", "-r", "-c", str(conc), "-t", str(duration), "-n", "30000", "-s", "10", url + "/"],
                         capture_output=True, text=True).stdout
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\d+)", out, re.M))
    done = re.search(r"Complete requests:\s+(\d+)", out)
    return {
        "requests": int(done.group(1)) if done else 0,
        "rps": float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1)) if done else 0.0,
        "p50_ms": float(pct.get("50", "nan")), "p99_ms": float(pct.get("99", "nan")),
        "errors": "failed " + (re.search(r"Failed requests:\s+(\d+)", out) or [None, "?"])[1],
        "raw": out,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--pause", type=float, default=2)
    ap.add_argument("--target", action="append", required=True, help="name=url=pid")
    ap.add_argument("--upstream", type=int, required=True, help="pid of the upstream")
    ap.add_argument("--modes", default="keep-alive,handshake", help="keep-alive and/or handshake, in that order")
    ap.add_argument("--baseline", default="nginx", help="target the 'x baseline' columns divide by")
    ap.add_argument("--pair", action="append", default=[],
                    help="A:B, a table of A/B for every figure (e.g. fedgate-tcp:apache-tcp)")
    a = ap.parse_args()
    targets = [t.split("=", 2) for t in a.target]
    runners = {"keep-alive": run_wrk, "handshake": run_ab}
    modes = [m for m in a.modes.split(",") if m]
    unknown = [m for m in modes if m not in runners]
    if unknown:
        ap.error(f"unknown mode(s) {unknown}")
    names = [n for n, _, _ in targets]
    base = a.baseline
    if base not in names:
        ap.error(f"baseline {base} is not a target")
    pairs = [p.split(":", 1) for p in a.pair]
    if any(len(p) != 2 or p[0] not in names or p[1] not in names for p in pairs):
        ap.error("--pair needs A:B with both names among the targets")
    points = []
    with open("/proc/loadavg") as f:
        load_start = f.read().strip()
    for rep in range(a.reps):
        for mode in modes:
            for name, url, pid in targets:
                time.sleep(a.pause)
                c0, u0 = tree_cpu_ms(int(pid)), tree_cpu_ms(a.upstream)
                r = runners[mode](url, a.conc, a.duration)
                c1, u1 = tree_cpu_ms(int(pid)), tree_cpu_ms(a.upstream)
                n = max(r["requests"], 1)
                r.update(rep=rep, mode=mode, target=name, cpu_ms_per_req=(c1 - c0) / n,
                         upstream_cpu_ms_per_req=(u1 - u0) / n)
                print(f"[bench] rep {rep + 1} {mode:10} {name:8} {r['rps']:9.0f}/s p50 {r['p50_ms']:.2f} "
                      f"p99 {r['p99_ms']:.2f} ms cpu {r['cpu_ms_per_req']:.3f} ms/req {r['errors']}", flush=True)
                points.append(r)
    with open("/proc/loadavg") as f:
        load_end = f.read().strip()

    figures = ("rps", "p50_ms", "p99_ms", "cpu_ms_per_req", "upstream_cpu_ms_per_req")
    rows, pair_rows = [], []
    for mode in modes:
        by_name = {n: [p for p in points if p["mode"] == mode and p["target"] == n] for n in names}
        med = {}
        for name, ps in by_name.items():
            med[name] = {k: statistics.median(p[k] for p in ps) for k in figures}
            med[name]["per_rep"] = [round(p["rps"]) for p in ps]
            # Same-repetition ratios are the robust figures on a shared box.
            med[name][f"ratio_{base}_per_rep"] = [round(p["rps"] / q["rps"], 2) if q["rps"] else None
                                                  for p, q in zip(ps, by_name[base])]
        for name in names:
            m = med[name]
            m["ratio_to_" + base] = m["rps"] / med[base]["rps"] if med[base]["rps"] else None
            # Issue 16's goal 1 is stated as this ratio (CPU per request).
            m["cpu_ratio_to_" + base] = (m["cpu_ms_per_req"] / med[base]["cpu_ms_per_req"]
                                         if med[base]["cpu_ms_per_req"] else None)
            if "apache" in med:
                m["ratio_to_apache"] = m["rps"] / med["apache"]["rps"] if med["apache"]["rps"] else None
            rows.append((mode, name, m))
        for x, y in pairs:
            ratio = {k: (med[x][k] / med[y][k] if med[y][k] else None) for k in figures}
            ratio["rps_per_rep"] = [round(p["rps"] / q["rps"], 2) if q["rps"] else None
                                    for p, q in zip(by_name[x], by_name[y])]
            pair_rows.append((mode, x, y, ratio))

    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "raw.json"), "w") as f:
        json.dump(points, f, indent=1)
    with open(os.path.join(a.out, "summary.json"), "w") as f:
        # One list: a row per target, then (with --pair) a row per ratio.
        json.dump([{"mode": m, "target": n, **v} for m, n, v in rows]
                  + [{"mode": m, "ratio": f"{x}/{y}", **r} for m, x, y, r in pair_rows], f, indent=1)
    with_apache = "apache" in names
    fmt = lambda v, d=2: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = [f"{a.reps} interleaved repetitions, {a.duration} s per point, {a.conc} connections; "
             f"loadavg start {load_start} / end {load_end}", "",
             f"| mode | target | req/s (median) | per rep | x {base} (median) | x {base} per rep |"
             + (" x Apache |" if with_apache else "") + f" p50 ms | p99 ms | server CPU ms/req | CPU x {base} | upstream CPU ms/req |",
             "|---|---|---|---|---|---|" + ("---|" if with_apache else "") + "---|---|---|---|---|"]
    for mode, name, m in rows:
        lines.append(f"| {mode} | {name} | {m['rps']:.0f} | {m['per_rep']} | {fmt(m['ratio_to_' + base])} | "
                     f"{m[f'ratio_{base}_per_rep']} |" + (f" {fmt(m['ratio_to_apache'])} |" if with_apache else "")
                     + f" {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['cpu_ms_per_req']:.4f} | "
                     f"{fmt(m['cpu_ratio_to_' + base])} | {m['upstream_cpu_ms_per_req']:.4f} |")
    if pair_rows:
        lines += ["", "Ratios A/B of the medians (req/s: above 1 is better for A; p50, p99, CPU: below 1 is better "
                  "for A):", "",
                  "| mode | A / B | req/s | req/s per rep | p50 | p99 | server CPU/req | upstream CPU/req |",
                  "|---|---|---|---|---|---|---|---|"]
        for mode, x, y, r in pair_rows:
            lines.append(f"| {mode} | {x} / {y} | {fmt(r['rps'])} | {r['rps_per_rep']} | {fmt(r['p50_ms'])} | "
                         f"{fmt(r['p99_ms'])} | {fmt(r['cpu_ms_per_req'])} | {fmt(r['upstream_cpu_ms_per_req'])} |")
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
