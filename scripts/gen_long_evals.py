#!/usr/bin/env python3
"""Generate data/evals/long.jsonl: a synthetic long-prompt eval set with a checkable answer
(issue 16: the KV-cache and sparse-attention levers at 1000+ tokens of context).

Each item plants one fact early (a four-digit code for a named vault, in the first sentence),
then about 900 words of filler (seeded template sentences with no digits at all), then asks for the
code. The answer is checked with a `number` check, so a model that lost the fact (e.g. an
attention window smaller than the prompt, which drops the early tokens) gets it wrong unless it
guesses the code. With SmolLM2's tokenizer each prompt is ~1060-1090 tokens (etok bench records the
exact count per request as tokens_in). Every item carries "difficulty": "hard" and "stop": "\\n".

  scripts/gen_long_evals.py [--items N] [--words W] [--seed S] [-o data/evals/long.jsonl]

Deterministic: the same arguments give the same bytes (Python's random.Random, seeded)."""
import argparse
import json
import random

NAMES = ["amber", "birch", "cobalt", "delta", "ember", "falcon", "garnet", "harbor", "indigo", "juniper",
         "kestrel", "lantern", "meadow", "nimbus", "orchid", "pepper", "quartz", "raven", "saffron", "tundra"]
SUBJECTS = ["The old librarian", "A quiet fisherman", "The village baker", "A travelling painter", "The young gardener",
            "An elderly teacher", "The harbour master", "A curious child", "The night watchman", "A weary merchant",
            "The town clerk", "A shepherd from the hills", "The blacksmith", "A visiting musician", "The innkeeper"]
VERBS = ["walked slowly past", "spoke at length about", "carefully repaired", "quietly admired", "wrote a letter about",
         "searched all morning for", "painted a picture of", "told a long story about", "cleaned", "forgot about",
         "sang a song about", "argued with a neighbour about", "carried a basket to", "dreamed of", "counted the stones of"]
OBJECTS = ["the stone bridge", "the crooked lighthouse", "the market square", "the apple orchard", "the narrow river",
           "the chapel on the hill", "the windmill", "the abandoned mill", "the northern forest", "the fishing boats",
           "the wooden fence", "the clock tower", "the empty barn", "the winding road", "the frozen pond"]
TAILS = ["before the rain began", "while the bells were ringing", "as the sun went down", "in the early morning",
         "without saying a word", "with great patience", "for no particular reason", "as everyone watched",
         "after the long winter", "during the harvest festival", "under a grey sky", "on a windy afternoon"]


def filler(rng, words):
    out, n = [], 0
    while n < words:
        s = "%s %s %s %s." % (rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS), rng.choice(TAILS))
        out.append(s)
        n += len(s.split())
    # paragraphs of six sentences
    return "\n\n".join(" ".join(out[i:i + 6]) for i in range(0, len(out), 6))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=12)
    ap.add_argument("--words", type=int, default=900)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("-o", "--output", default="data/evals/long.jsonl")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    names = rng.sample(NAMES, a.items) if a.items <= len(NAMES) else [NAMES[i % len(NAMES)] + str(i) for i in range(a.items)]
    lines = []
    for i, name in enumerate(names):
        code = rng.randrange(1000, 10000)
        fact = "Remember this: the secret code of the %s vault is %d." % (name, code)
        text = fact + "\n\n" + filler(rng, a.words)
        question = "\n\nWhat is the secret code of the %s vault? Reply with just the number." % name
        assert not any(ch.isdigit() for ch in text[len(fact):] + question)
        item = {"id": "long-%02d-%s" % (i + 1, name), "prompt": text + question, "answer": str(code), "check": "number",
                "tolerance": 0, "difficulty": "hard", "stop": "\n",
                "notes": "fact planted in the first sentence, %d words of filler after it" % a.words}
        lines.append(json.dumps(item, ensure_ascii=True))
    with open(a.output, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
