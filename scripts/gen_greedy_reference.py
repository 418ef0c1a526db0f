#!/usr/bin/env python3
"""Generate tests/fixtures/reference/greedy.json: llama.cpp's greedy continuation and the
final-position logits of several prompts on the same GGUF. Runs a small C program (kept out of
the repo, see tests/fixtures/reference/README.md) linked against llama.cpp's libllama:
  scripts/gen_greedy_reference.py GREEDY_BIN MODEL.gguf OUT.json [N_PREDICT] [THREADS] [TOPK]"""
import hashlib, json, os, subprocess, sys, tempfile

CHATML_SYS = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
def chat(user):
    return CHATML_SYS + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n"

PROMPTS = [
    ("plain_capital", "The capital of France is"),
    ("plain_story", "Once upon a time, there was a little robot who"),
    ("plain_code", "def fibonacci(n):\n"),
    ("plain_numbers", "1, 2, 3, 4, 5,"),
    ("plain_long", "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
     "combined movable metal type, oil-based ink and a wooden press adapted from those used for wine. "
     "Before that, books in Europe were copied by hand, usually by monks, and a single volume could take "
     "months to finish. The new method spread quickly: by 1500 there were presses in more than two hundred "
     "and fifty cities, and millions of books had been printed. Historians often argue that"),
    ("chat_sky", chat("Explain why the sky is blue.")),
    ("chat_poem", chat("Write a short poem about the sea.")),
    ("chat_list", chat("List five tips for staying productive when working from home.")),
]

def main():
    binary, model, outpath = sys.argv[1:4]
    n_predict = int(sys.argv[4]) if len(sys.argv) > 4 else 64
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 2
    topk = int(sys.argv[6]) if len(sys.argv) > 6 else 100
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    out = []
    for name, text in PROMPTS:
        with tempfile.NamedTemporaryFile("wb", delete=False) as f:
            f.write(text.encode("utf-8"))
            path = f.name
        try:
            res = subprocess.run([binary, model, path, str(n_predict), str(threads), str(topk)],
                                 capture_output=True, check=True)
        finally:
            os.unlink(path)
        r = json.loads(res.stdout.decode("utf-8"))
        r["prompt_final_logits"].pop("all_logits_file", None)
        out.append({"name": name, "prompt": text, "parse_special": True, "add_bos": False, **r})
        print(name, len(r["greedy_ids"]), "tokens", file=sys.stderr)
    doc = {"producer": "llama.cpp libllama (commit c392e5094), greedy argmax, see README.md",
           "model": os.path.basename(model), "model_sha256": sha, "n_threads": threads,
           "n_predict": n_predict, "kv_cache": "F16 (llama.cpp default)", "top_k_logits_stored": topk,
           "prompts": out}
    # one line per field keeps the file small and diffs readable
    def obj(d, ind):
        pad = " " * ind
        return "{\n" + ",\n".join(pad + " " + json.dumps(k) + ": " + json.dumps(v, ensure_ascii=False)
                                    for k, v in d.items()) + "\n" + pad + "}"
    head = {k: v for k, v in doc.items() if k != "prompts"}
    with open(outpath, "w", encoding="utf-8") as f:
        f.write(obj(head, 0)[:-2] + ',\n "prompts": [\n  ')
        f.write(",\n  ".join(obj(p, 2) for p in doc["prompts"]))
        f.write("\n ]\n}\n")

if __name__ == "__main__":
    main()
