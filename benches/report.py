#!/usr/bin/env python3
"""Renders target/bench-results/harness-*.json as the Markdown tables of docs/benchmarks.md.

    python3 benches/report.py > /tmp/tables.md
"""
import glob
import json
import os

root = os.path.join(os.path.dirname(__file__), "..", "target", "bench-results")
runs = []
for path in glob.glob(os.path.join(root, "harness-*.json")):
    with open(path) as f:
        runs.append(json.load(f))
runs.sort(key=lambda r: r["events"])


def fmt(x, unit=""):
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    if abs(x) >= 1000:
        return f"{x:,.0f}{unit}"
    if abs(x) >= 10:
        return f"{x:.0f}{unit}"
    if 0 < abs(x) < 0.1:
        return f"{x:.3f}{unit}"
    return f"{x:.2f}{unit}"


rows = [
    ("durable ingest (events/s)", lambda f: f["ingest_rate"]["tenure"], lambda f: f["ingest_rate"]["sled"], "raw sled"),
    ("bytes on disk per event, log", lambda f: f["bytes_per_event"]["tenure"], lambda f: f["bytes_per_event"]["sled"], "raw sled"),
    ("bytes on disk per event, all files (log, offsets, access index, subject index)", lambda f: f["bytes_per_event_all"]["tenure"] if "index_file" in f["bytes_per_event_all"] else f["bytes_per_event_all"]["tenure"] + 8, lambda f: f["bytes_per_event"]["sled"], "raw sled"),
    ("sequential read + decode (events/s)", lambda f: f["scan_rate"]["tenure"], lambda f: f["scan_rate"]["sled"], "raw sled"),
    ("verify (events/s)", lambda f: f["verify_rate"]["tenure"], lambda f: f["scan_rate"]["tenure"], "our scan"),
    ("64 single-event appenders (events/s)", lambda f: f["group_commit"]["many"], lambda f: f["group_commit"]["one"], "1 appender"),
    ("index build (events/s)", lambda f: f["index_build"]["tenure"], lambda f: f["scan_rate"]["tenure"], "our scan"),
    ("index reopen from its file (s)", lambda f: f["reopen"]["snapshot_s"], lambda f: f["reopen"]["replay_s"], "full replay"),
    ("events of one identity, read by subject, p50 (µs)", lambda f: f["subject_reads"]["p50_us"], None, ""),
    ("first read by subject in a new process, from the snapshot (s)", lambda f: f["subject_reads"]["first_from_snapshot_s"], lambda f: f["subject_reads"]["first_from_scan_s"], "reading the log"),
    ("access at T, p50 (µs)", lambda f: f["access"]["p50_us"], lambda f: f["access"]["naive_p50_us"], "naive fold"),
    ("access at T, p99 (µs)", lambda f: f["access"]["p99_us"], None, ""),
    ("access at T as of R, p50 (µs)", lambda f: f["access_as_of"]["p50_us"], lambda f: f["access_as_of"]["naive_p50_us"], "naive fold"),
    ("access at T as of R, p99 (µs)", lambda f: f["access_as_of"]["p99_us"], None, ""),
    ("holders at T, p50 (µs)", lambda f: f["holders"]["p50_us"], lambda f: f["holders"]["naive_p50_us"], "naive fold"),
    ("holders at T, p99 (µs)", lambda f: f["holders"]["p99_us"], None, ""),
    ("holders: ns per holder returned", lambda f: f["holders_per_returned"]["ns_per_holder"], None, ""),
    ("holders during 30 days, p50 (µs)", lambda f: f["holders_during"]["p50_us"], None, ""),
    ("timeline, p50 (µs)", lambda f: f["timeline"]["p50_us"], None, ""),
    ("diff of one identity, p50 (µs)", lambda f: f["diff"]["p50_us"], None, ""),
    ("holders at T as of R, p50 (µs)", lambda f: f["holders_as_of"]["p50_us"], None, ""),
    ("holders at T as of a recent R (the last 1% of the log), p50 (µs)", lambda f: f["holders_as_of_recent"]["p50_us"], lambda f: f["holders_as_of"]["p50_us"], "as of random R"),
    ("holders during 30 days as of R, p50 (µs)", lambda f: f["holders_during_as_of"]["p50_us"], None, ""),
    ("timeline as of R, p50 (µs)", lambda f: f["timeline_as_of"]["p50_us"], None, ""),
    ("diff as of R, p50 (µs)", lambda f: f["diff_as_of"]["p50_us"], None, ""),
    ("one-shot `tenure access` process (ms)", lambda f: f.get("one_shot_cli", {}).get("p50_ms"), None, ""),
    ("one-shot `tenure access` peak RSS (MiB)", lambda f: f.get("one_shot_cli", {}).get("peak_rss_mib"), None, ""),
    ("one-shot `tenure who` of the commonest entitlement, JSON out (ms)", lambda f: f.get("one_shot_who", {}).get("ms"), None, ""),
    ("  holders it printed", lambda f: f.get("one_shot_who", {}).get("holders"), None, ""),
    ("index file written after the build (s)", lambda f: f["reopen"]["save_s"], None, ""),
    ("index file, bytes per event", lambda f: f["reopen"]["snapshot_bytes_per_event"], None, ""),
    ("peak RSS of the harness (MiB)", lambda f: f["peak_rss"]["mib"], None, ""),
]

for run in runs:
    f = run["figures"]
    print(f"### {run['events']:,} events{' (quick)' if run.get('quick') else ''}\n")
    print("| figure | Tenure | baseline (same run) | ratio |")
    print("|---|---|---|---|")
    for name, get, base, base_name in rows:
        try:
            v = get(f)
        except (KeyError, TypeError):
            continue
        b = None
        if base:
            try:
                b = base(f)
            except (KeyError, TypeError):
                b = None
        ratio = ""
        if b is not None and v and b == b and v == v:
            ratio = f"{v / b:.2f}x" if "µs" not in name and "(s)" not in name else f"{b / v:.1f}x faster"
        print(f"| {name} | {fmt(v)} | {base_name + ' ' + fmt(b) if b is not None and b == b else ''} | {ratio} |")
    print()
