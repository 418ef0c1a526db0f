#!/usr/bin/env python3
"""Generate tests/fixtures/reference/greedy.json: llama.cpp's greedy continuation and the
final-position logits of several prompts on the same GGUF. Runs a greedy-decoding program you give
by path (the fixture's was outside this repository, see tests/fixtures/reference/README.md):
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
    ("plain_400", "Energy is the quiet cost behind every answer a language model gives. When a data centre "
     "serves a request, electricity flows through processors, memory chips, network switches, power supplies "
     "and cooling systems, and only part of it ends up doing arithmetic. Engineers who want to compare two "
     "ways of serving the same model therefore need a common unit, and joules per generated token is the "
     "simplest one that stays honest: it counts the energy drawn while the prompt is read, the energy drawn "
     "while new tokens are produced, and the idle power that the machine consumes between requests. Measuring "
     "it well is harder than it sounds. Hardware counters such as Intel's RAPL report package and memory "
     "energy, but they wrap around, they are sampled at coarse intervals, and they ignore the fans, the disks "
     "and the losses in the power supply. External meters see the whole machine but not which process used "
     "what. Graphics cards expose their own power readings, which are averaged over windows that may be "
     "longer than a single decoding step. A careful evaluation records the raw readings together with their "
     "units and uncertainties, attributes the energy of each interval to the phases that ran during it, and "
     "reports every figure with its source, so that nobody mistakes an estimate for a measurement. Batching "
     "changes the picture again: when several sequences share one pass over the weights, the energy of "
     "reading those weights from memory is split among them, and the cost per token can fall by a large "
     "factor until the arithmetic units, rather than the memory bus, become the limit. Quantization shrinks "
     "the weights and so the bytes moved per token, while a shorter attention window bounds the cache that "
     "each new token must read. Taken together, these levers decide whether"),
    ("chat_sky", chat("Explain why the sky is blue.")),
    ("chat_poem", chat("Write a short poem about the sea.")),
    ("chat_list", chat("List five tips for staying productive when working from home.")),
]

CHAT_USER = {"chat_sky": "Explain why the sky is blue.", "chat_poem": "Write a short poem about the sea.",
             "chat_list": "List five tips for staying productive when working from home."}

def main():
    binary, model, outpath = sys.argv[1:4]
    for name, user in CHAT_USER.items():
        assert dict(PROMPTS)[name] == chat(user)
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
        entry = {"name": name, "prompt": text, "parse_special": True, "add_bos": False}
        if name in CHAT_USER:
            entry["chat_user"] = CHAT_USER[name]  # the prompt is chat(chat_user), no system message
        out.append({**entry, **r})
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
