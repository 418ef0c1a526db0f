#!/usr/bin/env python3
"""crosscheck.py — set etok's NVML energy for a window beside the integral of an independent
power log (nvidia-smi --query-gpu=timestamp,power.draw... --format=csv,nounits -lms 100) over
the same wall-clock window, taken from the run record (t0_wall_s + window_start_s/_end_s).

    python3 bench/gpu/crosscheck.py RUN.json SUMMARY.json SMI.csv

The log is integrated by the trapezoid rule over its samples inside the window (the window's
edges interpolated). nvidia-smi reads the same sensor through NVML: this checks etok's reading
and arithmetic (counter deltas, units, window edges), not the sensor.
"""
import csv
import datetime
import json
import sys

run, summ, smi = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), sys.argv[3]
w0 = run["t0_wall_s"] + run["window_start_s"]
w1 = run["t0_wall_s"] + run["window_end_s"]
cols = {}
rows = []
with open(smi) as f:
    r = csv.reader(f)
    head = [h.strip() for h in next(r)]
    for row in r:
        if len(row) != len(head):
            continue
        d = dict(zip(head, (c.strip() for c in row)))
        ts = datetime.datetime.strptime(d["timestamp"], "%Y/%m/%d %H:%M:%S.%f").timestamp()
        rows.append((ts, {k: v for k, v in d.items() if k != "timestamp"}))


def integral(field):
    pts = []
    for ts, d in rows:
        try:
            pts.append((ts, float(d[field])))
        except (KeyError, ValueError):
            continue
    if len(pts) < 2:
        return None, 0

    def at(t):
        for (ta, pa), (tb, pb) in zip(pts, pts[1:]):
            if ta <= t <= tb:
                return pa + (pb - pa) * (t - ta) / (tb - ta) if tb > ta else pa
        return None

    inner = [(w0, at(w0))] + [p for p in pts if w0 < p[0] < w1] + [(w1, at(w1))]
    if inner[0][1] is None or inner[-1][1] is None:
        return None, len(inner) - 2
    e = sum((tb - ta) * (pa + pb) / 2 for (ta, pa), (tb, pb) in zip(inner, inner[1:]))
    return e, len(inner) - 2


print(f"window {w1 - w0:.3f} s (wall {w0:.3f} .. {w1:.3f})")
for t in summ.get("traces", []):
    print(f"etok {t['meter']}/{t['domain']}: {t['energy_j']:.1f} +- {t['energy_uncertainty_j']:.1f} J "
          f"({t['source']}, {t.get('power_field')}), mean {t['mean_power_w']:.1f} W, "
          f"{t['n_samples']} samples, {t['n_changes']} counter changes")
for field in [h for h in head if h.startswith("power.draw")]:
    e, n = integral(field)
    if e is None:
        print(f"nvidia-smi {field}: the log does not cover the window ({n} samples inside)")
    else:
        print(f"nvidia-smi {field}: {e:.1f} J over the window ({n} samples inside), mean {e / (w1 - w0):.1f} W")
