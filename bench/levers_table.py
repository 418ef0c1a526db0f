#!/usr/bin/env python3
"""levers_table.py — the measured lever table of docs/LEVERS.md from `etok compare --format json`.

usage: etok compare --arm base=B1,B2 --arm NAME=C1,C2 ... --format json | bench/levers_table.py

One Markdown row per arm: J/output-token (pooled), accuracy, p90 TPOT, the measured change of
J/output-token and of token rate against the baseline with 95% CIs, the TPF's predicted changes
and predicted/measured (or "no prediction: why")."""
import json
import sys


def pct(x):
    return "n/a" if x is None else f"{100 * x:+.0f}%"


def ci(c):
    return "" if not c or c[0] is None else f" [{pct(c[0])}, {pct(c[1])}]"


def fmt(x, d=3):
    return "n/a" if x is None else f"{x:.{d}g}"


doc = json.load(sys.stdin)
rows = []
head = ("| arm | J/output-token | accuracy | p90 TPOT (s) | Δ J/output-token [95% CI] | Δ token rate [95% CI] "
        "| TPF lever | predicted Δ J/output-token | predicted Δ token rate | predicted/measured (rate, J) |")
print(head)
print("|---" * (head.count("|") - 1) + "|")
first = True
for c in doc["candidates"]:
    d = {(x["name"], x.get("stat", "")): x for x in c["deltas"]}
    j = d[("joules_per_output_token", "")]
    a = d[("accuracy", "")]
    t = d[("tpot_s", "p90")]
    r = d[("token_rate_tps", "")]
    if first:
        print(f"| {doc.get('baseline', 'base')} (baseline) | {fmt(j['baseline'])} | {fmt(a['baseline'], 2)} | {fmt(t['baseline'])} | | | | | | |")
        first = False
    p = c.get("tpf_prediction") or {}
    if p.get("valid"):
        lever = p["lever"]
        pj = pct(p["joules_per_output_token_ratio"] - 1)
        pr = pct(p["token_rate_ratio"] - 1)
        pm = f"{fmt(p['token_rate_predicted_over_measured'], 2)}, {fmt(p['joules_predicted_over_measured'], 2)}"
    else:
        lever = p.get("note", "no prediction").replace("no prediction: ", "none: ")
        pj = pr = pm = "—"
    print(f"| {c['name']} | {fmt(j['candidate'])} | {fmt(a['candidate'], 2)} | {fmt(t['candidate'])} "
          f"| {pct(j['relative'])}{ci(j['relative_ci95'])} | {pct(r['relative'])}{ci(r['relative_ci95'])} "
          f"| {lever} | {pj} | {pr} | {pm} |")
