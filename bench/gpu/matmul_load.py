#!/usr/bin/env python3
"""matmul_load.py — a steady, known GPU load for `etok run` on a real GPU: square matrix
products back to back for --seconds, with the work done printed, so the energy a meter reads
can be set beside the work (J per TFLOP) and beside an independent power log.

    etok run --meter nvml --window-start '^start' --window-end '^end' -- \
        python3 -u bench/gpu/matmul_load.py --seconds 15

Prints "start <unix time>" after a warm-up and "end <unix time> products=N tflop=X" when the
GPU has finished the last product (synchronised), both line-buffered.
"""
import argparse
import time

import torch

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--seconds", type=float, default=15.0)
p.add_argument("--n", type=int, default=8192, help="matrix order (default 8192)")
p.add_argument("--device", default="cuda")
p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
a = p.parse_args()
dt = getattr(torch, a.dtype)
x = torch.randn(a.n, a.n, device=a.device, dtype=dt)
y = torch.randn(a.n, a.n, device=a.device, dtype=dt)
sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
for _ in range(3):
    z = x @ y
sync()
print(f"start {time.time():.6f}", flush=True)
t0, n = time.monotonic(), 0
while time.monotonic() - t0 < a.seconds:
    for _ in range(10):
        z = x @ y
    n += 10
    sync()
t = time.monotonic() - t0
tflop = 2.0 * a.n ** 3 * n / 1e12
print(f"end {time.time():.6f} products={n} tflop={tflop:.1f} rate_tflops={tflop / t:.1f}", flush=True)
