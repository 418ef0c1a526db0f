#!/usr/bin/env python3
"""Generate tests/fixtures/reference/tokenize_variants.json: llama.cpp's token ids for the
tokenizer code paths the default model does not use, on vocab-only GGUF files DERIVED from the
default model (written to a temporary directory, never committed):

- "llama-bpe": SmolLM2's vocabulary and merges with tokenizer.ggml.pre = "llama-bpe" (the
  Llama-3 pre-tokenizer: digits in groups of 1-3, case-insensitive contractions, newline runs,
  whole-word lookup before merging); add_bos false.
- "gpt-2": the same with tokenizer.ggml.pre = "gpt-2" (GPT-2's original split).
- "default": the same with tokenizer.ggml.pre = "default" (llama.cpp's fallback split).
- "spm": a SentencePiece-style ("llama") vocabulary: <unk> <s> </s>, the 256 byte tokens
  <0x00>..<0xFF>, then every normal SmolLM2 token with the byte-level space "Ġ" replaced by
  "▁" (other byte-level characters are kept as they are), score = -(its index in this list);
  BOS added (SentencePiece default), add_space_prefix default (true).

tests/unit/test_tokenizer.c rebuilds the same variants from the model file in memory and
compares. Usage: scripts/gen_variant_reference.py LLAMA_BIN_DIR MODEL.gguf OUT.json"""
import json, os, struct, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_tokenizer_reference import CASES  # the same strings as tokenize.json

STR, ARR, U32, I32, F32, BOOL = 8, 9, 4, 5, 6, 7

def read_meta(path):
    d = open(path, "rb").read(32 << 20)
    o = 0
    def u(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, d, o)[0]
        o += struct.calcsize("<" + fmt)
        return v
    def s():
        nonlocal o
        n = u("Q"); v = d[o:o + n]; o += n
        return v
    T = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def val(t):
        if t == STR: return s()
        if t == ARR:
            at = u("I"); n = u("Q")
            return [val(at) for _ in range(n)]
        return u(T[t])
    assert d[:4] == b"GGUF"
    o = 4; u("I"); u("Q"); nk = u("Q")
    md = {}
    for _ in range(nk):
        k = s().decode(); t = u("I"); md[k] = val(t)
    return md

def write_gguf(path, kvs):
    out = bytearray(b"GGUF")
    out += struct.pack("<IQQ", 3, 0, len(kvs))
    def wstr(b):
        if isinstance(b, str): b = b.encode()
        out.extend(struct.pack("<Q", len(b)) + b)
    for k, t, v in kvs:
        wstr(k)
        out.extend(struct.pack("<I", t))
        if t == STR: wstr(v)
        elif t == U32: out.extend(struct.pack("<I", v))
        elif t == BOOL: out.extend(struct.pack("<?", v))
        elif t == ARR:
            at, items = v
            out.extend(struct.pack("<IQ", at, len(items)))
            for it in items:
                if at == STR: wstr(it)
                elif at == I32: out.extend(struct.pack("<i", it))
                elif at == F32: out.extend(struct.pack("<f", it))
    open(path, "wb").write(bytes(out))

def variants(md):
    toks, types, merges = md["tokenizer.ggml.tokens"], md["tokenizer.ggml.token_type"], md["tokenizer.ggml.merges"]
    base = [("general.architecture", STR, "llama")]
    ids = [("tokenizer.ggml.bos_token_id", U32, md["tokenizer.ggml.bos_token_id"]),
           ("tokenizer.ggml.eos_token_id", U32, md["tokenizer.ggml.eos_token_id"])]
    for pre in ("llama-bpe", "gpt-2", "default"):
        yield pre, base + [("tokenizer.ggml.model", STR, "gpt2"), ("tokenizer.ggml.pre", STR, pre),
                           ("tokenizer.ggml.tokens", ARR, (STR, toks)), ("tokenizer.ggml.token_type", ARR, (I32, types)),
                           ("tokenizer.ggml.merges", ARR, (STR, merges)), ("tokenizer.ggml.add_bos_token", BOOL, False)] + ids
    stoks = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % i for i in range(256)]
    stypes = [2, 3, 3] + [6] * 256
    for t, ty in zip(toks, types):
        if ty == 1:
            stoks.append(t.replace("Ġ".encode(), "▁".encode()))
            stypes.append(1)
    scores = [-float(i) for i in range(len(stoks))]
    yield "spm", base + [("tokenizer.ggml.model", STR, "llama"), ("tokenizer.ggml.tokens", ARR, (STR, stoks)),
                         ("tokenizer.ggml.scores", ARR, (F32, scores)), ("tokenizer.ggml.token_type", ARR, (I32, stypes)),
                         ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
                         ("tokenizer.ggml.unknown_token_id", U32, 0)]

def main():
    bindir, model, outpath = sys.argv[1:4]
    binary = os.path.join(bindir, "llama-tokenize")
    md = read_meta(model)
    doc = {"producer": "llama.cpp llama-tokenize (commit c392e5094) --stdin --ids --no-escape on vocab-only "
                       "GGUFs derived from the model, see scripts/gen_variant_reference.py",
           "model": os.path.basename(model), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kvs in variants(md):
            path = os.path.join(tmp, name + ".gguf")
            write_gguf(path, kvs)
            cases = []
            for text in CASES:
                for ps in (True, False):
                    cmd = [binary, "-m", path, "--stdin", "--ids", "--no-escape", "--log-disable"]
                    if not ps: cmd.append("--no-parse-special")
                    r = subprocess.run(cmd, input=text.encode(), capture_output=True, check=True)
                    cases.append({"text": text, "parse_special": ps,
                                  "ids": json.loads(r.stdout.decode().strip().splitlines()[-1])})
            doc["variants"][name] = cases
            print(name, "done", file=sys.stderr)
    with open(outpath, "w", encoding="utf-8") as f:
        f.write('{\n "producer": %s,\n "model": %s,\n "variants": {\n' % (json.dumps(doc["producer"]), json.dumps(doc["model"])))
        parts = []
        for name, cases in doc["variants"].items():
            parts.append('  %s: [\n' % json.dumps(name) + ",\n".join("   " + json.dumps(c, ensure_ascii=False) for c in cases) + "\n  ]")
        f.write(",\n".join(parts) + "\n }\n}\n")

if __name__ == "__main__":
    main()
