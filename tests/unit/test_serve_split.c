/* test_serve_split.c — serve's per-request energy split (include/etok/serve.h): a step's
 * energy is divided across the requests in it in proportion to the tokens each put through
 * the forward pass. A long prompt and a short prompt are made to share one engine step, and
 * each must get energy in proportion to its prompt tokens (a split by request count, or any
 * other rule, gives them equal or otherwise wrong shares).
 *
 * How the two land in one step without racing: the synthetic energy source (10 W) can hold
 * the engine thread inside its idle-loop energy read. The test arms the hold, waits until the
 * engine is parked there, sends both requests, waits until /metrics shows both queued (the
 * scrape's own energy read passes through), then releases: the engine admits both at once
 * and prefills them in one step (both prompts fit the step budget of max_seqs +
 * prefill_chunk tokens). With max_tokens 1 each request finishes in that step, so its whole
 * energy is its share of it: E_long / E_short = P_long / P_short exactly (up to rounding). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "etok/serve.h"
#include "support/fake_energy.h"
#include "synth_gguf.h"

#define POWER_W 10.0

typedef struct {
    double t0;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int hold;   /* 1: the next reader parks until hold is 0 again */
    int parked; /* a reader is (or was) parked by the current hold */
} fake_energy;

static int fake_read(void *arg, etok_energy_reading *r) {
    fake_energy *f = arg;
    pthread_mutex_lock(&f->mu);
    if (f->hold && !f->parked) {
        f->parked = 1;
        pthread_cond_broadcast(&f->cv);
        while (f->hold) pthread_cond_wait(&f->cv, &f->mu);
    }
    pthread_mutex_unlock(&f->mu);
    fake_energy_reading(r, etok_mono_s() - f->t0, POWER_W);
    return 0;
}

typedef struct {
    char *p;
    size_t n;
} body;

static size_t sink(char *p, size_t s, size_t n, void *arg) {
    body *b = arg;
    char *q = realloc(b->p, b->n + s * n + 1);
    if (!q) return 0;
    b->p = q;
    memcpy(b->p + b->n, p, s * n);
    b->n += s * n;
    b->p[b->n] = '\0';
    return s * n;
}

static long http(int port, const char *path, const char *data, char **out) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    body b = {calloc(1, 1), 0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    if (data) curl_easy_setopt(c, CURLOPT_POSTFIELDS, data);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    *out = b.p;
    return status;
}

static double metric(const char *page, const char *series) {
    size_t n = strlen(series);
    for (const char *p = page; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, series, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return NAN;
}

typedef struct {
    int port;
    char req[4096];
    long status;
    char *resp;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    c->status = http(c->port, "/v1/chat/completions", c->req, &c->resp);
    return NULL;
}

static void usage_of(const client *c, double *energy_j, long *prompt_tokens) {
    if (c->status != 200) fail_msg("status %ld: %s", c->status, c->resp ? c->resp : "");
    json_error_t je;
    json_t *root = json_loads(c->resp, 0, &je), *u = json_object_get(root, "usage");
    if (!u) fail_msg("no usage in %s", c->resp);
    assert_true(json_is_number(json_object_get(u, "energy_j")));
    *energy_j = json_number_value(json_object_get(u, "energy_j"));
    *prompt_tokens = (long)json_integer_value(json_object_get(u, "prompt_tokens"));
    json_decref(root);
}

static void long_and_short_prompt_split_by_tokens(void **state) {
    (void)state;
    char model[128];
    snprintf(model, sizeof model, "/tmp/etok_serve_split_%d.gguf", (int)getpid());
    etok_tiny_gguf_opts go;
    etok_tiny_gguf_defaults(&go);
    go.ctx_len = 512;
    assert_int_equal(etok_test_write_tiny_gguf(model, &go), 0);
    fake_energy fe;
    memset(&fe, 0, sizeof fe);
    pthread_mutex_init(&fe.mu, NULL);
    pthread_cond_init(&fe.cv, NULL);
    fe.t0 = etok_mono_s();
    etok_serve_opts o = {.model_path = model, .model_id = "m", .port = 0, .max_seqs = 4, .n_threads = 2, .ctx_len = 512,
                         .max_tokens_limit = 8, .energy = {.read = fake_read, .arg = &fe}};
    etok_err err = {0};
    etok_server *s = etok_server_start(&o, &err);
    if (!s) fail_msg("serve start: %s", err.msg);
    const int port = etok_server_port(s);

    /* park the engine in its idle energy read */
    pthread_mutex_lock(&fe.mu);
    fe.hold = 1;
    fe.parked = 0;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 60;
    while (!fe.parked)
        if (pthread_cond_timedwait(&fe.cv, &fe.mu, &dl) != 0) break;
    int parked = fe.parked;
    pthread_mutex_unlock(&fe.mu);
    assert_true(parked);

    client cl[2];
    memset(cl, 0, sizeof cl);
    char longtext[2048] = ""; /* ~1 token per byte in the tiny vocabulary: 180 bytes stay inside
                                 one prefill chunk (256) and the context (512) */
    for (int i = 0; i < 4; i++) strcat(longtext, "the quick brown fox jumps over the lazy dog. ");
    for (int i = 0; i < 2; i++) {
        cl[i].port = port;
        snprintf(cl[i].req, sizeof cl[i].req,
                 "{\"model\":\"m\",\"max_tokens\":1,\"temperature\":0,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}]}",
                 i == 0 ? longtext : "hi");
    }
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, client_main, &cl[i]), 0);
    /* both queued behind the parked engine */
    double queued = 0;
    for (int k = 0; k < 600 && queued < 2; k++) {
        char *page = NULL;
        assert_int_equal(http(port, "/metrics", NULL, &page), 200);
        queued = metric(page, "etok_requests_queued");
        if (getenv("ETOK_TEST_VERBOSE") && k < 3) printf("scrape %d: queued %g in flight %g\n", k, queued, metric(page, "etok_requests_in_flight"));
        free(page);
        if (queued < 2) usleep(100 * 1000);
    }
    pthread_mutex_lock(&fe.mu);
    fe.hold = 0;
    pthread_cond_broadcast(&fe.cv);
    pthread_mutex_unlock(&fe.mu);
    for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
    assert_true(queued == 2);

    double el, es;
    long pl, ps;
    usage_of(&cl[0], &el, &pl);
    usage_of(&cl[1], &es, &ps);
    if (getenv("ETOK_TEST_VERBOSE"))
        printf("long: %ld tokens %.6f J, short: %ld tokens %.6f J\n", pl, el, ps, es);
    assert_true(pl > 5 * ps && ps > 0); /* a split by request count would be off by 5x or more */
    assert_true(el > 0 && es > 0);
    double want = (double)pl / (double)ps, got = el / es;
    if (fabs(got - want) > 1e-6 * want)
        fail_msg("energy ratio long/short %.9f, token ratio %.9f (%ld vs %ld tokens, %.9f vs %.9f J)", got, want, pl, ps,
                 el, es);
    for (int i = 0; i < 2; i++) free(cl[i].resp);
    etok_server_stop(s);
    pthread_mutex_destroy(&fe.mu);
    pthread_cond_destroy(&fe.cv);
    remove(model);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_ALL);
    const struct CMUnitTest tests[] = {cmocka_unit_test(long_and_short_prompt_split_by_tokens)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
