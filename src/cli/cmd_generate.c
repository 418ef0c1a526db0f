/* cmd_generate.c — `etok generate`: run the built-in engine on one prompt and stream the
 * text to stdout (cut only at complete UTF-8 characters); at the end, the prompt and
 * generated token counts and the prefill / decode rates (wall clock, measured) go to stderr.
 * Owns only argument parsing and output; the engine does the work. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/parse.h"
#include "etok/engine.h"
#include "etok/paths.h"
#include "etok/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok generate [-m MODEL] -p PROMPT [-n N] [--chat] [--parse-special] [--threads T]\n"
            "                     [--seed S] [--temp X] [--top-k K] [--top-p P] [--ctx N]\n"
            "                     [--weights FORMAT] [--kv-type TYPE] [--attn-window N [--attn-sinks S]]\n"
            "Generate text with the built-in engine and stream it to stdout.\n"
            "  -m, --model MODEL  GGUF file (default: $ETOK_MODEL, else " ETOK_DEFAULT_MODEL_NAME " in\n"
            "                     ~/.cache/etok/models or ./models; docs/INSTALL.md)\n"
            "  -p, --prompt TEXT  the prompt\n"
            "  -n, --n-predict N  tokens to generate (default 128); stops early at end of generation\n"
            "      --chat         wrap the prompt in the model's chat template (one user turn)\n"
            "      --parse-special  read special-token text in the prompt (\"<|im_start|>\") as those\n"
            "                     tokens; without it the prompt is plain text and only --chat's\n"
            "                     template inserts control tokens\n"
            "      --threads T    worker threads (default: online cores)\n"
            "      --seed S       sampling seed (default 1)\n"
            "      --temp X       temperature, 0 = greedy (default 0)\n"
            "      --top-k K      keep the K most likely tokens (0 = off)\n"
            "      --top-p P      nucleus sampling mass (1 = off)\n"
            "      --ctx N        context length (default min(model, 2048))\n"
            ETOK_CLI_LEVERS_HELP
            "At the end, stderr shows token counts and tokens/s (measured, wall clock).\n"
            "exit codes: 0 ok, 1 failure, 2 usage, 3 bad model file\n");
}

static int parse_int(const char *s, const char *what, int lo, int hi, int *out) {
    etok_err e = {0};
    if (etok_parse_int(what, s, lo, hi, out, &e) == 0) return 0;
    fprintf(stderr, "etok generate: %s\n", e.msg);
    return -1;
}

static int parse_float(const char *s, const char *what, double lo, double hi, float *out) {
    etok_err e = {0};
    double v;
    if (etok_parse_double(what, s, ETOK_RANGE(lo, hi), &v, &e) == 0) {
        *out = (float)v;
        return 0;
    }
    fprintf(stderr, "etok generate: %s\n", e.msg);
    return -1;
}

/* Length of the longest prefix of buf[0..n) that ends at a UTF-8 character boundary. */
static size_t utf8_complete(const char *buf, size_t n) {
    size_t i = n;
    int back = 0;
    while (i > 0 && back < 4 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80) {
        i--;
        back++;
    }
    if (i == 0) return n; /* only continuation bytes: not UTF-8, pass through */
    unsigned char lead = (unsigned char)buf[i - 1];
    int need = lead < 0x80 ? 1 : (lead >> 5) == 6 ? 2 : (lead >> 4) == 14 ? 3 : (lead >> 3) == 30 ? 4 : 1;
    return (size_t)back + 1 >= (size_t)need ? n : i - 1;
}

int cmd_generate(int argc, char **argv) {
    const char *model_path = NULL;
    const char *prompt = NULL;
    int n_predict = 128, chat = 0, threads = 0, ctx = 0, seed = 1, parse_special = 0;
    etok_sampling samp = {0.0f, 0, 1.0f, 1};
    etok_cli_levers levers = {0};
    enum { O_CHAT = 1000, O_THREADS, O_SEED, O_TEMP, O_TOPK, O_TOPP, O_CTX, O_SPECIAL, O_WEIGHTS, O_KVTYPE, O_AWIN, O_ASINKS };
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},   {"prompt", required_argument, 0, 'p'},
                                         {"n-predict", required_argument, 0, 'n'}, {"chat", no_argument, 0, O_CHAT},
                                         {"threads", required_argument, 0, O_THREADS}, {"seed", required_argument, 0, O_SEED},
                                         {"temp", required_argument, 0, O_TEMP},    {"top-k", required_argument, 0, O_TOPK},
                                         {"top-p", required_argument, 0, O_TOPP},   {"ctx", required_argument, 0, O_CTX},
                                         {"parse-special", no_argument, 0, O_SPECIAL},
                                         {"weights", required_argument, 0, O_WEIGHTS}, {"kv-type", required_argument, 0, O_KVTYPE},
                                         {"attn-window", required_argument, 0, O_AWIN}, {"attn-sinks", required_argument, 0, O_ASINKS},
                                         {"help", no_argument, 0, 'h'},             {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:p:n:h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'p': prompt = optarg; break;
        case 'n': if (parse_int(optarg, "-n", 0, 1 << 20, &n_predict)) return ETOK_EXIT_USAGE; break;
        case O_CHAT: chat = 1; break;
        case O_SPECIAL: parse_special = 1; break;
        case O_THREADS: if (parse_int(optarg, "--threads", 0, 256, &threads)) return ETOK_EXIT_USAGE; break;
        case O_SEED: if (parse_int(optarg, "--seed", 0, 0x7fffffff, &seed)) return ETOK_EXIT_USAGE; break;
        case O_TEMP: if (parse_float(optarg, "--temp", 0, 100, &samp.temperature)) return ETOK_EXIT_USAGE; break;
        case O_TOPK: if (parse_int(optarg, "--top-k", 0, 1 << 24, &samp.top_k)) return ETOK_EXIT_USAGE; break;
        case O_TOPP: if (parse_float(optarg, "--top-p", 0, 1, &samp.top_p)) return ETOK_EXIT_USAGE; break;
        case O_CTX: if (parse_int(optarg, "--ctx", 16, 1 << 20, &ctx)) return ETOK_EXIT_USAGE; break;
        case O_WEIGHTS: if (etok_cli_lever_opt("generate", "weights", optarg, &levers)) return ETOK_EXIT_USAGE; break;
        case O_KVTYPE: if (etok_cli_lever_opt("generate", "kv-type", optarg, &levers)) return ETOK_EXIT_USAGE; break;
        case O_AWIN: if (etok_cli_lever_opt("generate", "attn-window", optarg, &levers)) return ETOK_EXIT_USAGE; break;
        case O_ASINKS: if (etok_cli_lever_opt("generate", "attn-sinks", optarg, &levers)) return ETOK_EXIT_USAGE; break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        default:
            fprintf(stderr, "etok generate: unknown or incomplete option '%s' (etok generate --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "etok generate: unexpected argument '%s'\n", argv[optind]);
        return ETOK_EXIT_USAGE;
    }
    if (etok_cli_levers_check("generate", &levers)) return ETOK_EXIT_USAGE;
    if (!prompt) {
        fprintf(stderr, "etok generate: -p PROMPT is required (see --help)\n");
        return ETOK_EXIT_USAGE;
    }
    samp.seed = (uint64_t)seed;
    etok_err err = {{0}, 0};
    char mbuf[4096];
    if (etok_model_resolve("generate", model_path, mbuf, sizeof mbuf, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return ETOK_EXIT_INPUT;
    }
    model_path = mbuf;
    etok_model *m = etok_model_load(model_path, &err);
    if (!m) {
        fprintf(stderr, "etok generate: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    if (etok_model_set_weights(m, levers.weights, &err)) {
        fprintf(stderr, "etok generate: %s\n", err.msg);
        etok_model_free(m);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    int rc = ETOK_EXIT_FAIL;
    etok_engine *e = NULL;
    char *text = NULL;
    int32_t *toks = NULL;
    etok_engine_opts eo = {.n_threads = threads, .max_seqs = 1, .ctx_len = ctx, .kv_bits = levers.kv_bits,
                           .attn_window = levers.attn_window, .attn_sinks = levers.attn_sinks};
    if (!(e = etok_engine_new(m, &eo, &err))) goto out;
    int ctx_len = ctx > 0 ? ctx : (etok_model_get_info(m)->ctx_max < 2048 ? etok_model_get_info(m)->ctx_max : 2048);
    if (!(toks = malloc((size_t)ctx_len * sizeof *toks))) {
        etok_errf(&err, "out of memory");
        goto out;
    }
    int n_prompt;
    if (chat) etok_cli_chat_note("generate", model_path, m);
    if (chat && !parse_special) { /* the template's markers are the only control tokens */
        const char *role = "user";
        n_prompt = etok_tokenize_chat(m, &role, &prompt, 1, 1, toks, ctx_len, &err);
        if (n_prompt > ctx_len) {
            etok_errc(&err, ETOK_EXIT_INPUT, "the prompt is %d tokens, more than the context of %d", n_prompt, ctx_len);
            goto out;
        }
    } else {
        if (chat) {
            if (!(text = etok_chat_format(m, NULL, prompt, &err))) goto out;
        } else if (!(text = strdup(prompt))) {
            etok_errf(&err, "out of memory");
            goto out;
        }
        n_prompt = etok_tokenize(m, text, 1, parse_special, toks, ctx_len, &err);
    }
    if (n_prompt < 0) goto out;
    if (n_prompt == 0) {
        etok_errc(&err, ETOK_EXIT_USAGE, "the prompt is empty after tokenization");
        goto out;
    }
    int id = etok_engine_add(e, toks, n_prompt, n_predict, &samp, &err);
    if (id < 0) goto out;
    char pending[64];
    size_t n_pending = 0;
    int n_gen = 0;
    double t0 = etok_mono_s(), t_first = 0, t_last = 0;
    for (;;) {
        etok_step_result r;
        if (etok_engine_step(e, &r, &err)) goto out;
        int done = r.n_events == 0;
        for (int k = 0; k < r.n_events; k++) {
            const etok_seq_event *ev = &r.events[k];
            if (ev->new_token >= 0) {
                if (n_gen++ == 0) t_first = r.t_end_s;
                t_last = r.t_end_s;
                size_t len;
                const char *piece = etok_token_piece(m, ev->new_token, &len);
                for (size_t i = 0; i < len; i++) {
                    if (n_pending == sizeof pending) { /* not UTF-8 after all: flush as is */
                        fwrite(pending, 1, n_pending, stdout);
                        n_pending = 0;
                    }
                    pending[n_pending++] = piece[i];
                }
                size_t ok = utf8_complete(pending, n_pending);
                fwrite(pending, 1, ok, stdout);
                memmove(pending, pending + ok, n_pending - ok);
                n_pending -= ok;
                fflush(stdout);
            }
            if (ev->finished) done = 1;
        }
        if (done) break;
    }
    fwrite(pending, 1, n_pending, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    double prefill_s = (n_gen > 0 ? t_first : etok_mono_s()) - t0, decode_s = t_last - t_first;
    fprintf(stderr, "\nprompt tokens: %d, generated tokens: %d\n", n_prompt, n_gen);
    fprintf(stderr, "prefill: %.1f tokens/s (%d tokens in %.3f s, includes the first sampled token; measured, wall clock)\n",
            prefill_s > 0 ? n_prompt / prefill_s : 0.0, n_prompt, prefill_s);
    if (n_gen > 1)
        fprintf(stderr, "decode: %.1f tokens/s (%d tokens in %.3f s; measured, wall clock)\n", (n_gen - 1) / decode_s,
                n_gen - 1, decode_s);
    else
        fprintf(stderr, "decode: n/a (fewer than 2 generated tokens)\n");
    fprintf(stderr, "threads: %d\n", threads > 0 ? threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    rc = ETOK_EXIT_OK;
out:
    if (rc != ETOK_EXIT_OK) {
        fprintf(stderr, "etok generate: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    free(toks);
    free(text);
    etok_engine_free(e);
    etok_model_free(m);
    return rc;
}
