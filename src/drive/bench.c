/* bench.c — the `etok bench` load driver over the built-in engine (see include/etok/bench.h).
 * Owns: the closed/open-loop schedule, warm-up, idle baseline, per-request and per-token
 * timestamps, step recording, answer scoring. Does not own: the engine (src/engine), the
 * meters (src/meter), any metric (analyse/), output files (cli/cmd_bench.c, render/). */
#include "etok/bench.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "etok/endpoint.h"
#include "etok/meter.h"
#include "etok/stats.h"
#include "etok/stopseq.h"

typedef struct {
    int item;             /* eval item index */
    int seq;              /* engine sequence id, -1 when not admitted */
    int rec_index;        /* index into rec->requests, -1 for warm-up */
    int32_t *out_tokens;
    int n_out, cap_out;
    double t_send;        /* record time */
    /* items with stop strings: the generated text so far (token pieces) and the scan offset */
    char *text;
    size_t text_len, text_cap, stop_scan;
} flight;

static int item_budget(const etok_bench_opts *o, int item) {
    return o->item_max_tokens && item >= 0 ? o->item_max_tokens[item] : o->max_tokens;
}

/* Appends the token's text to f->text and looks for the item's stop strings (the incremental
 * search etok serve uses): 1 when one appeared (generation ends), 0 not, -1 out of memory. */
static int stop_seen(const etok_model *model, const etok_eval_item *it, flight *f, int32_t tok) {
    size_t plen = 0;
    const char *piece = etok_token_piece(model, tok, &plen);
    if (f->text_len + plen + 1 > f->text_cap) {
        size_t nc = f->text_cap ? f->text_cap : 256;
        while (nc < f->text_len + plen + 1) nc *= 2;
        char *nt = realloc(f->text, nc);
        if (!nt) return -1;
        f->text = nt;
        f->text_cap = nc;
    }
    if (plen) memcpy(f->text + f->text_len, piece, plen);
    f->text_len += plen;
    f->text[f->text_len] = '\0';
    size_t at = etok_stop_scan(it->stop, it->n_stop, it->stop_max_len, f->text, f->text_len, &f->stop_scan);
    return at < f->text_len;
}

/* The output text of a finished (or interrupted) request: the detokenized tokens, ended before
 * the item's earliest stop string. */
static char *final_text(const etok_model *model, const etok_eval_item *it, const flight *f) {
    char *text = etok_detokenize(model, f->out_tokens, f->n_out);
    if (text && it && it->n_stop) text[etok_stop_find(it->stop, it->n_stop, text, 0, strlen(text))] = '\0';
    return text;
}

typedef struct {
    int32_t *tokens;
    int n;
} prompt_toks;

const char *etok_bench_warmup_prompt(int k) {
    static const char *const w[ETOK_BENCH_WARMUP_PROMPTS] = {
        "etok warm-up request (not measured): name three primary colours.",
        "etok warm-up request (not measured): count from one to ten in words.",
        "etok warm-up request (not measured): say good morning in French, German and Spanish.",
        "etok warm-up request (not measured): what is the sum of two and two?",
    };
    return w[(k < 0 ? 0 : k) % ETOK_BENCH_WARMUP_PROMPTS];
}

/* One reading of the --energy-from exporter, appended to o->remote_traces at record time t:
 * a counter trace (J) per exporter series; a failed read is a fault, not a silent gap. */
static void remote_edge(const etok_bench_opts *o, double t) {
    if (!o->energy_from || !o->remote_traces) return;
    etok_record *rr = o->remote_traces;
    etok_energy_reading rd;
    memset(&rd, 0, sizeof rd);
    if (o->energy_from->read(o->energy_from->arg, &rd) != 0) {
        etok_record_add_fault(rr, t, "remote", "", "read_error",
                              "--energy-from: the exporter could not be read at the window edge t=%.3f s", t);
        return;
    }
    for (int i = 0; i < rd.n_domains; i++) {
        const etok_energy_domain *d = &rd.domains[i];
        char name[96];
        snprintf(name, sizeof name, "%.40s/%.50s", d->meter, d->domain);
        etok_trace *tr = NULL;
        for (size_t k = 0; k < rr->n_traces && !tr; k++)
            if (!strcmp(rr->traces[k].domain, name)) tr = &rr->traces[k];
        if (!tr) {
            tr = etok_record_add_trace(rr);
            if (!tr) return;
            snprintf(tr->meter, sizeof tr->meter, "remote");
            snprintf(tr->domain, sizeof tr->domain, "%s", name);
            tr->source = d->source;
            tr->boundary = d->boundary;
            snprintf(tr->raw_unit, sizeof tr->raw_unit, "J");
            tr->scale_to_si = 1.0;
            tr->resolution_si = 1e-3; /* the exporter's text carries millijoules at least */
            tr->summable = d->summable;
        }
        etok_trace_add_sample(tr, t, d->energy_j);
    }
}

/* A window edge: a reading of every local meter now (etok_meters_mark) and of the remote
 * exporter (--energy-from), then the record time of the edge, so that no edge falls up to one
 * sampling period away from a reading. Remote readings are stamped at the edge: the exporter's
 * value is as fresh as its own sampler. */
static double edge_s(etok_meter_set *ms, const etok_bench_opts *o) {
    (void)etok_meters_mark(ms, NULL);
    double t = etok_meters_now(ms);
    remote_edge(o, t);
    return t;
}

int etok_bench_merge_remote(etok_record *rec, etok_record *remote, etok_err *err) {
    int any = 0;
    for (size_t k = 0; k < remote->n_traces; k++) any |= remote->traces[k].n_samples > 0;
    if (any)
        for (size_t i = 0; i < rec->n_traces; i++) rec->traces[i].summable = 0;
    int moved = 0;
    for (size_t k = 0; k < remote->n_traces; k++) {
        etok_trace *src = &remote->traces[k];
        etok_trace *dst = etok_record_add_trace(rec);
        if (!dst) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
        *dst = *src; /* the samples move with it */
        src->samples = NULL;
        src->n_samples = 0;
        moved++;
    }
    for (size_t k = 0; k < remote->n_faults; k++) {
        const etok_fault *f = &remote->faults[k];
        if (!etok_record_add_fault(rec, f->t_s, f->meter, f->domain, f->kind, "%s", f->message))
            return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
    }
    return moved;
}

static int got_signal(int fd) {
    if (fd < 0) return 0;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 0) > 0) {
        struct signalfd_siginfo si;
        if (read(fd, &si, sizeof si) == (ssize_t)sizeof si) return 1;
    }
    return 0;
}

static void progress_line(const etok_bench_opts *o, etok_meter_set *ms, int done, int total, long long tokens,
                          double elapsed) {
    etok_energy_snapshot snap;
    memset(&snap, 0, sizeof snap);
    int have = ms && etok_meters_snapshot(ms, &snap) == 0;
    char bar[21];
    int fill = total > 0 ? (int)(20.0 * done / total) : (int)fmod(elapsed * 4, 20);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = 0;
    (void)o;
    if (total > 0)
        fprintf(stderr, "\r[%s] %d/%d requests  %6.1f tok/s", bar, done, total, elapsed > 0 ? tokens / elapsed : 0.0);
    else
        fprintf(stderr, "\r[%s] %d requests  %6.1f tok/s", bar, done, elapsed > 0 ? tokens / elapsed : 0.0);
    if (have) fprintf(stderr, "  %6.1f W (%s)", snap.power_w, etok_source_name(snap.source));
    fprintf(stderr, "   ");
    fflush(stderr);
}

int etok_bench_drive(etok_model *model, etok_engine *engine, const etok_evalset *ev, const etok_bench_opts *o,
                     etok_meter_set *ms, etok_record *rec, etok_err *err) {
    int rc = -1;
    size_t n_items = ev->n_items;
    prompt_toks *pt = calloc(n_items, sizeof *pt);
    prompt_toks wt[ETOK_BENCH_WARMUP_PROMPTS] = {{0}};
    int slots = o->rate_rps > 0 ? (o->max_slots > 0 ? o->max_slots : 8) : (o->concurrency > 0 ? o->concurrency : 1);
    flight *fl = calloc((size_t)slots, sizeof *fl);
    int *order = calloc(n_items, sizeof *order);
    if (!pt || !fl || !order) {
        etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
        goto out;
    }
    const etok_model_info *mi = etok_model_get_info(model);
    int ctx = mi->ctx_max > 0 && mi->ctx_max < 2048 ? mi->ctx_max : 2048; /* the engine's default KV length */
    /* Tokenize every prompt through the model's chat template, up front. */
    for (size_t i = 0; i < n_items; i++) {
        /* the eval item is plain text: only the template's markers are control tokens */
        const char *roles[2] = {"system", "user"}, *contents[2] = {o->system_prompt, ev->items[i].prompt};
        int first = o->system_prompt ? 0 : 1, cap = ctx + 1;
        pt[i].tokens = malloc((size_t)cap * sizeof(int32_t));
        if (!pt[i].tokens) {
            etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
            goto out;
        }
        pt[i].n = etok_tokenize_chat(model, roles + first, contents + first, 2 - first, 1, pt[i].tokens, cap, err);
        if (pt[i].n < 0) goto out;
        int mt = ev->items[i].max_tokens > 0 ? ev->items[i].max_tokens : item_budget(o, (int)i);
        if (pt[i].n + mt > ctx) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": prompt of %d tokens + %d new tokens exceeds the context (%d)",
                      ev->path, ev->items[i].line, ev->items[i].id, pt[i].n, mt, ctx);
            goto out;
        }
    }
    /* Warm-up prompts: outside the eval set, the same as --endpoint sends. */
    for (int k = 0; k < ETOK_BENCH_WARMUP_PROMPTS && k < o->warmup_requests; k++) {
        const char *roles[2] = {"system", "user"}, *contents[2] = {o->system_prompt, etok_bench_warmup_prompt(k)};
        int first = o->system_prompt ? 0 : 1, cap = ctx + 1;
        wt[k].tokens = malloc((size_t)cap * sizeof(int32_t));
        if (!wt[k].tokens) {
            etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
            goto out;
        }
        wt[k].n = etok_tokenize_chat(model, roles + first, contents + first, 2 - first, 1, wt[k].tokens, cap, err);
        if (wt[k].n < 0) goto out;
        if (wt[k].n + o->max_tokens > ctx) {
            etok_errc(err, ETOK_EXIT_INPUT, "bench: warm-up prompt of %d tokens + %d new tokens exceeds the context (%d)",
                      wt[k].n, o->max_tokens, ctx);
            goto out;
        }
    }
    /* Item order: a seeded shuffle, so a short run still samples the whole set. */
    etok_rng rng;
    etok_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < n_items; i++) order[i] = (int)i;
    for (size_t i = n_items; i > 1; i--) {
        size_t j = (size_t)(etok_rng_u64(&rng) % i);
        int t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    for (int s = 0; s < slots; s++) {
        fl[s].seq = -1;
        fl[s].item = -1;
    }
    double t0 = etok_meters_t0_mono_s(ms);
    etok_sampling samp = {.temperature = 0, .top_k = 0, .top_p = 1, .seed = o->seed};
    int interrupted = 0;

    /* ---- idle baseline ---- */
    if (o->idle_s > 0) {
        if (o->progress) fprintf(stderr, "etok bench: idle baseline %g s (--idle 0 skips it)\n", o->idle_s);
        rec->idle_start_s = edge_s(ms, o);
        interrupted = etok_wait_or_signal(o->sig_fd, o->idle_s);
        rec->idle_end_s = edge_s(ms, o);
    }

    /* ---- warm-up then the measured window: one scheduler, two phases ---- */
    int phase_warm = o->warmup_requests > 0;
    int issued = 0, done = 0, warm_issued = 0, warm_done = 0;
    long long tokens_window = 0;
    size_t next_item = 0;
    double window_t0 = 0, next_arrival = 0, deadline = 0;
    int open_loop = o->rate_rps > 0;
    /* open-loop arrivals waiting for a slot: send times (record time) */
    double *queue = NULL;
    int q_n = 0, q_cap = 0;
    double last_progress = 0;

    if (!interrupted && !phase_warm) {
        rec->window_start_s = edge_s(ms, o);
        window_t0 = rec->window_start_s;
        next_arrival = window_t0;
        deadline = o->duration_s > 0 ? window_t0 + o->duration_s : INFINITY;
    }
    while (!interrupted) {
        if (got_signal(o->sig_fd)) {
            interrupted = 1;
            break;
        }
        double now = etok_mono_s() - t0;
        int total_target = o->requests > 0 ? o->requests : 0;
        int want_more;
        if (phase_warm) want_more = warm_issued < o->warmup_requests;
        else want_more = (total_target > 0 ? issued + q_n < total_target : 1) && now < deadline;

        /* open loop: move due arrivals into the queue */
        if (!phase_warm && open_loop) {
            while (want_more && next_arrival <= now) {
                if (q_n == q_cap) {
                    int nc = q_cap ? q_cap * 2 : 64;
                    double *nq = realloc(queue, (size_t)nc * sizeof *nq);
                    if (!nq) {
                        etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                        goto out_free_queue;
                    }
                    queue = nq;
                    q_cap = nc;
                }
                queue[q_n++] = next_arrival;
                next_arrival += etok_rng_exponential(&rng, o->rate_rps);
                want_more = (total_target > 0 ? issued + q_n < total_target : 1) && next_arrival < deadline;
            }
        }
        /* admit into free slots */
        for (int s = 0; s < slots; s++) {
            if (fl[s].seq >= 0) continue;
            double t_send;
            if (phase_warm) {
                if (warm_issued >= o->warmup_requests) break;
                t_send = now;
            } else if (open_loop) {
                if (q_n == 0) break;
                t_send = queue[0];
                memmove(queue, queue + 1, (size_t)(q_n - 1) * sizeof *queue);
                q_n--;
            } else {
                if (!want_more) break;
                t_send = etok_mono_s() - t0;
            }
            int item = -1, seq;
            if (phase_warm) {
                const prompt_toks *w = &wt[warm_issued % ETOK_BENCH_WARMUP_PROMPTS];
                seq = etok_engine_add(engine, w->tokens, w->n, o->max_tokens, &samp, err);
            } else {
                item = order[next_item % n_items];
                next_item++;
                const etok_eval_item *it = &ev->items[item];
                seq = etok_engine_add(engine, pt[item].tokens, pt[item].n, it->max_tokens > 0 ? it->max_tokens : item_budget(o, item),
                                      &samp, err);
                if (seq >= 0 && it->exact_len) etok_engine_set_ignore_eos(engine, seq, 1); /* the requested length exactly */
            }
            if (seq < 0) goto out_free_queue;
            fl[s].seq = seq;
            fl[s].item = item;
            fl[s].n_out = 0;
            fl[s].text_len = fl[s].stop_scan = 0;
            fl[s].t_send = t_send;
            fl[s].rec_index = -1;
            if (phase_warm) {
                warm_issued++;
            } else {
                etok_request *q = etok_record_add_request(rec);
                if (!q) {
                    etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                    goto out_free_queue;
                }
                fl[s].rec_index = (int)(rec->n_requests - 1);
                snprintf(q->id, sizeof q->id, "%s#%d", ev->items[item].id, issued);
                q->t_send_s = t_send;
                q->t_first_token_s = -1;
                q->t_done_s = -1;
                q->tokens_in = pt[item].n;
                q->energy_j = -1;
                snprintf(q->token_count_source, sizeof q->token_count_source, "engine");
                issued++;
                if (!open_loop) {
                    total_target = o->requests > 0 ? o->requests : 0;
                    want_more = (total_target > 0 ? issued < total_target : 1) && now < deadline;
                }
            }
        }
        int active = etok_engine_active(engine);
        if (active == 0) {
            if (phase_warm) {
                if (warm_done >= o->warmup_requests) {
                    phase_warm = 0;
                    rec->window_start_s = edge_s(ms, o);
                    window_t0 = rec->window_start_s;
                    next_arrival = window_t0;
                    deadline = o->duration_s > 0 ? window_t0 + o->duration_s : INFINITY;
                    continue;
                }
            } else if (open_loop && (want_more || q_n > 0)) {
                /* idle until the next arrival (or a signal) */
                double wait = next_arrival - (etok_mono_s() - t0);
                if (wait > 0 && etok_wait_or_signal(o->sig_fd, fmin(wait, 0.25))) interrupted = 1;
                continue;
            } else {
                break; /* all issued requests done and nothing more to send */
            }
        }
        etok_step_result sr;
        if (etok_engine_step(engine, &sr, err)) goto out_free_queue;
        double ts = sr.t_start_s - t0, te = sr.t_end_s - t0;
        if (!phase_warm) {
            etok_step *st = etok_record_add_step(rec);
            if (!st) {
                etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                goto out_free_queue;
            }
            st->t_start_s = ts;
            st->t_end_s = te;
            st->prefill_tokens = sr.prefill_tokens;
            st->decode_tokens = sr.decode_tokens;
            st->flops = sr.flops;
            st->bytes = sr.bytes;
        }
        for (int k = 0; k < sr.n_events; k++) {
            const etok_seq_event *evn = &sr.events[k];
            int s = 0;
            while (s < slots && fl[s].seq != evn->seq_id) s++;
            if (s == slots) continue;
            flight *f = &fl[s];
            etok_request *q = f->rec_index >= 0 ? &rec->requests[f->rec_index] : NULL;
            if (q && o->shares &&
                etok_step_shares_add(o->shares, rec->n_steps - 1, (size_t)f->rec_index,
                                     evn->prefill_tokens > 0 ? evn->prefill_tokens : 1)) {
                etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                goto out_free_queue;
            }
            int is_output = evn->new_token >= 0 && !(evn->finished && evn->finished_by_eog);
            int stopped = 0;
            if (is_output) {
                if (f->n_out == f->cap_out) {
                    int nc = f->cap_out ? f->cap_out * 2 : 64;
                    int32_t *nt = realloc(f->out_tokens, (size_t)nc * sizeof *nt);
                    if (!nt) {
                        etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                        goto out_free_queue;
                    }
                    f->out_tokens = nt;
                    f->cap_out = nc;
                }
                f->out_tokens[f->n_out++] = evn->new_token;
                if (q) {
                    double *tt = realloc(q->token_times_s, (q->n_token_times + 1) * sizeof *tt);
                    if (!tt) {
                        etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                        goto out_free_queue;
                    }
                    q->token_times_s = tt;
                    q->token_times_s[q->n_token_times++] = te;
                    if (q->t_first_token_s < 0) q->t_first_token_s = te;
                    q->tokens_out = f->n_out;
                    tokens_window++;
                }
                if (f->item >= 0 && ev->items[f->item].n_stop &&
                    (stopped = stop_seen(model, &ev->items[f->item], f, evn->new_token)) < 0) {
                    etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
                    goto out_free_queue;
                }
            }
            if (evn->finished || stopped) {
                char *text = final_text(model, f->item >= 0 ? &ev->items[f->item] : NULL, f);
                if (q) {
                    q->t_done_s = te;
                    q->ok = 1;
                    q->output = text;
                    const etok_eval_item *fi = &ev->items[f->item];
                    if (fi->exact_len && o->lengths) {
                        int want = fi->max_tokens > 0 ? fi->max_tokens : o->max_tokens;
                        o->lengths->checked++;
                        if (f->n_out == want) o->lengths->exact++;
                        else if (f->n_out < want) o->lengths->shorter++;
                        else o->lengths->longer++;
                    }
                    if (!ev->items[f->item].unscored) { /* serving datasets: quality not measured */
                        q->quality_checked = 1;
                        q->quality_pass = etok_eval_check(&ev->items[f->item], text ? text : "");
                    }
                    done++;
                } else {
                    free(text);
                    warm_done++;
                }
                etok_engine_remove(engine, f->seq);
                f->seq = -1;
                f->n_out = 0;
            }
        }
        if (o->progress && !phase_warm) {
            double el = te - window_t0;
            if (te - last_progress > 0.25) {
                progress_line(o, ms, done, o->requests, tokens_window, el);
                last_progress = te;
            }
        }
    }
    rec->window_end_s = edge_s(ms, o);
    if (o->progress) fprintf(stderr, "\r%100s\r", "");
    if (!rec->window_start_s && !rec->window_end_s) rec->window_start_s = rec->window_end_s;
    if (interrupted) {
        rec->partial = 1;
        snprintf(rec->stop_reason, sizeof rec->stop_reason, "interrupted");
        if (phase_warm || rec->window_start_s == 0) rec->window_start_s = rec->window_end_s;
        /* in-flight requests are kept, marked as not completed */
        for (int s = 0; s < slots; s++) {
            if (fl[s].seq < 0) continue;
            if (fl[s].rec_index >= 0) {
                etok_request *q = &rec->requests[fl[s].rec_index];
                q->ok = 0;
                snprintf(q->error, sizeof q->error, "interrupted before completion (%d tokens generated)", fl[s].n_out);
                q->output = final_text(model, fl[s].item >= 0 ? &ev->items[fl[s].item] : NULL, &fl[s]);
            }
            etok_engine_remove(engine, fl[s].seq);
            fl[s].seq = -1;
        }
        for (int i = 0; i < q_n; i++) { /* arrived but never admitted */
            etok_request *q = etok_record_add_request(rec);
            if (!q) break;
            snprintf(q->id, sizeof q->id, "queued#%d", i);
            q->t_send_s = queue[i];
            q->t_first_token_s = q->t_done_s = -1;
            q->energy_j = -1;
            snprintf(q->error, sizeof q->error, "interrupted while queued");
            snprintf(q->token_count_source, sizeof q->token_count_source, "engine");
        }
    }
    rec->tokens_known = 1;
    rec->tokens_in = rec->tokens_out = 0;
    for (size_t i = 0; i < rec->n_requests; i++) {
        rec->tokens_in += rec->requests[i].tokens_in;
        rec->tokens_out += rec->requests[i].tokens_out;
    }
    rc = 0;
out_free_queue:
    free(queue);
out:
    if (pt)
        for (size_t i = 0; i < n_items; i++) free(pt[i].tokens);
    free(pt);
    for (int k = 0; k < ETOK_BENCH_WARMUP_PROMPTS; k++) free(wt[k].tokens);
    if (fl)
        for (int s = 0; s < slots; s++) {
            free(fl[s].out_tokens);
            free(fl[s].text);
        }
    free(fl);
    free(order);
    return rc;
}

/* ---- the endpoint path ------------------------------------------------------------------ */

typedef struct {
    etok_meter_set *ms;
    int sig_fd;
    volatile int *stop;
    const etok_bench_opts *o;
    int total;
    double t_begin;
} ep_ctx;

static int in_window_req(const etok_record *r, const etok_request *q) {
    return q->t_send_s < 0 || (q->t_send_s >= r->window_start_s - 1e-9 && q->t_send_s <= r->window_end_s + 1e-9);
}

static double ep_clock(void *arg) { return etok_meters_now(((ep_ctx *)arg)->ms); }

static void ep_progress(const etok_endpoint_progress *p, void *arg) {
    ep_ctx *c = arg;
    if (got_signal(c->sig_fd)) *c->stop = 1;
    if (c->o->progress && c->total >= 0)
        progress_line(c->o, c->ms, p->done, c->total, p->tokens_out, p->t_s - c->t_begin);
}

int etok_bench_drive_endpoint(const etok_bench_endpoint *ep, const etok_evalset *ev, const etok_bench_opts *o,
                              etok_meter_set *ms, etok_record *rec, etok_err *err) {
    size_t n = ev->n_items;
    const char **prompts = calloc(n, sizeof *prompts);
    int *order = calloc(n, sizeof *order);
    if (!prompts || !order) {
        free(prompts);
        free(order);
        return etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
    }
    etok_rng rng;
    etok_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < n; i++) order[i] = (int)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(etok_rng_u64(&rng) % i);
        int t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    int *mt = calloc(n, sizeof *mt), exact = 0;
    etok_endpoint_stop *ps = calloc(n, sizeof *ps);
    if (!mt || !ps) {
        free(prompts);
        free(order);
        free(mt);
        free(ps);
        return etok_errc(err, ETOK_EXIT_FAIL, "bench: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const etok_eval_item *it = &ev->items[order[i]];
        prompts[i] = it->prompt;
        mt[i] = it->max_tokens > 0 ? it->max_tokens : o->max_tokens;
        exact |= it->exact_len;
        /* the item's stop strings go in the request ("stop", at most ETOK_STOP_MAX: evalset.c
         * refuses more, as OpenAI's API does) */
        for (int k = 0; k < it->n_stop && k < ETOK_STOP_MAX; k++) ps[i].s[k] = it->stop[k];
        ps[i].n = it->n_stop < ETOK_STOP_MAX ? it->n_stop : ETOK_STOP_MAX;
    }
    volatile int stop = 0;
    ep_ctx ctx = {.ms = ms, .sig_fd = o->sig_fd, .stop = &stop, .o = o, .total = o->requests};
    etok_endpoint_opts eo = {
        .url = ep->url,
        .api = ep->completions_api ? ETOK_API_COMPLETIONS : ETOK_API_CHAT,
        .model = ep->model,
        .api_key = ep->api_key,
        .concurrency = o->rate_rps > 0 ? 0 : o->concurrency,
        .rate_rps = o->rate_rps,
        .seed = o->seed,
        .duration_s = o->duration_s,
        .request_timeout_s = ep->request_timeout_s,
        .max_tokens = o->max_tokens,
        .prompt_max_tokens = mt,
        .prompt_stop = ps,
        .ignore_eos = exact,
        .keep_output = 1,
        .clock = ep_clock,
        .clock_arg = &ctx,
    };
    int rc = -1;
    if (o->idle_s > 0) {
        rec->idle_start_s = edge_s(ms, o);
        if (etok_wait_or_signal(o->sig_fd, o->idle_s)) stop = 1;
        rec->idle_end_s = edge_s(ms, o);
    }
    if (!stop && o->warmup_requests > 0) {
        etok_record warm;
        etok_record_init(&warm);
        etok_endpoint_opts wo = eo;
        wo.n_requests = o->warmup_requests;
        wo.duration_s = 0;
        wo.rate_rps = 0;
        wo.concurrency = o->concurrency > 0 ? o->concurrency : 1;
        ctx.total = -1;
        ctx.t_begin = etok_meters_now(ms);
        const char *wp[ETOK_BENCH_WARMUP_PROMPTS];
        for (int k = 0; k < ETOK_BENCH_WARMUP_PROMPTS; k++) wp[k] = etok_bench_warmup_prompt(k);
        int wrc = etok_endpoint_run(&wo, wp, ETOK_BENCH_WARMUP_PROMPTS, &warm, &stop, ep_progress, &ctx, err);
        etok_record_free(&warm);
        if (wrc) goto out;
        ctx.total = o->requests;
    }
    rec->window_start_s = edge_s(ms, o);
    ctx.t_begin = rec->window_start_s;
    eo.n_requests = o->requests;
    if (!stop && etok_endpoint_run(&eo, prompts, (int)n, rec, &stop, ep_progress, &ctx, err)) goto out;
    rec->window_end_s = edge_s(ms, o);
    if (o->progress) fprintf(stderr, "\r%100s\r", "");
    if (stop) {
        rec->partial = 1;
        snprintf(rec->stop_reason, sizeof rec->stop_reason, "interrupted");
    }
    /* score: request i sent prompts[i % n] */
    rec->tokens_known = 1;
    rec->tokens_in = rec->tokens_out = 0;
    for (size_t i = 0; i < rec->n_requests; i++) {
        etok_request *q = &rec->requests[i];
        int k = -1;
        if (sscanf(q->id, "req-%d", &k) == 1 && k >= 0) {
            const etok_eval_item *it = &ev->items[order[(size_t)k % n]];
            char id[64];
            snprintf(id, sizeof id, "%.40s#%d", it->id, k);
            snprintf(q->id, sizeof q->id, "%s", id);
            if (q->ok && it->exact_len && o->lengths && in_window_req(rec, q)) {
                int want = it->max_tokens > 0 ? it->max_tokens : o->max_tokens;
                o->lengths->checked++;
                if (q->tokens_out == want) o->lengths->exact++;
                else if (q->tokens_out < want) o->lengths->shorter++;
                else o->lengths->longer++;
            }
            if (q->ok && it->n_stop) {
                /* etok's own stop handling is the check: a server that ignored "stop" ran past it */
                if (o->stop_sent) (*o->stop_sent)++;
                if (q->output) {
                    size_t len = strlen(q->output), at = etok_stop_find(it->stop, it->n_stop, q->output, 0, len);
                    if (at < len) {
                        q->output[at] = '\0';
                        if (o->stop_ran_past) (*o->stop_ran_past)++;
                    }
                }
            }
            if (q->ok && !it->unscored) {
                q->quality_checked = 1;
                q->quality_pass = etok_eval_check(it, q->output ? q->output : "");
            }
        }
        rec->tokens_in += q->tokens_in;
        rec->tokens_out += q->tokens_out;
    }
    rc = 0;
out:
    free(prompts);
    free(order);
    free(mt);
    free(ps);
    return rc;
}
