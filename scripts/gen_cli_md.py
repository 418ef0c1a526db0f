#!/usr/bin/env python3
"""gen_cli_md.py — write docs/CLI.md from the hand-written text below and the `--help` output of
every command of the etok binary, so that the option lists cannot drift from the code
(tests/e2e/cli_help.sh checks that they did not).

usage: scripts/gen_cli_md.py [ETOK_BIN] > docs/CLI.md   (default build/etok)
"""
import re
import subprocess
import sys

HEAD = """\
# etok command line

`etok COMMAND [OPTIONS]`; `etok --help` lists the commands, `etok COMMAND --help` prints the
options of one (the blocks below are that output, checked against the binary by
`tests/e2e/cli_help.sh`). Argument parsing lives only in `src/cli/`; options that several
commands share (`--meter`, `--cpu-tdp`) are parsed by one helper (`src/cli/cli_util.c`) with the
same syntax and errors everywhere.

Numbers on the command line are parsed strictly (`include/etok/parse.h`, `src/util/parse.c`):
the whole argument must be a decimal number: no leading or trailing space, no `0x`, no `inf` or
`nan`, integers without a fraction or exponent. A value outside the option's range, or one
that overflows, is refused with exit 2 and the option named (`etok serve: --port '70000': out
of range (expected an integer in 0..65535)`), never clamped or saturated. Ranges shared with
files come from one place: `--pue` is 1..10 for `run`, `bench` and a run record alike,
`--price-per-kwh` 0..1e6, and `tpf --sweep` ends must lie inside the same per-field limits as a
scenario file (`etok tpf --list fields` prints them; docs/TPF.md).

## Exit codes

From `include/etok/util.h`, the same for every command:

| code | name | meaning |
|---|---|---|
| 0 | `ETOK_EXIT_OK` | done |
| 1 | `ETOK_EXIT_FAIL` | the work itself failed (a meter fault, a port that cannot be bound, out of memory) |
| 2 | `ETOK_EXIT_USAGE` | bad command line: unknown option, missing or out-of-range value, conflicting options |
| 3 | `ETOK_EXIT_INPUT` | a bad input file: GGUF, scenario, catalog, eval set, run record, power-meter log; or a bad `ETOK_ISA` (engine kernel level, docs/ENGINE.md "Kernel levels") or `ETOK_HUGEPAGES` (not 0 or 1), checked before any command |
| 4 | `ETOK_EXIT_PERMISSION` | an energy counter exists but may not be read (the message says how to allow it) |
| 5 | `ETOK_EXIT_OUTPUT` | an output path cannot be written (checked before anything is measured) |
| 6 | `ETOK_EXIT_ENDPOINT` | `bench --endpoint`: the server became unreachable, or every request failed; outputs are still written, the record says why (`partial`, `stop_reason`) |
| 130 | `ETOK_EXIT_INTERRUPTED` | SIGINT/SIGTERM: outputs are still written, marked `partial` |

`etok run` is the exception that proves the rule: it exits with the measured command's own
status (127/126 when the command is not found / not executable) and uses the codes above only
for its own errors. Every error is one line on stderr, `etok COMMAND: ...`, naming the option,
file, field or value at fault.

Exit 5 also covers output lost after the fact: every output file is written and checked
whole, and standard output is flushed and closed once at exit (`src/cli/main.c`): `etok meters
> /dev/full` or `etok tpf ... --json > /dev/full` print `etok CMD: cannot write to standard
output: No space left on device` and exit 5 (a command that already failed keeps its code).

## Output paths

Every file an option names (`run -o`, `serve -o`, `report -o`, `bench -o DIR`'s files,
`tpf --csv/--svg`, `probe --profile`) is written by one function, `etok_write_file_atomic`
(`src/util/util.c`), by what the path is:

| the path is | etok |
|---|---|
| `-` | writes to standard output |
| a regular file, or nothing yet | writes a temporary file next to it, fsyncs it and renames it over the path: readers see the old file or the new one, never half of one; an existing file's mode (and owner, where allowed) is kept; a failed write (full disk) leaves the old file intact and no temporary file |
| a symlink | follows it (hop by hop; a dangling link's target is created) and replaces the target as above; the link stays. Another user's link in a sticky world-writable directory (`/tmp`) is not followed (the kernel's `protected_symlinks` rule) |
| a FIFO or a character device (`/dev/null`, a tty) | writes straight through, without creating or truncating: the device stays a device |
| a directory, block device or socket | refuses: exit 5, `cannot write 'PATH': ...; refusing to replace it` |

The same rules decide the checks made before anything is measured (`run -o`, `serve -o`,
`bench -o`): they create and remove a uniquely named probe file and change nothing at the path.

## Input limits

Every file a user names is read only if it is a regular file (a FIFO, `/dev/zero`, a directory is
refused before anything is read) and no larger than the limit of its kind, checked from its size
and again while reading. Exceeding either is exit 3 with `PATH: KIND: ...`. Memory stays near the
file's size (at most the limit), so no input can make etok grow without bound.

| input | limit | constant (`include/etok/util.h`) |
|---|---|---|
| scenario (`tpf SCENARIO`) | 4 MiB | `ETOK_LIMIT_SCENARIO` |
| catalog entry (`data/hardware`, `data/models`) | 4 MiB | `ETOK_LIMIT_CATALOG` |
| hardware profile (`--profile`) | 1 MiB | `ETOK_LIMIT_PROFILE` |
| run record (`report`, `tpf --from-run`) | 256 MiB (about 19 h of ten domains at 10 Hz; loading one that size takes about 2 GB) | `ETOK_LIMIT_RECORD` |
| eval set (`bench --evals`) | 64 MiB | `ETOK_LIMIT_EVALSET` |
| ShareGPT file (`bench --dataset-name sharegpt --dataset-path`) | 1 GiB (parsing one that size takes several GB) | `ETOK_LIMIT_SHAREGPT` |
| word corpus (`bench --dataset-name random --dataset-path`) | 64 MiB | `ETOK_LIMIT_CORPUS` |
| tokens file (`exporter --tokens-file`) | 64 KiB | `ETOK_LIMIT_TOKENS_FILE` |
| power-meter log (`--extlog`) | no total limit: read as a stream, a line at most 4096 bytes | `ETOK_LIMIT_EXTLOG_LINE` |

A GGUF model is mapped, not read, and must be a regular file too.

## Environment

| variable | used by | meaning |
|---|---|---|
| `ETOK_SYSFS_ROOT` | meters, bench --cpu-max-freq | root of sysfs (default `/sys`): fixture trees in tests |
| `ETOK_PROC_ROOT` | meters, host info | root of procfs (default `/proc`) |
| `ETOK_NVML_LIB` | nvml meter, bench --gpu-power-limit | the NVML library to load (default `libnvidia-ml.so.1`) |
| `ETOK_AMDSMI_LIB` | amdsmi meter | the amd-smi library to load (default `libamd_smi.so`, then `/opt/rocm/lib/libamd_smi.so`) |
| `ETOK_MODEL` | generate | default model path |
| `ETOK_ISA` | the built-in engine (generate, bench, serve; probe shows it) | kernel level `scalar`, `avx2`, `avx512` or `amx`; unset: the detected level capped at `avx512` (`amx` is opt-in, docs/ENGINE.md "Kernel levels"); a level the CPU lacks is exit 3 |
| `ETOK_HUGEPAGES` | the built-in engine (generate, bench, serve) | `1` or unset: the weights a step streams are copied at load into one buffer and, with the KV cache, asked for in 2 MiB pages (records: `weights_placed_bytes`, `weights_huge_page_bytes`, `thp_mode`); `0`: neither (the weights stay in the file's mapping), for side-by-side measurement; any other value is exit 3 (docs/ENGINE.md "Weights in 2 MiB pages") |
| `ETOK_DATA_DIR` | tpf | catalogs (default: the source tree's `data/`) |
| `OPENAI_API_KEY` | bench --endpoint | default bearer key |
| `XDG_CACHE_HOME` | probe, bench | where the hardware profile is cached |
"""

COMMANDS = ['bench', 'sweep', 'compare', 'run', 'meters', 'report', 'generate', 'tpf', 'probe', 'serve', 'exporter']

SECTIONS = {
    "compare": (
        'Candidates against a baseline, each an arm of one or more run records (repeats pooled): deltas with bootstrap 95% CIs (paired by eval item when possible), the (q*, s*) gate, comparability checks and one verdict line per candidate. See docs/COMPARE.md.',
        """\
    etok compare out/c1 out/c4                          # two bench output directories
    etok compare a1/run.json,a2/run.json b1/run.json,b2/run.json --format html -o cmp.html
    etok compare --arm base='runs/c1-*' --arm c4='runs/c4-*' --format md
""",
    ),
    "bench": (
        'Energy-to-token evaluation: an eval set through the built-in engine (or an OpenAI-compatible endpoint), an idle baseline, meters read at every window edge, then the METRICS.md reporting set in `OUT/run.json`, `OUT/report.md`, `OUT/report.html`.',
        """\
    etok bench                                         # default model and eval set, 4 in flight
    etok bench --rate 2 --duration 60 -o out/open      # open loop, Poisson arrivals at 2 req/s
    etok bench --meter rapl --pue 1.3 --price-per-kwh 0.25
    etok bench --endpoint http://gpu-node:8080 --energy-from http://gpu-node:9464/metrics
""",
    ),
    "sweep": (
        'A grid of `etok bench` runs (concurrency, rate, max-tokens, threads, models, endpoints, ...) in a seeded shuffled order with one idle baseline re-measured on drift, and the energy-latency Pareto frontier over (J/output-token, p90 TPOT) among the points meeting q* and s*: `DIR/sweep.json`, `sweep.csv`, `sweep.html`. See docs/SWEEP.md.',
        """\
    etok sweep --grid concurrency=1,2,4,8,16 --repeat 2 --requests 16 -o out/sweep
    etok sweep --grid concurrency=1,4 --grid max-tokens=32,64 --tpot-slo 0.1 -o out/s2
    etok sweep --sweep-file levers.json --meter rapl -o out/s3 --resume
""",
    ),
    "run": (
        "Measure the energy of any command: an idle baseline, then the command's window. Writes the run record (JSON); `etok report` re-analyses it.",
        """\
    etok run --tokens 512 -- ./my-inference --n 512
    etok run --tokens-regex 'generated ([0-9]+) tokens' --meter rapl,nvml -o run.json -- ./gen.sh
    etok run --meter extlog --extlog meter.csv --idle 10 -- python serve_batch.py
""",
    ),
    "meters": (
        'Every energy meter etok knows, and whether it can be read here (and why not).',
        """\
    etok meters
    etok meters --json | jq '.[] | select(.available)'
""",
    ),
    "report": (
        'Re-analyse a saved run record offline, in any format.',
        """\
    etok report etok-run.json
    etok report out/run.json --format html -o report.html
""",
    ),
    "generate": (
        'Generate text with the built-in GGUF engine (no energy measurement; wrap it in `etok run` for that).',
        """\
    etok generate -p "The capital of France is" -n 16
    etok generate --chat -p "Write a haiku about joules." --temp 0.7 --seed 3
""",
    ),
    "tpf": (
        'The Token Production Function of a deployment: every ceiling as a token rate, the binding constraint (the smallest), the modelled energy per token. A model estimate, labelled as such, calibrated and validated against published measurements (`--validate`).',
        """\
    etok tpf --list scenarios
    etok tpf h100x8-llama31-8b-kv-int8 --lever fp8 --lever kv-int8
    etok tpf power-capped-site --sweep facility.power_w=1e4:1e7:60:log --svg sweep.svg
    etok tpf h100x8-llama31-8b-kv-int8 --from-run out/run.json
    etok tpf --validate                  # the model against published measurements (data/measurements)
""",
    ),
    "probe": (
        "Measure this machine's peak FLOP/s and memory bandwidth (the ceilings for MFU, MBU and this run's TPF in `etok bench`); cached.",
        """\
    etok probe
    etok probe --force --json
""",
    ),
    "serve": (
        'An OpenAI-compatible server over the engine with the energy of every request in its usage, and `/metrics`. See docs/SERVE.md.',
        """\
    etok serve -m models/SmolLM2-135M-Instruct.Q4_1.gguf --port 8080
    etok serve -m model.gguf --meter rapl --api-key sekrit -o serve-run.json
""",
    ),
    "exporter": (
        "This node's energy meters for Prometheus at `/metrics`. See docs/PROMETHEUS.md.",
        """\
    etok exporter --port 9464 --meter rapl
    etok exporter --host 0.0.0.0 --tokens-file /run/engine/tokens
""",
    ),
}


def help_text(etok, cmd):
    out = subprocess.run([etok, cmd, "--help"], capture_output=True, text=True, check=True).stdout
    # the catalog path printed by `etok tpf --help` depends on the checkout
    return re.sub(r"^(.*docs/INSTALL\.md\), here: )/.*$", r"\1DATA", out, flags=re.M)


def main():
    etok = sys.argv[1] if len(sys.argv) > 1 else "build/etok"
    parts = [HEAD.rstrip("\n"), "", "## Commands", ""]
    for c in COMMANDS:
        parts.append("- [`etok %s`](#etok-%s)" % (c, c))
    for c in COMMANDS:
        what, examples = SECTIONS[c]
        parts += ["", "## etok %s" % c, "", what, "", "```text", help_text(etok, c).rstrip("\n"), "```", "",
                  "Examples:", "", examples.rstrip("\n")]
    sys.stdout.write("\n".join(parts) + "\n")


if __name__ == "__main__":
    main()
