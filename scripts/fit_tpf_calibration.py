#!/usr/bin/env python3
"""fit_tpf_calibration.py — fits the per-hardware TPF calibration (docs/TPF.md "Calibration") to the
published measurements in data/measurements whose points say "calibrate": true.

    python3 scripts/fit_tpf_calibration.py [--etok build/etok] [--write]
    python3 scripts/fit_tpf_calibration.py --leave-out llama-3.1-70b   # a model the fit has not seen

It runs `etok tpf --validate --json` and reads, for each calibration point, the plain-roofline
prediction (the model without calibration) and the per-token FLOPs and bytes. Then:

- achievable fraction at (hardware, devices per replica, batch) = published token rate / the plain
  roofline's modelled rate (prefill and decode in series, docs/TPF.md "The modelled rate").
  Throughput alone cannot tell which resource fell short, so the same fraction is applied to peak
  bandwidth and peak FLOP/s: the in-series rate scales with it exactly, each phase keeps its bound.
- power curve: the published mean device power P against MFU and MBU of the published rate (of the
  peak FLOP/s and bandwidth): least squares of P = P_idle + (P_max - P_idle) * (floor + a_F MFU +
  a_B MBU), one curve per hardware over all its calibration points, and one per row (tensor-parallel
  degree) where the row has at least 4 calibration points with power (used at exactly that degree).

Prints the "calibration" object per hardware; --write puts it into data/hardware/NAME.json.
Held-out points (calibrate: false) are never read here. Standard library only.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile


def solve3(a, b):
    """Gaussian elimination with partial pivoting for a 3x3 system."""
    return solve(a, b)


def solve(a, b):
    """Gaussian elimination with partial pivoting for an n x n system."""
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    n = len(b)
    for i in range(n):
        p = max(range(i, n), key=lambda r: abs(m[r][i]))
        m[i], m[p] = m[p], m[i]
        if abs(m[i][i]) < 1e-300:
            raise SystemExit("power fit: singular system (too few distinct calibration points)")
        for r in range(n):
            if r != i:
                f = m[r][i] / m[i][i]
                for c in range(i, n + 1):
                    m[r][c] -= f * m[i][c]
    return [m[i][n] / m[i][i] for i in range(n)]


def fit_power(a, b):
    """Least squares of activity = floor + a_F MFU + a_B MBU from the normal equations (a, b), with
    every coefficient >= 0 (more work never draws less) and floor < 1: where the full fit gives a
    negative coefficient the term is dropped and the rest refitted (floor + MFU, floor + MBU, floor).
    None if nothing fits."""
    for keep in ([0, 1, 2], [0, 1], [0, 2], [0]):
        try:
            sub = solve([[a[i][j] for j in keep] for i in keep], [b[i] for i in keep])
        except SystemExit:
            continue
        coef = [0.0, 0.0, 0.0]
        for k, i in enumerate(keep):
            coef[i] = sub[k]
        if min(coef) >= 0 and coef[0] < 1:
            return coef
    return None


def validate_json(etok, data_dir):
    env = dict(os.environ, ETOK_DATA_DIR=data_dir)
    out = subprocess.run([etok, "tpf", "--validate", "--json"], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)


def leave_out(etok, data_dir, model):
    """Refit with every point of `model` held out, in a temporary copy of the data directory, and
    print that model's calibrated errors per hardware: the error on a model the calibration has not
    seen (its tensor-parallel degree's fractions interpolated between rows, the hardware-wide power
    curve where its degree has no row of its own)."""
    tmp = tempfile.mkdtemp(prefix="etok-leave-out-")
    try:
        d = os.path.join(tmp, "data")
        shutil.copytree(data_dir, d)
        mdir = os.path.join(d, "measurements")
        for name in os.listdir(mdir):
            if name.endswith(".json"):
                path = os.path.join(mdir, name)
                m = json.load(open(path))
                for p in m["points"]:
                    if p["model"] == model:
                        p["calibrate"] = False
                json.dump(m, open(path, "w"), indent=1)
        with open(os.devnull, "w") as devnull:
            fit(etok, d, True, devnull)
        doc = validate_json(etok, d)
        per = {}
        for st in doc["sets"]:
            for p in st["points"]:
                if p.get("modelled") and p["id"].split("/")[0].startswith(model):
                    c = p["calibrated"]
                    per.setdefault(p["hardware"], []).append((abs(c["joules_ratio"] - 1), abs(c["rate_ratio"] - 1)))
                    print("%-34s J/token x%.3f  rate x%.3f" % (p["id"], c["joules_ratio"], c["rate_ratio"]))
        for hw, e in sorted(per.items()):
            ej = sorted(x[0] for x in e)
            er = sorted(x[1] for x in e)
            print("%s, %s left out (%d points): J/output-token error median %.0f%% max %.0f%%, token rate error "
                  "median %.0f%% max %.0f%%" % (hw, model, len(e), 100 * ej[len(ej) // 2], 100 * ej[-1],
                                                100 * er[len(er) // 2], 100 * er[-1]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    ap.add_argument("--etok", default=os.path.join(root, "build", "etok"))
    ap.add_argument("--write", action="store_true", help="write the calibration into data/hardware/NAME.json")
    ap.add_argument("--leave-out", metavar="MODEL",
                    help="instead: refit without MODEL's points (in a temporary copy) and print its errors")
    args = ap.parse_args()
    data_dir = os.path.join(root, "data")
    if args.leave_out:
        leave_out(args.etok, data_dir, args.leave_out)
    else:
        fit(args.etok, data_dir, args.write, sys.stdout)


def fit(etok, data_dir, write, out):
    doc = validate_json(etok, data_dir)
    by_hw = {}
    for st in doc["sets"]:
        for p in st["points"]:
            if not p["calibrate"] or not p.get("modelled"):
                continue
            hw = p["id"].split("/")[1].split("x")[0]  # not trusted: use the hardware of the file
            by_hw.setdefault(p["hardware"] if "hardware" in p else None, []).append((st["name"], p))
    # The validate JSON does not repeat the hardware name; read it from the measurement files.
    hw_of = {}
    for name in sorted(os.listdir(os.path.join(data_dir, "measurements"))):
        if name.endswith(".json"):
            m = json.load(open(os.path.join(data_dir, "measurements", name)))
            for p in m["points"]:
                hw_of[(m["name"], p["id"])] = p["hardware"]
    groups = {}
    for lst in by_hw.values():
        for setname, p in lst:
            groups.setdefault(hw_of[(setname, p["id"])], []).append((setname, p))
    for hw, pts in sorted(groups.items()):
        rows = {}
        a = [[0.0] * 3 for _ in range(3)]
        b = [0.0] * 3
        row_ab = {}  # devices_per_replica -> (a, b, points): the row's own power curve
        used = []
        for setname, p in pts:
            frac = p["published_output_tps"] / p["roofline"]["token_rate_tps"]
            batch = p["batch"]
            rows.setdefault(p.get("devices_per_replica", p["devices"]), []).append((batch, min(1.0, frac)))
            used.append(setname + ":" + p["id"])
            # The power curve is the devices' own: only GPU-boundary power fits it (a system-boundary
            # figure includes the host and PSU losses; docs/TPF.md "Energy boundary").
            if p["published_power_w"] and p.get("energy_boundary", "gpu") == "gpu":
                n = p["devices"]
                r = p["published_output_tps"]
                mfu = r * p["flops_per_output_token"] / (n * p["peak_flops"])
                mbu = r * p["bytes_per_output_token"] / (n * p["mem_bw_bps"])
                act = (p["published_power_w"] / n - p["idle_power_w"]) / (p["max_power_w"] - p["idle_power_w"])
                x = [1.0, mfu, mbu]
                ra, rb, rn = row_ab.setdefault(p.get("devices_per_replica", n), ([[0.0] * 3 for _ in range(3)], [0.0] * 3, [0]))
                rn[0] += 1
                for i in range(3):
                    b[i] += x[i] * act
                    rb[i] += x[i] * act
                    for j in range(3):
                        a[i][j] += x[i] * x[j]
                        ra[i][j] += x[i] * x[j]
        coef = fit_power(a, b)
        if not coef:
            raise SystemExit("%s: no power curve with coefficients >= 0 and a floor below 1 fits" % hw)
        floor, per_mfu, per_mbu = coef
        ach = []
        for dev in sorted(rows):
            pts_ = sorted(rows[dev])
            row = {"devices_per_replica": dev, "batch": [p[0] for p in pts_],
                   "bandwidth_fraction": [round(p[1], 4) for p in pts_],
                   "flops_fraction": [round(p[1], 4) for p in pts_]}
            # The row's own power curve where it has at least 4 power points (3 coefficients and
            # one to spare) and the fit is not singular; else the hardware-wide curve applies.
            # Coefficients must be >= 0 (more work never draws less): where the full fit gives a
            # negative one, the term is dropped and the rest refitted (floor + MFU, then floor + MBU).
            if dev in row_ab and row_ab[dev][2][0] >= 4:
                coef = fit_power(row_ab[dev][0], row_ab[dev][1])
                if coef:
                    row["power"] = {"activity_floor": round(coef[0], 4), "activity_per_mfu": round(coef[1], 4),
                                    "activity_per_mbu": round(coef[2], 4)}
            ach.append(row)
        sets = ", ".join(sorted({u.split(":")[0] for u in used}))
        cal = {"source": "fit by scripts/fit_tpf_calibration.py to the %d calibrate=true points of data/measurements/%s "
                         "(listed in used_points); achievable fraction = published / roofline token rate, applied to "
                         "peak bandwidth and FLOP/s alike; power curve by least squares (hardware-wide, and per row "
                         "where it has >= 4 points with GPU-boundary power)" % (len(used), sets),
               "used_points": sorted(u.split(":", 1)[1] for u in used),
               "achievable": ach,
               "power": {"activity_floor": round(floor, 4), "activity_per_mfu": round(per_mfu, 4),
                         "activity_per_mbu": round(per_mbu, 4)}}
        print(json.dumps({hw: cal}, indent=1), file=out)
        if write:
            path = os.path.join(data_dir, "hardware", hw + ".json")
            # Keep the hand-written entry as it is; replace or append only "calibration" (last key).
            text = open(path).read()
            cut = text.find(',\n  "calibration"')
            text = text[:cut] if cut >= 0 else text.rstrip()[:-1].rstrip()
            body = json.dumps(cal, indent=2).replace("\n", "\n  ")
            with open(path, "w") as f:
                f.write(text + ',\n  "calibration": ' + body + "\n}\n")
            json.load(open(path))  # still valid JSON
            print("wrote", path, file=out)


if __name__ == "__main__":
    main()
