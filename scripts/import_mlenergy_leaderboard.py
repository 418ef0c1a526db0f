#!/usr/bin/env python3
"""import_mlenergy_leaderboard.py — writes data/measurements/mlenergy-v3-{h100,b200}-llama3.1.json from
the per-configuration data of The ML.ENERGY Leaderboard v3.0 (docs/TPF.md "Validation").

    python3 scripts/import_mlenergy_leaderboard.py LEADERBOARD_CHECKOUT [--commit SHA]

LEADERBOARD_CHECKOUT is a checkout of github.com/ml-energy/leaderboard; the script reads
public/data/models/meta-llama__Llama-3.1-{8B,70B,405B}-Instruct*__lm-arena-chat.json (the files the
leaderboard web app shows) and copies, per configuration, the published figures unchanged:
energy_per_token_joules, output_throughput_tokens_per_sec, avg_power_watts, avg_output_len,
avg_batch_size, max_num_seqs, num_gpus, gpu_model. Nothing is fitted or guessed here; the only
condition not in the data (mean input length) is the labelled assumption in "conditions".
Standard library only.
"""
import argparse
import json
import os
import sys

MODELS = [  # leaderboard file, catalog model, weight dtype
    ("meta-llama__Llama-3.1-8B-Instruct", "llama-3.1-8b", "bf16"),
    ("meta-llama__Llama-3.1-70B-Instruct", "llama-3.1-70b", "bf16"),
    ("meta-llama__Llama-3.1-405B-Instruct-FP8", "llama-3.1-405b", "fp8"),
    ("meta-llama__Llama-3.1-405B-Instruct", "llama-3.1-405b", "bf16"),
]
GPUS = {"H100": "h100-sxm", "B200": "b200"}
CALIBRATION_BATCHES = {16, 64, 128, 256, 1024}  # max_num_seqs; every other batch is held out
MAX_BATCH = 1024
INPUT_TOKENS = 224


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkout")
    ap.add_argument("--commit", default="0cd52dab897c5d91a45f4d413038f3b8b4251b0f")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "data", "measurements"))
    args = ap.parse_args()
    for gpu, hw in GPUS.items():
        points = []
        for fname, model, wdt in MODELS:
            path = os.path.join(args.checkout, "public", "data", "models", fname + "__lm-arena-chat.json")
            doc = json.load(open(path))
            for c in sorted(doc["configurations"], key=lambda c: (c["num_gpus"], c["max_num_seqs"])):
                if c["gpu_model"] != gpu or c["max_num_seqs"] > MAX_BATCH:
                    continue
                par = c.get("parallelization", {})
                if par.get("tensor_parallel", c["num_gpus"]) != c["num_gpus"]:
                    sys.exit("%s: a configuration that is not one tensor-parallel replica" % fname)
                tag = "-fp8" if wdt == "fp8" else ""
                points.append({
                    "id": "%s%s/%sx%d/b%d" % (model, tag, gpu.lower(), c["num_gpus"], c["max_num_seqs"]),
                    "hardware": hw,
                    "devices": c["num_gpus"],
                    "model": model,
                    "weight_dtype": wdt,
                    "kv_dtype": "bf16",
                    "batch": int(round(c["avg_batch_size"])),
                    "input_tokens": INPUT_TOKENS,
                    "output_tokens": int(round(c["avg_output_len"])),
                    "joules_per_output_token": round(c["energy_per_token_joules"], 5),
                    "output_tokens_per_s": round(c["output_throughput_tokens_per_sec"], 2),
                    "power_w": round(c["avg_power_watts"], 1),
                    "calibrate": c["max_num_seqs"] in CALIBRATION_BATCHES,
                })
        name = "mlenergy-v3-%s-llama3.1" % gpu.lower()
        models = "8B on 1 GPU, 70B on %s, 405B-FP8 on %s%s" % (
            "4" if gpu == "H100" else "2", "8" if gpu == "H100" else "4",
            ", 405B bf16 on 8" if gpu == "B200" else "")
        out = {
            "name": name,
            "description": "ML.ENERGY Benchmark v3.0 (Dec 2025): Llama 3.1 8B / 70B / 405B Instruct served by vLLM "
                           "0.11.1 on %s, energy per output token, output throughput and GPU power by batch size" % gpu,
            "source": {
                "title": "The ML.ENERGY Leaderboard v3.0, LLM Chat (LM Arena) task, per-configuration data",
                "url": "https://ml.energy/leaderboard",
                "data": "github.com/ml-energy/leaderboard public/data/models/meta-llama__Llama-3.1-*__lm-arena-chat.json "
                        "(commit %s; the files the leaderboard web app reads, built from the ML.ENERGY data "
                        "toolkit)" % args.commit[:7],
                "extraction": "copied by scripts/import_mlenergy_leaderboard.py: energy_per_token_joules, "
                              "output_throughput_tokens_per_sec, avg_power_watts, avg_output_len (-> output_tokens, "
                              "rounded), avg_batch_size (-> batch, rounded; the id keeps max_num_seqs); batches up to "
                              "%d" % MAX_BATCH,
                "benchmark": "The ML.ENERGY Benchmark v3.0, https://github.com/ml-energy/benchmark; methodology: "
                             "Chung et al., arXiv:2505.06371",
            },
            "conditions": {
                "engine": "vLLM 0.11.1 (chunked prefill on: prefill and decode share steps)",
                "hardware": "NVIDIA %s; %s (tensor parallel, one replica)" % (
                    "H100 80GB HBM3" if gpu == "H100" else "B200 180GB", models),
                "precision": "weights as in the id (bf16, or -fp8: Llama-3.1-405B-Instruct-FP8); KV cache bf16 "
                             "(vLLM default)",
                "batch": "max_num_seqs in the id; batch = the published mean running batch (avg_batch_size), "
                         "rounded",
                "task": "LM Arena chat prompts (lmarena-ai/arena-human-preference-100k), output up to 4096 tokens",
                "lengths": "output_tokens = the published mean output length of the configuration "
                           "(avg_output_len, rounded). ASSUMPTION: input 224 tokens per request for every point; "
                           "the leaderboard data give no input length (the task's prompts are short chat turns); "
                           "an uncertainty of the conditions that moves prefill's share of the cost",
                "energy_boundary": "GPU energy only (NVML via Zeus), summed over the replica's GPUs, over the "
                                   "steady-state window; no CPU, host, network or facility",
                "power_w": "avg_power_watts: average GPU power summed over the replica's GPUs",
            },
            "calibration_split": "points with calibrate = true (max_num_seqs 16, 64, 128, 256 and 1024 of each model) fit "
                                 "data/hardware/%s.json calibration; all others are held out" % hw,
            "points": points,
        }
        with open(os.path.join(args.out, name + ".json"), "w") as f:
            json.dump(out, f, indent=1)
            f.write("\n")
        print("wrote", name, len(points), "points", file=sys.stderr)


if __name__ == "__main__":
    main()
