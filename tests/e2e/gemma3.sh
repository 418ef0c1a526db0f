#!/bin/sh
# e2e: the real Gemma 3 270M (base) Q4_K_M model (`make model-gemma3`; about 250 MB, not
# fetched by CI) through `etok generate`: greedy answers to few-shot prompts (a base model:
# no instruction tuning) must be right — "Paris", 7 + 6 = 13, 3 + 4 = 7 — and the Gemma chat
# template must tokenize to its 16 tokens (<bos><start_of_turn>user\n...<end_of_turn>\n
# <start_of_turn>model\n), with a note that the file carries no chat template; the plain
# question gets "Paris". Skipped, with a note, when the model is absent (the fetch script's
# refusal of an unknown model name is checked first, always). The log-prob
# agreement with an independent forward is test_gemma3_ref (docs/ENGINE.md).
set -u
ETOK=${ETOK_BIN:-./build/etok}
MODEL=${ETOK_GEMMA3_MODEL:-${ETOK_SOURCE_DIR:-.}/models/gemma-3-270m-q4_k_m.gguf}
# the fetch script names the models it knows (and fetches nothing for another name)
out=$(sh "${ETOK_SOURCE_DIR:-.}/scripts/fetch_model.sh" nosuch 2>&1)
rc=$?
if [ $rc != 2 ] || ! echo "$out" | grep -q "unknown model 'nosuch' (smollm2, gemma3)"; then
    echo "FAIL: fetch_model.sh nosuch -> rc=$rc: $out"; exit 1
fi
if [ ! -f "$MODEL" ]; then
    echo "SKIP: $MODEL absent (make model-gemma3)"
    exit 0
fi
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
greedy() { # PROMPT N EXPECTED-SUBSTRING
    "$ETOK" generate -m "$MODEL" -p "$1" -n "$2" --threads 2 >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc != 0 ] || ! grep -q -- "$3" "$T/out"; then
        echo "FAIL: greedy '$1' (rc=$rc) does not contain '$3':"; cat "$T/out" "$T/err"
        fail=1
    fi
}
greedy "$(printf 'Q: What is the capital of Germany?\nA: Berlin\nQ: What is the capital of France?\nA:')" 2 "^ Paris"
greedy "$(printf '2 + 2 = 4\n3 + 5 = 8\n7 + 6 =')" 3 "^ 13"
greedy "$(printf '10 + 10 = 20\n3 + 4 =')" 2 "^ 7"
# the plain question: the base model knows the answer ("\n\nThe capital of France is Paris.")
greedy "What is the capital of France?" 10 "capital of France is Paris"
# the same question as a chat turn: 16 tokens (test_gemma3_ref checks the ids), and a note that
# the file has no chat template (a base model: it answers by repeating the question, which is
# what its weights predict: docs/ENGINE.md, "Chat on a file without a template")
"$ETOK" generate -m "$MODEL" --chat -p "What is the capital of France?" -n 8 --threads 2 >"$T/out" 2>"$T/err"
rc=$?
if [ $rc != 0 ] || ! grep -q "prompt tokens: 16," "$T/err" ||
    ! grep -q "note: .* carries no tokenizer.chat_template, so the chat format is Gemma" "$T/err" ||
    ! grep -q "^What is the capital of France?" "$T/out"; then
    echo "FAIL: Gemma chat template (rc=$rc):"; cat "$T/out" "$T/err"
    fail=1
fi
# etok bench sends its prompts through the same template: the same note
"$ETOK" bench -m "$MODEL" --requests 1 --max-tokens 4 --idle 0 --threads 2 -o "$T/bench" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc != 0 ] || ! grep -q "etok bench: note: .* carries no tokenizer.chat_template" "$T/err"; then
    echo "FAIL: etok bench on Gemma (rc=$rc) without the chat note:"; cat "$T/err"
    fail=1
fi
# a plain prompt gets no chat note
"$ETOK" generate -m "$MODEL" -p "Hi" -n 1 --threads 2 >"$T/out" 2>"$T/err"
if grep -q "note:" "$T/err"; then
    echo "FAIL: a plain prompt printed the chat note:"; cat "$T/err"
    fail=1
fi
exit $fail
