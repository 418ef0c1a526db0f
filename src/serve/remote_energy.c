/* remote_energy.c — energy read from another node's etok exporter over HTTP (`--energy-from`).
 *
 * Owns: fetching a /metrics page (libcurl, synchronous, bounded time and size) and reading the
 * etok energy series out of Prometheus text. Does not own: what the caller does with the
 * counters (bench records them at window edges), or local meters. */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/serve.h"
#include "etok/parse.h"

#define MAX_PAGE (4u << 20)

struct etok_remote_energy {
    char url[1024];
    double timeout_s;
    double t0_mono;
};

/* the value of label `name` in a "{a="x",b="y"}" block; "" when absent */
static void label_value(const char *labels, const char *name, char *out, size_t cap) {
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = labels; p && *p && *p != '}'; p++) {
        if ((p == labels || p[-1] == '{' || p[-1] == ',') && !strncmp(p, name, n) && p[n] == '=' && p[n + 1] == '"') {
            const char *v = p + n + 2;
            size_t k = 0;
            while (*v && *v != '"' && k + 1 < cap) {
                if (*v == '\\' && v[1]) v++;
                out[k++] = *v++;
            }
            out[k] = '\0';
            return;
        }
    }
}

int etok_remote_energy_parse(const char *text, etok_energy_reading *out, etok_err *err) {
    memset(out, 0, sizeof *out);
    out->source = ETOK_SOURCE_COUNTER;
    int found = 0, line_no = 0;
    for (const char *p = text; p && *p;) {
        line_no++;
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[2048];
        if (len >= sizeof line) len = sizeof line - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        p = e ? e + 1 : NULL;
        if (line[0] == '#' || !line[0]) continue;
        int is_energy = !strncmp(line, "etok_energy_joules_total", 24) && (line[24] == '{' || line[24] == ' ');
        int is_power = !strncmp(line, "etok_power_watts", 16) && (line[16] == '{' || line[16] == ' ');
        int is_unc = !strncmp(line, "etok_energy_uncertainty_joules", 30) && (line[30] == '{' || line[30] == ' ');
        if (!is_energy && !is_power && !is_unc) continue;
        char *labels = strchr(line, '{');
        char *close = labels ? strrchr(line, '}') : NULL;
        char *val = close ? close + 1 : strchr(line, ' ');
        char *end;
        double v = val ? strtod(val, &end) : NAN;
        if (!val || end == val || !isfinite(v))
            return etok_errc(err, ETOK_EXIT_INPUT, "remote metrics line %d: cannot read the value of '%.80s'", line_no, line);
        /* energy, power and uncertainty are never negative; a negative one would give negative J/token */
        if (v < 0 || (is_power && v > ETOK_POWER_MAX_W))
            return etok_errc(err, ETOK_EXIT_INPUT, "remote metrics line %d: value %g out of range in '%.80s'", line_no, v, line);
        if (is_power) {
            out->power_w += v;
            continue;
        }
        if (is_unc) {
            out->uncertainty_j += v;
            continue;
        }
        if (out->n_domains >= ETOK_ENERGY_MAX_DOMAINS)
            return etok_errc(err, ETOK_EXIT_INPUT, "remote metrics: more than %d energy series", ETOK_ENERGY_MAX_DOMAINS);
        etok_energy_domain *d = &out->domains[out->n_domains++];
        char src[32], bnd[32];
        label_value(labels, "meter", d->meter, sizeof d->meter);
        label_value(labels, "domain", d->domain, sizeof d->domain);
        label_value(labels, "source", src, sizeof src);
        label_value(labels, "boundary", bnd, sizeof bnd);
        if (etok_source_parse(src, &d->source) != 0) d->source = ETOK_SOURCE_ESTIMATE; /* unknown: the weakest claim */
        if (etok_boundary_parse(bnd, &d->boundary) != 0) d->boundary = ETOK_BOUNDARY_DEVICE;
        d->summable = 1;
        d->energy_j = v;
        out->total_j += v;
        if (d->source > out->source) out->source = d->source;
        if (!found) out->boundary = d->boundary;
        else if (d->boundary != out->boundary)
            return etok_errc(err, ETOK_EXIT_INPUT,
                             "remote metrics: energy series at different boundaries (%s and %s) cannot be summed",
                             etok_boundary_name(out->boundary), etok_boundary_name(d->boundary));
        found = 1;
    }
    if (!found) return etok_errc(err, ETOK_EXIT_INPUT, "remote metrics: no etok_energy_joules_total series (is it an etok exporter?)");
    return 0;
}

typedef struct {
    char *p;
    size_t n;
    int too_big;
} page;

static size_t sink(char *d, size_t s, size_t n, void *arg) {
    page *pg = arg;
    size_t k = s * n;
    if (pg->n + k > MAX_PAGE) {
        pg->too_big = 1;
        return 0;
    }
    char *np = realloc(pg->p, pg->n + k + 1);
    if (!np) return 0;
    pg->p = np;
    memcpy(pg->p + pg->n, d, k);
    pg->n += k;
    pg->p[pg->n] = '\0';
    return k;
}

static int fetch(const etok_remote_energy *r, char **text, etok_err *err) {
    page pg = {0};
    CURL *c = curl_easy_init();
    if (!c) return etok_errf(err, "remote energy: libcurl could not start");
    curl_easy_setopt(c, CURLOPT_URL, r->url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &pg);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(r->timeout_s * 1000));
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK || status != 200) {
        free(pg.p);
        if (pg.too_big) return etok_errf(err, "remote energy: %s: page larger than %u bytes", r->url, MAX_PAGE);
        if (rc != CURLE_OK) return etok_errf(err, "remote energy: %s: %s", r->url, curl_easy_strerror(rc));
        return etok_errf(err, "remote energy: %s: HTTP %ld", r->url, status);
    }
    *text = pg.p ? pg.p : strdup("");
    return 0;
}

static int remote_read(void *arg, etok_energy_reading *out) {
    etok_remote_energy *r = arg;
    char *text = NULL;
    etok_err err = {0};
    double t = etok_mono_s();
    if (fetch(r, &text, &err) != 0) return -1;
    int rc = etok_remote_energy_parse(text, out, &err);
    free(text);
    out->t_s = (t + etok_mono_s()) / 2 - r->t0_mono; /* middle of the request */
    return rc;
}

etok_remote_energy *etok_remote_energy_open(const char *metrics_url, double timeout_s, etok_energy_source *out,
                                            etok_err *err) {
    if (!metrics_url || (strncmp(metrics_url, "http://", 7) && strncmp(metrics_url, "https://", 8))) {
        etok_errc(err, ETOK_EXIT_USAGE, "--energy-from '%s': expected an http:// URL of an etok exporter's /metrics",
                  metrics_url ? metrics_url : "");
        return NULL;
    }
    etok_remote_energy *r = calloc(1, sizeof *r);
    if (!r) {
        etok_errf(err, "remote energy: out of memory");
        return NULL;
    }
    size_t n = strlen(metrics_url);
    int has_path = strstr(metrics_url + 8, "/") != NULL;
    snprintf(r->url, sizeof r->url, "%.*s%s", (int)(n > 1000 ? 1000 : n), metrics_url, has_path ? "" : "/metrics");
    r->timeout_s = timeout_s > 0 ? timeout_s : 5;
    r->t0_mono = etok_mono_s();
    /* one read now, so a wrong URL fails at start, not at the window's end */
    char *text = NULL;
    etok_energy_reading probe;
    if (fetch(r, &text, err) != 0 || etok_remote_energy_parse(text, &probe, err) != 0) {
        free(text);
        free(r);
        return NULL;
    }
    free(text);
    out->read = remote_read;
    out->arg = r;
    return r;
}

void etok_remote_energy_close(etok_remote_energy *r) { free(r); }
