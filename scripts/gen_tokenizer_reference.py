#!/usr/bin/env python3
"""Generate tests/fixtures/reference/tokenize.json: llama.cpp's token ids for a varied set of
strings, produced by running llama.cpp's own `llama-tokenize` (a binary you
give by its directory; etok neither builds nor copies the peer) on the same GGUF file. Usage:
  scripts/gen_tokenizer_reference.py LLAMA_BIN_DIR MODEL.gguf OUT.json
Each string is fed on stdin (--stdin --no-escape, so bytes go in unchanged) twice: with special
token parsing (the default) and with --no-parse-special. BOS follows the model's add_bos flag."""
import hashlib, json, os, subprocess, sys

CASES = [
    "Hello world",
    "Hello, world! How are you today?",
    "hello",
    " hello",
    "  hello",
    "The quick brown fox jumps over the lazy dog.",
    "12345",
    "3.14",
    "I have 1000000 apples and 42 pears, costing $3.99 each.",
    "Call 555-0123 in 2024",
    "a1b2c3",
    " 7",
    "x 12 y",
    "!!!???...,,,",
    "Wow!!! Really?! (yes) [no] {maybe} <tag> @user #hash",
    "a  b   c    d",
    "line1\nline2\n\nline4",
    "\n\n\n",
    "tab\tseparated\tvalues",
    "   leading and trailing   ",
    " \t \n mixed \r\n whitespace",
    "don't won't I'm you're they've we'll she'd",
    "DON'T SHOUT'S",
    "café naïve résumé façade",
    "Ünïcödé Ëxtrëmé",
    "日本語のテキストです。",
    "中文测试：你好，世界！",
    "한국어 텍스트",
    "Привет, мир!",
    "مرحبا بالعالم",
    "Emoji: 😀🎉👍🏽 and 🇫🇷 flags",
    "👨‍👩‍👧‍👦",
    "<|im_start|>user\nHi there<|im_end|>\n",
    "<|endoftext|>",
    "text<|im_end|>more text",
    "def fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)\n",
    "for (int i = 0; i < 10; ++i) { x[i] = i * 2; }",
    "https://example.com/path?query=1&x=y#frag",
    "user@example.com",
    "½ ¾ ² ³ Ⅻ ①",
    "\u00a0non\u00a0breaking\u2003space\u3000ideographic",
    "α β γ δ ε Σ π ≈ ≠ ∞ → ←",
    "The year 1999 and 2000-01-01T00:00:00Z",
    "Mixed: café 123 日本 😀 don't  stop\n",
    "",
    " ",
    "a",
    "\U0002EC1E'll \U0002EBF0s",  # CJK Extension I: letters since Unicode 15.1
    "x\u0301\u0308 ٣٤ ⅻ",  # combining marks, Arabic-Indic digits, a letter-number
    "Once upon a time, in a small village nestled between rolling hills, there lived an old clockmaker who repaired every clock in town.",
]

def run(binary, model, text, parse_special):
    cmd = [binary, "-m", model, "--stdin", "--ids", "--no-escape", "--log-disable"]
    if not parse_special:
        cmd.append("--no-parse-special")
    out = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, check=True)
    line = out.stdout.decode().strip().splitlines()[-1]
    return json.loads(line)

def main():
    bindir, model, outpath = sys.argv[1:4]
    binary = os.path.join(bindir, "llama-tokenize")
    sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
    cases = []
    for text in CASES:
        for ps in (True, False):
            cases.append({"text": text, "parse_special": ps, "ids": run(binary, model, text, ps)})
    doc = {"producer": "llama.cpp llama-tokenize (commit c392e5094) --stdin --ids --no-escape",
           "model": os.path.basename(model), "model_sha256": sha, "add_bos": "model default (false for SmolLM2)",
           "cases": cases}
    with open(outpath, "w", encoding="utf-8") as f:
        # one case per line keeps diffs readable
        head = {k: v for k, v in doc.items() if k != "cases"}
        f.write(json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "cases": [\n')
        f.write(",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases))
        f.write("\n ]\n}\n")

if __name__ == "__main__":
    main()
