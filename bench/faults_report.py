#!/usr/bin/env python3
"""Report of a bench/faults.sh run: per fault, what each kind of request
got while the part was down (classes, HTTP statuses, the error texts),
when the errors stopped relative to the part being back, and the wrong
identities (must be 0); then the reload window. Standard library only.

    faults_report.py OUTDIR     (reads events.jsonl[.gz] and marks.jsonl)
"""
import gzip
import json
import os
import re
import sys

KINDS = ("none", "bearer_jwt", "bearer_opaque", "x509", "websso")
FAULTS = ("keystone", "idp", "redis", "memcached", "node1", "node2")


def norm(note):
    """An error text without the parts that differ per request."""
    note = re.sub(r"[0-9a-f]{16,}", "…", note)
    note = re.sub(r'"request_id"\s*:\s*"[^"]*"', '"request_id":…', note)
    return note[:220]


def main():
    d = sys.argv[1]
    path = os.path.join(d, "events.jsonl")
    f = open(path) if os.path.exists(path) else gzip.open(path + ".gz", "rt")
    ev = [json.loads(line) for line in f if line.strip()]
    marks = {}
    order = []
    for line in open(os.path.join(d, "marks.jsonl")):
        m = json.loads(line)
        marks[m["event"]] = m["t"]
        order.append((m["t"], m["event"]))
    order.sort()
    end_t = max(e["end"] for e in ev) if ev else 0
    out = []
    wrong = [e for e in ev if e["class"] == "wrong_identity"]
    bad = lambda e: e["class"] not in ("ok", "stale")  # noqa: E731
    out.append(f"{len(ev)} requests in all, {sum(1 for e in ev if bad(e))} not ok, "
               f"**{len(wrong)} with a wrong or partial identity**.\n")
    rows = []
    details = []
    for f in FAULTS:
        if f + "_down" not in marks:
            continue
        t_down, t_restart, t_up = marks[f + "_down"], marks[f + "_restart"], marks.get(f + "_up", marks[f + "_restart"])
        nxt = min([t for t, _ in order if t > t_up + 1] + [end_t + 1])
        details.append(f"#### {f}: down {t_restart - t_down:.0f} s, back (answering) "
                       f"{t_up - t_restart:.1f} s after the restart command\n")
        for kind in KINDS:
            # Requests belong to the window in which their answer (or failure) came.
            during = [e for e in ev if e["kind"] == kind and t_down <= e["end"] < t_up]
            after = [e for e in ev if e["kind"] == kind and t_down <= e["end"] < nxt]
            fails = [e for e in after if bad(e)]
            stale = sum(1 for e in after if e["class"] == "stale")
            cls = {}
            for e in during:
                k = "ok" if e["class"] == "ok" else f"{e['class']} {e['status']}"
                cls[k] = cls.get(k, 0) + 1
            if fails:
                last = max(fails, key=lambda e: e["end"])
                rec = last["end"] - t_up
                recovery = f"{rec:+.1f} s"
                first_ok_after = next((e for e in sorted(after, key=lambda e: e["end"])
                                       if e["end"] > last["end"] and e["class"] == "ok"), None)
                if first_ok_after is None:
                    recovery = "not recovered"
            else:
                recovery = "no errors"
            after_up_fail = sum(1 for e in fails if e["end"] >= t_up)
            wrong_here = sum(1 for e in after if e["class"] == "wrong_identity")
            rows.append(f"| {f} | {kind} | {len(during)} | "
                        + ", ".join(f"{k}: {v}" for k, v in sorted(cls.items(), key=lambda kv: -kv[1]))
                        + f" | {after_up_fail} | {recovery} | {stale} | {wrong_here} |")
            texts = {}
            for e in fails:
                k = (e["status"], norm(e["note"]))
                texts[k] = texts.get(k, 0) + 1
            for (status, text), n in sorted(texts.items(), key=lambda kv: -kv[1])[:3]:
                details.append(f"- {kind}, {n} × status {status}: `{text}`")
        details.append("")
    out.append("| fault | kind | requests while down | answers while down | failures after back | "
               "last failure answered, relative to back | stale tokens | wrong identity |")
    out.append("|---|---|---|---|---|---|---|---|")
    out.extend(rows)
    out.append("")
    out.append("Error texts (the most frequent, per kind; `…` = a per-request value):\n")
    out.extend(details)
    if "reload_start" in marks:
        t0, t1 = marks["reload_start"], marks["reload_end"]
        win = [e for e in ev if t0 <= e["sent"] and e["end"] <= t1 + 5]
        out.append(f"#### Reload every second for {t1 - t0:.0f} s\n")
        out.append("| kind | requests | ok | not ok | wrong identity |")
        out.append("|---|---|---|---|---|")
        for kind in KINDS:
            k = [e for e in win if e["kind"] == kind]
            out.append(f"| {kind} | {len(k)} | {sum(1 for e in k if e['class'] == 'ok')} | "
                       f"{sum(1 for e in k if bad(e))} | {sum(1 for e in k if e['class'] == 'wrong_identity')} |")
        for e in [e for e in win if bad(e)][:10]:
            out.append(f"- {e['kind']} status {e['status']}: `{norm(e['note'])}`")
        if os.path.exists(os.path.join(d, "reloads.txt")):
            out.append("\n```\n" + open(os.path.join(d, "reloads.txt")).read().strip() + "\n```")
    if wrong:
        out.append("\n#### Wrong identities\n")
        for e in wrong[:20]:
            out.append(f"- {e['kind']} {e['user']}: {e['note']}")
    print("\n".join(out))


if __name__ == "__main__":
    main()
