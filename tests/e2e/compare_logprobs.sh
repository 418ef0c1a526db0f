#!/bin/sh
# compare_logprobs.sh — scripts/compare_logprobs.py: skips with a one-line note and exit 0 when
# LLAMA_SERVER is unset, and computes its statistics right on a saved peer output against a
# stub engine (two prompts x 2 steps with known log-probabilities).
set -eu
SRC="${ETOK_SOURCE_DIR:-.}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM

out=$(env -u LLAMA_SERVER python3 "$SRC/scripts/compare_logprobs.py" 2>&1)
echo "$out" | grep -q "LLAMA_SERVER is unset" || { echo "FAIL: no skip note: $out"; exit 1; }
[ "$(echo "$out" | wc -l)" -eq 1 ] || { echo "FAIL: skip note is not one line: $out"; exit 1; }

# peer: prompt a takes tokens 5, 6; prompt b takes 7, 8 (top lists of 3)
cat > "$T/peer.json" <<'J'
{"peer": "stub", "prompts": [
 {"name": "a", "prompt_ids": [1, 2], "tokens": [5, 6],
  "top": [[[5, -0.1], [9, -2.0], [4, -3.0]], [[6, -0.2], [9, -2.5], [3, -4.0]]]},
 {"name": "b", "prompt_ids": [3], "tokens": [7, 8],
  "top": [[[7, -0.3], [1, -1.5], [2, -3.5]], [[1, -0.4], [8, -1.2], [2, -3.0]]]}]}
J
# engine stub: same ids except step b/1 prefers 1 (the peer took 8); deltas 0, 0.5, 0 | 0, 0, 1.0 | 0.1, 0.2 (one not shared) | 0.4, 0.3, 0
cat > "$T/bench.sh" <<'S'
#!/bin/sh
cat > /dev/null
echo '{"sequences": [
 {"steps": [{"top": [[5, -0.1], [9, -2.5], [4, -3.0]]}, {"top": [[6, -0.2], [9, -2.5], [3, -5.0]]}]},
 {"steps": [{"top": [[7, -0.2], [1, -1.7], [11, -3.0]]}, {"top": [[1, -0.8], [8, -0.9], [2, -3.0]]}]}]}'
S
chmod +x "$T/bench.sh"
python3 "$SRC/scripts/compare_logprobs.py" --peer-json "$T/peer.json" --bench "$T/bench.sh" --json "$T/out.json" > "$T/stdout"
python3 - "$T/out.json" <<'P'
import json, sys
d = json.load(open(sys.argv[1]))
a = d["all"]
# shared deltas: a: 0, .5, 0, 0, 0, 1.0 ; b: .1, .2, .3, .4, 0  -> 11 values, median 0.1, max 1.0
assert a["n"] == 11, a
assert abs(a["median"] - 0.1) < 1e-9, a
assert abs(a["max"] - 1.0) < 1e-9, a
assert a["greedy"] == 3 and a["steps"] == 4, a  # b step 1 disagrees
assert abs(a["shared"] - 11 / 4) < 1e-9, a
p = {r["name"]: r for r in d["prompts"]}
assert abs(p["a"]["max"] - 1.0) < 1e-9 and abs(p["b"]["max"] - 0.4) < 1e-9, p
P
grep -q "^all" "$T/stdout" || { echo "FAIL: no summary line"; cat "$T/stdout"; exit 1; }
echo "ok compare_logprobs"
