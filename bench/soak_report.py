#!/usr/bin/env python3
"""Summary of a bench/soak.sh run from its CSV: RSS and fd slopes (least
squares over the samples, and over those after the first 10 minutes,
when caches and pools have filled), first/last/max values, errors and
wrong identities, p99 per kind over the run (range of the per-sample p99).
Standard library only. Prints Markdown.

    soak_report.py soak.csv summary.json
"""
import csv
import json
import statistics
import sys


def slope(xs, ys):
    """Least-squares slope (per second)."""
    if len(xs) < 2:
        return float("nan")
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else float("nan")


def main():
    rows = list(csv.DictReader(open(sys.argv[1])))
    # The last sample holds only what completed after the schedule ended.
    last = max(int(r["sample"]) for r in rows)
    tail = [r for r in rows if int(r["sample"]) == last]
    if sum(int(r["requests"]) for r in tail) < 0.5 * sum(int(r["requests"]) for r in rows if int(r["sample"]) == 1):
        rows_all, rows = rows, [r for r in rows if int(r["sample"]) != last]
    else:
        rows_all = rows
    summary = json.load(open(sys.argv[2]))
    procs = sorted({k[len("rss_kb_"):] for k in rows[0] if k.startswith("rss_kb_")})
    out = []
    per_sample = {}
    for r in rows:
        per_sample.setdefault(int(r["sample"]), r)
    samples = [per_sample[k] for k in sorted(per_sample)]
    for name in procs:
        pts = [(float(s["elapsed_s"]), float(s[f"rss_kb_{name}"]), float(s[f"fds_{name}"]))
               for s in samples if s[f"rss_kb_{name}"]]
        if not pts:
            continue
        xs, rss, fds = zip(*pts)
        late = [p for p in pts if p[0] >= 600]
        out.append(f"### {name}: memory and file descriptors ({len(pts)} samples)\n")
        out.append("| | first | last | min | max | slope, all samples | slope, after 10 min |")
        out.append("|---|---|---|---|---|---|---|")
        lx = [p[0] for p in late]
        out.append(f"| RSS (KiB) | {rss[0]:.0f} | {rss[-1]:.0f} | {min(rss):.0f} | {max(rss):.0f} | "
                   f"{slope(xs, rss) * 3600:+.0f} KiB/h | "
                   + (f"{slope(lx, [p[1] for p in late]) * 3600:+.0f} KiB/h |" if len(late) > 1 else "- |"))
        out.append(f"| open fds | {fds[0]:.0f} | {fds[-1]:.0f} | {min(fds):.0f} | {max(fds):.0f} | "
                   f"{slope(xs, fds) * 3600:+.1f} /h | "
                   + (f"{slope(lx, [p[2] for p in late]) * 3600:+.1f} /h |" if len(late) > 1 else "- |"))
        out.append("")
    out.append("### Requests per kind\n")
    out.append("| kind | requests | ok | errors | wrong identity | stale token | unverified | p50 ms (median of samples) "
               "| p99 ms per sample: min-max | max ms | generator late, max ms |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for kind in ("none", "bearer_jwt", "bearer_opaque", "x509", "websso"):
        rs = [r for r in rows if r["kind"] == kind and int(r["requests"])]
        if not rs:
            continue
        # Counts over every sample, the short last one included.
        n = lambda k: sum(int(r[k]) for r in rows_all if r["kind"] == kind)  # noqa: E731
        p50 = statistics.median(float(r["p50_ms"]) for r in rs)
        p99 = [float(r["p99_ms"]) for r in rs]
        mx = max(float(r["max_ms"]) for r in rows_all if r["kind"] == kind and r["max_ms"])
        late = max(float(r.get("max_queue_ms") or 0) for r in rows_all if r["kind"] == kind)
        out.append(f"| {kind} | {n('requests')} | {n('ok')} | {n('errors')} | {n('wrong_identity')} | {n('stale')} | "
                   f"{n('unverified')} | {p50:.0f} | {min(p99):.0f}-{max(p99):.0f} | {mx:.0f} | {late:.0f} |")
    out.append("")
    errs = {}
    for r in rows_all:
        for part in r["error_statuses"].split():
            code, cnt = part.split(":")
            errs[(r["kind"], code)] = errs.get((r["kind"], code), 0) + int(cnt)
    if errs:
        out.append("Errors by kind and status (0 = no HTTP answer): "
                   + ", ".join(f"{k} {c}: {v}" for (k, c), v in sorted(errs.items())))
    out.append(f"Wrong identities: {len(summary['wrong_identity'])}. WebSSO logins repeated because a "
               f"session was gone: {summary['websso_relogins']}. Duration {summary['seconds']} s.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
