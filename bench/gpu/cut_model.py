#!/usr/bin/env python3
"""cut_model.py — a smaller copy of a GGUF model for a machine that can take only so many bytes
(a lent device takes 64 MiB per call): the first LAYERS blocks kept (block_count rewritten),
the other tensors copied as they are, and optionally the token embedding re-quantised to a
smaller block format (--embd q4_1). Speeds per layer stay those of the full model; the text
is degenerate (fewer layers than trained), so use it for speed and agreement, never quality.

    python3 bench/gpu/cut_model.py models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/smol6e.gguf 6 --embd q4_1

Needs the `gguf` package (pip install gguf).
"""
import argparse
import sys

try:
    import gguf
    import numpy as np
    from gguf import quants
except ImportError as e:
    sys.exit(f"cut_model.py: {e} (pip install gguf numpy)")

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("src")
p.add_argument("dst")
p.add_argument("layers", type=int)
p.add_argument("--embd", choices=["keep", "q4_0", "q4_1", "q8_0"], default="keep",
               help="re-quantise token_embd.weight to this format (default keep)")
a = p.parse_args()
r = gguf.GGUFReader(a.src)
arch = r.fields["general.architecture"].contents()
n_layers = r.fields[f"{arch}.block_count"].contents()
if not 1 <= a.layers <= n_layers:
    sys.exit(f"cut_model.py: {a.src} has {n_layers} blocks; LAYERS must be 1..{n_layers}")
w = gguf.GGUFWriter(a.dst, arch)
for name, f in r.fields.items():
    if name.startswith("GGUF.") or name == "general.architecture":
        continue
    v = f.contents()
    if name == f"{arch}.block_count":
        v = a.layers
    vt = f.types[0]
    if vt == gguf.GGUFValueType.ARRAY:
        w.add_array(name, v)
    elif vt == gguf.GGUFValueType.STRING:
        w.add_string(name, v)
    else:
        w.add_key_value(name, v, vt)
for t in r.tensors:
    if t.name.startswith("blk.") and int(t.name.split(".")[1]) >= a.layers:
        continue
    if t.name == "token_embd.weight" and a.embd != "keep":
        qt = getattr(gguf.GGMLQuantizationType, a.embd.upper())
        w.add_tensor(t.name, quants.quantize(quants.dequantize(t.data, t.tensor_type), qt), raw_dtype=qt)
        continue
    w.add_tensor(t.name, np.asarray(t.data), raw_dtype=t.tensor_type)
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print(f"cut_model.py: {a.dst}: {a.layers} of {n_layers} blocks, token_embd {a.embd}")
