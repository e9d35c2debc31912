/* gateway/metrics.c - the Prometheus registry and its HTTP endpoint.
 *
 * The registry is process-global on purpose: a configuration reload builds a
 * new server and new routes, and counters must not restart with them.
 * Updates come from every worker loop's thread (gateway/workers.c); render
 * and the HTTP endpoint run on worker 0's. Two kinds of update:
 *  - per datagram (bytes, retransmissions) and per transfer (active, the
 *    per-worker transfer count): each worker adds to its own slot, a
 *    cache line of its own, with relaxed atomic stores only it makes;
 *    render sums the slots with relaxed loads. No lock, no shared line.
 *  - labelled families (started, finished, refused, latency, cache
 *    events): one mutex, taken once per request-level event, never per
 *    datagram; render takes it too while it walks the series.
 *
 * A labelled family interns each label's values (at most
 * TG_METRICS_MAX_VALUES, later ones become "other") and keeps its series
 * sorted by label values, so the exposition is stable and a lookup only
 * compares small integers once the strings are interned.
 *
 * A little under 1000 lines: the registry and, below it, its small HTTP
 * endpoint (from struct msrv on), which also serves the live transfers
 * view (GET / and /transfers; the page is gateway/live_page.c, the JSON
 * comes from the callback gateway/server.c sets). The endpoint is the
 * part to move out when either grows. */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftpgw/common.h"
#include "tftpgw/json.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/sockaddr.h"

#define MAX_LABELS 3
#define OTHER_IDX TG_METRICS_MAX_VALUES
#define OTHER "other"

/* ------------------------------------------------------------ registry */

/* Upper bounds of the latency histogram in seconds, 1 ms to 30 s: a file
 * backend answers in well under a millisecond or two, an HTTP or S3 origin
 * in tens to hundreds of milliseconds, and a stalled one hits the session's
 * own guard (at least 5 s) or curl's stall timeout (10 s by default). */
static const double bucket_le[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                   0.25,  0.5,    1,     2.5,  5,     10,   30};
static const char *const bucket_str[] = {"0.001", "0.0025", "0.005", "0.01", "0.025",
                                         "0.05",  "0.1",    "0.25",  "0.5",  "1",
                                         "2.5",   "5",      "10",    "30"};
#define NBUCKETS TG_ARRAY_LEN(bucket_le)

enum kind { K_COUNTER, K_HISTOGRAM };

struct values {
    char *v[TG_METRICS_MAX_VALUES];
    unsigned n;
};

struct series {
    uint16_t idx[MAX_LABELS];
    uint64_t count;              /* counter value, or observations */
    double sum;                  /* histogram only */
    uint64_t bucket[NBUCKETS];   /* histogram only, not cumulative; the rest is +Inf */
};

struct family {
    const char *name, *help;
    enum kind kind;
    unsigned nlabels;
    const char *label[MAX_LABELS];
    struct values *vals[MAX_LABELS]; /* allocated on first use */
    struct series *s;                /* sorted by label values */
    size_t n, cap;
};

static struct family fam_started = {
    "tftpgw_transfers_started_total",
    "Transfers whose session was created (request accepted and routed).",
    K_COUNTER, 2, {"op", "route"}, {NULL}, NULL, 0, 0};
static struct family fam_finished = {
    "tftpgw_transfers_finished_total",
    "Transfers that ended, by result (docs/metrics.md lists the results).",
    K_COUNTER, 3, {"op", "route", "result"}, {NULL}, NULL, 0, 0};
static struct family fam_refused = {
    "tftpgw_requests_refused_total",
    "Requests answered with an ERROR before any session existed, by reason.",
    K_COUNTER, 1, {"reason"}, {NULL}, NULL, 0, 0};
static struct family fam_latency = {
    "tftpgw_backend_request_duration_seconds",
    "Time from asking a backend to open or commit a stream to its answer.",
    K_HISTOGRAM, 1, {"backend"}, {NULL}, NULL, 0, 0};
static struct family fam_cache = {
    "tftpgw_cache_events_total",
    "Cache backend events: hit, miss, revalidation, stale, eviction.",
    K_COUNTER, 2, {"cache", "event"}, {NULL}, NULL, 0, 0};

static struct family *const families[] = {&fam_started, &fam_finished, &fam_refused,
                                          &fam_latency, &fam_cache};

static pthread_mutex_t fam_mu = PTHREAD_MUTEX_INITIALIZER;

/* One worker's scalars; only that worker's thread stores into it. */
struct wslot {
    _Alignas(64) _Atomic uint64_t bytes_sent;
    _Atomic uint64_t bytes_received, retransmits, transfers;
    _Atomic int64_t active;
};

static struct wslot slots[TG_METRICS_MAX_WORKERS];
static _Atomic unsigned nworkers_seen = 1;
static _Thread_local unsigned my_worker;

void tg_metrics_set_worker(unsigned id)
{
    unsigned seen;

    if (id >= TG_METRICS_MAX_WORKERS)
        id = TG_METRICS_MAX_WORKERS - 1;
    my_worker = id;
    seen = atomic_load(&nworkers_seen);
    while (seen < id + 1 && !atomic_compare_exchange_weak(&nworkers_seen, &seen, id + 1))
        ;
}

#define BUMP(field, n)                                                                    \
    atomic_store_explicit(&slots[my_worker].field,                                        \
                          atomic_load_explicit(&slots[my_worker].field,                   \
                                               memory_order_relaxed) + (n),               \
                          memory_order_relaxed)

static uint64_t sum_u(size_t off)
{
    uint64_t t = 0;

    for (unsigned i = 0; i < TG_METRICS_MAX_WORKERS; i++)
        t += atomic_load_explicit((_Atomic uint64_t *)((char *)&slots[i] + off),
                                  memory_order_relaxed);
    return t;
}

static int64_t sum_active(void)
{
    int64_t t = 0;

    for (unsigned i = 0; i < TG_METRICS_MAX_WORKERS; i++)
        t += atomic_load_explicit(&slots[i].active, memory_order_relaxed);
    return t;
}

static const char *value_str(const struct family *f, unsigned l, uint16_t idx)
{
    return idx == OTHER_IDX ? OTHER : f->vals[l]->v[idx];
}

/* The index of v among label l's values, adding it if there is room. */
static uint16_t intern(struct family *f, unsigned l, const char *v)
{
    struct values *vs = f->vals[l];
    unsigned i;

    if (!v)
        v = "";
    /* A value spelt "other" must share the overflow series, or the page
     * would hold the same label set twice. */
    if (!strcmp(v, OTHER))
        return OTHER_IDX;
    if (!vs && !(vs = f->vals[l] = tg_calloc(1, sizeof(*vs))))
        return OTHER_IDX;
    for (i = 0; i < vs->n; i++)
        if (!strcmp(vs->v[i], v))
            return (uint16_t)i;
    if (vs->n == TG_METRICS_MAX_VALUES || !(vs->v[vs->n] = tg_strdup(v)))
        return OTHER_IDX;
    return (uint16_t)vs->n++;
}

static int series_cmp(const struct family *f, const uint16_t *a, const uint16_t *b)
{
    unsigned l;

    for (l = 0; l < f->nlabels; l++) {
        int c;

        if (a[l] == b[l])
            continue;
        c = strcmp(value_str(f, l, a[l]), value_str(f, l, b[l]));
        if (c)
            return c;
    }
    return 0;
}

/* The series for these label values, created on first use; NULL only when
 * out of memory (the update is then lost, never the process). */
static struct series *series_get(struct family *f, const char *const *labels)
{
    uint16_t idx[MAX_LABELS] = {0};
    size_t i, at;
    unsigned l;

    for (l = 0; l < f->nlabels; l++)
        idx[l] = intern(f, l, labels[l]);
    for (i = 0; i < f->n; i++)
        if (!memcmp(f->s[i].idx, idx, sizeof(idx)))
            return &f->s[i];
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct series *s = tg_realloc(f->s, cap * sizeof(*s));

        if (!s)
            return NULL;
        f->s = s;
        f->cap = cap;
    }
    for (at = 0; at < f->n && series_cmp(f, f->s[at].idx, idx) < 0; at++)
        ;
    memmove(&f->s[at + 1], &f->s[at], (f->n - at) * sizeof(*f->s));
    memset(&f->s[at], 0, sizeof(*f->s));
    memcpy(f->s[at].idx, idx, sizeof(idx));
    f->n++;
    return &f->s[at];
}

static void count(struct family *f, const char *a, const char *b, const char *c)
{
    const char *labels[MAX_LABELS] = {a, b, c};
    struct series *s;

    pthread_mutex_lock(&fam_mu);
    if ((s = series_get(f, labels)) != NULL)
        s->count++;
    pthread_mutex_unlock(&fam_mu);
}

void tg_metrics_transfer_started(const char *op, const char *route)
{
    count(&fam_started, op, route, NULL);
    BUMP(active, 1);
}

void tg_metrics_transfer_finished(const char *op, const char *route, const char *result)
{
    count(&fam_finished, op, route, result);
    BUMP(active, -1);
    BUMP(transfers, 1);
}

void tg_metrics_bytes_sent(uint64_t n)
{
    BUMP(bytes_sent, n);
}

void tg_metrics_bytes_received(uint64_t n)
{
    BUMP(bytes_received, n);
}

void tg_metrics_retransmits(uint64_t n)
{
    BUMP(retransmits, n);
}

void tg_metrics_request_refused(const char *reason)
{
    count(&fam_refused, reason, NULL, NULL);
}

void tg_metrics_cache_event(const char *cache, const char *event)
{
    count(&fam_cache, cache, event, NULL);
}

void tg_metrics_backend_latency(const char *backend, double seconds)
{
    const char *labels[MAX_LABELS] = {backend, NULL, NULL};
    struct series *s;
    size_t i;

    if (!(seconds >= 0)) /* also a NaN: a clock going backwards is no latency */
        seconds = 0;
    pthread_mutex_lock(&fam_mu);
    if ((s = series_get(&fam_latency, labels)) != NULL) {
        s->count++;
        s->sum += seconds;
        for (i = 0; i < NBUCKETS; i++)
            if (seconds <= bucket_le[i]) {
                s->bucket[i]++;
                break;
            }
    }
    pthread_mutex_unlock(&fam_mu);
}

void tg_metrics_reset(void)
{
    size_t i;
    unsigned l, v;

    for (i = 0; i < TG_ARRAY_LEN(families); i++) {
        struct family *f = families[i];

        for (l = 0; l < MAX_LABELS; l++) {
            if (!f->vals[l])
                continue;
            for (v = 0; v < f->vals[l]->n; v++)
                tg_free(f->vals[l]->v[v]);
            tg_free(f->vals[l]);
            f->vals[l] = NULL;
        }
        tg_free(f->s);
        f->s = NULL;
        f->n = f->cap = 0;
    }
    for (i = 0; i < TG_METRICS_MAX_WORKERS; i++) {
        atomic_store(&slots[i].bytes_sent, 0);
        atomic_store(&slots[i].bytes_received, 0);
        atomic_store(&slots[i].retransmits, 0);
        atomic_store(&slots[i].transfers, 0);
        atomic_store(&slots[i].active, 0);
    }
}

/* ------------------------------------------------------------ label helpers */

const char *tg_metrics_result(const char *outcome, unsigned tftp_code, bool shutting_down)
{
    static const char *const by_code[] = {
        [TG_TFTP_EUNDEF] = "backend_error",   [TG_TFTP_ENOTFOUND] = "not_found",
        [TG_TFTP_EACCESS] = "access_denied",  [TG_TFTP_ENOSPACE] = "disk_full",
        [TG_TFTP_EBADOP] = "illegal",         [TG_TFTP_EBADID] = "unknown_tid",
        [TG_TFTP_EEXISTS] = "exists",         [TG_TFTP_ENOUSER] = "no_user",
        [TG_TFTP_EOPTNEG] = "options_refused",
    };

    if (!outcome)
        return OTHER;
    if (!strcmp(outcome, "ok") || !strcmp(outcome, "unconfirmed") ||
        !strcmp(outcome, "timeout") || !strcmp(outcome, "declined") ||
        !strcmp(outcome, "superseded"))
        return outcome;
    if (!strcmp(outcome, "aborted"))
        return "cancelled"; /* the client sent an ERROR */
    if (strcmp(outcome, "error") != 0)
        return OTHER;
    /* ERROR 0 is what the gateway sends for every failure the TFTP codes
     * have no word for; while it is ending sessions that is the shutdown. */
    if (tftp_code == TG_TFTP_EUNDEF && shutting_down)
        return "shutdown";
    return tftp_code < TG_ARRAY_LEN(by_code) ? by_code[tftp_code] : OTHER;
}

const char *tg_metrics_refusal(unsigned tftp_code)
{
    switch (tftp_code) {
    case TG_TFTP_ENOTFOUND:
        return "not_found";
    case TG_TFTP_EACCESS:
        return "denied";
    case TG_TFTP_ENOSPACE:
        return "too_large";
    case TG_TFTP_EBADOP:
        return "bad_request";
    case TG_TFTP_EOPTNEG:
        return "options_refused";
    default:
        return "error";
    }
}

/* ------------------------------------------------------------ exposition */

/* Text format 0.0.4: in a label value \, " and newline are escaped. */
static void buf_label_value(struct tg_jbuf *b, const char *v)
{
    const char *p;

    for (p = v; *p; p++) {
        if (*p == '\\')
            tg_jbuf_add(b, "\\\\", 2);
        else if (*p == '"')
            tg_jbuf_add(b, "\\\"", 2);
        else if (*p == '\n')
            tg_jbuf_add(b, "\\n", 2);
        else
            tg_jbuf_add(b, p, 1);
    }
}

/* The shortest of %.15g / %.17g that reads back as the same double. */
static void fmt_double(double v, char *out, size_t cap)
{
    snprintf(out, cap, "%.15g", v);
    if (strtod(out, NULL) != v)
        snprintf(out, cap, "%.17g", v);
}

static void head(struct tg_jbuf *b, const char *name, const char *help, const char *type)
{
    tg_jbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{l1="v1",l2="v2"[,le="x"]} */
static void sample_name(struct tg_jbuf *b, const struct family *f, const struct series *s,
                        const char *suffix, const char *le)
{
    unsigned l;

    tg_jbuf_str(b, f->name);
    tg_jbuf_str(b, suffix);
    if (f->nlabels == 0 && !le)
        return;
    tg_jbuf_str(b, "{");
    for (l = 0; l < f->nlabels; l++) {
        tg_jbuf_printf(b, "%s%s=\"", l ? "," : "", f->label[l]);
        buf_label_value(b, value_str(f, l, s->idx[l]));
        tg_jbuf_str(b, "\"");
    }
    if (le)
        tg_jbuf_printf(b, "%sle=\"%s\"", f->nlabels ? "," : "", le);
    tg_jbuf_str(b, "}");
}

static void render_family(struct tg_jbuf *b, const struct family *f)
{
    size_t i, k;

    head(b, f->name, f->help, f->kind == K_HISTOGRAM ? "histogram" : "counter");
    for (i = 0; i < f->n; i++) {
        const struct series *s = &f->s[i];
        uint64_t cum = 0;
        char num[40];

        if (f->kind == K_COUNTER) {
            sample_name(b, f, s, "", NULL);
            tg_jbuf_printf(b, " %llu\n", (unsigned long long)s->count);
            continue;
        }
        for (k = 0; k < NBUCKETS; k++) {
            cum += s->bucket[k];
            sample_name(b, f, s, "_bucket", bucket_str[k]);
            tg_jbuf_printf(b, " %llu\n", (unsigned long long)cum);
        }
        sample_name(b, f, s, "_bucket", "+Inf");
        tg_jbuf_printf(b, " %llu\n", (unsigned long long)s->count);
        fmt_double(s->sum, num, sizeof(num));
        sample_name(b, f, s, "_sum", NULL);
        tg_jbuf_printf(b, " %s\n", num);
        sample_name(b, f, s, "_count", NULL);
        tg_jbuf_printf(b, " %llu\n", (unsigned long long)s->count);
    }
}

static void scalar(struct tg_jbuf *b, const char *name, const char *help, const char *type,
                   long long v)
{
    head(b, name, help, type);
    tg_jbuf_printf(b, "%s %lld\n", name, v);
}

char *tg_metrics_render(size_t *len)
{
    struct tg_jbuf b = {NULL, 0, 0, false};

    head(&b, "tftpgw_build_info", "The running tftpgw's version; the value is always 1.",
         "gauge");
    tg_jbuf_str(&b, "tftpgw_build_info{version=\"");
    buf_label_value(&b, TG_VERSION);
    tg_jbuf_str(&b, "\"} 1\n");
    pthread_mutex_lock(&fam_mu);
    render_family(&b, &fam_started);
    render_family(&b, &fam_finished);
    pthread_mutex_unlock(&fam_mu);
    scalar(&b, "tftpgw_active_sessions", "Transfers in progress (including uploads dallying "
           "for a lost final ACK).", "gauge", (long long)sum_active());
    scalar(&b, "tftpgw_bytes_sent_total", "DATA payload bytes sent to clients, "
           "retransmissions included.", "counter",
           (long long)sum_u(offsetof(struct wslot, bytes_sent)));
    scalar(&b, "tftpgw_bytes_received_total", "DATA payload bytes accepted from clients "
           "(duplicates not counted).", "counter",
           (long long)sum_u(offsetof(struct wslot, bytes_received)));
    scalar(&b, "tftpgw_retransmissions_total", "Timeouts after which a session resent its "
           "window, OACK or ACK.", "counter",
           (long long)sum_u(offsetof(struct wslot, retransmits)));
    head(&b, "tftpgw_worker_transfers_total", "Transfers that ended, by the worker loop that "
         "ran them ([server] workers).", "counter");
    for (unsigned i = 0; i < atomic_load(&nworkers_seen); i++)
        tg_jbuf_printf(&b, "tftpgw_worker_transfers_total{worker=\"%u\"} %llu\n", i,
                       (unsigned long long)atomic_load_explicit(&slots[i].transfers,
                                                                memory_order_relaxed));
    head(&b, "tftpgw_worker_active_sessions", "Transfers in progress, by worker loop.",
         "gauge");
    for (unsigned i = 0; i < atomic_load(&nworkers_seen); i++)
        tg_jbuf_printf(&b, "tftpgw_worker_active_sessions{worker=\"%u\"} %lld\n", i,
                       (long long)atomic_load_explicit(&slots[i].active,
                                                       memory_order_relaxed));
    pthread_mutex_lock(&fam_mu);
    render_family(&b, &fam_refused);
    render_family(&b, &fam_latency);
    render_family(&b, &fam_cache);
    pthread_mutex_unlock(&fam_mu);
    if (b.oom) {
        tg_free(b.p);
        return NULL;
    }
    if (len)
        *len = b.len;
    return b.p;
}

/* ------------------------------------------------------------ HTTP endpoint */

#define REQ_MAX 8192     /* request line and headers; more is 431 */
#define BACKLOG 64

/* The endpoint's limits (docs/metrics.md and docs/security.md, "Fair
 * limits", name them). A scrape sends its request head at once and reads
 * its answer at once, so every limit below only ever meets a client that
 * does neither. */

/* Total time a connection may take, whatever it does: a client that trickles
 * bytes, or reads the answer slower than it can be sent, cannot hold a slot
 * longer than this. */
TG_STATIC uint64_t tg_metrics_conn_timeout_ms = 5000;
/* Time from accept to a complete request head: an idle connection is
 * closed after this. */
TG_STATIC uint64_t tg_metrics_head_timeout_ms = 2000;
/* Connections served at once. When all are taken, a new one closes the
 * oldest that has not sent its request head yet; when every one is being
 * answered, new ones wait in the kernel's accept queue. */
TG_STATIC unsigned tg_metrics_max_conns = 64;
/* Connections at once from one client (an IPv4 address or an IPv6 /64);
 * one more is closed as soon as it is accepted. */
TG_STATIC unsigned tg_metrics_max_per_client = 4;

struct msrv;

struct conn {
    struct conn *prev, *next;   /* newest first */
    struct msrv *m;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    uv_shutdown_t sh;
    int open_handles;   /* freed when the last uv_close callback ran */
    bool closing;
    bool answering;     /* the head is in: no longer evicted for a newcomer */
    bool head_only;     /* a HEAD whose answer comes later (waiting) */
    uint64_t waiting;   /* /transfers: the request id its answer comes for; 0 none */
    uint64_t accepted_ms;
    struct sockaddr_storage peer;
    char hdr[512];
    char *body;
    bool body_owned;
    size_t len;         /* bytes of req used */
    char req[REQ_MAX];
};

struct msrv {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    bool listening;     /* tcp not yet closed */
    bool closing;
    bool backlogged;    /* libuv holds an accepted socket we had no room for */
    struct conn *conns;
    unsigned nconns;    /* in the list, closing or not */
    unsigned nlive;     /* not closing: what the limits count */
    uint64_t logged_s;  /* second of the last "closed a connection" line */
    unsigned unlogged;  /* such closes since that line */
    int port;
    char spec[128];
};

/* The endpoint being served; one closing may still be finishing beside it. */
static struct msrv *cur;

static void accept_one(struct msrv *m);

static void msrv_maybe_free(struct msrv *m)
{
    if (m->closing && !m->listening && !m->conns)
        tg_free(m);
}

static void conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct msrv *m = c->m;

    if (--c->open_handles > 0)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        m->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    m->nconns--;
    if (c->body_owned)
        tg_free(c->body);
    tg_free(c);
    if (m->closing) {
        msrv_maybe_free(m);
    } else if (m->backlogged && m->nlive < tg_metrics_max_conns) {
        m->backlogged = false;
        accept_one(m);
    }
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->m->nlive--;
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
    uv_close((uv_handle_t *)&c->timer, conn_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    conn_close(req->data);
}

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;

    if (status < 0 || c->closing) {
        conn_close(c);
        return;
    }
    /* FIN after the response; the timer still bounds a peer that never
     * reads it. */
    c->sh.data = c;
    if (uv_shutdown(&c->sh, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        conn_close(c);
}

static void respond(struct conn *c, int status, const char *reason, const char *ctype,
                    char *body, size_t blen, bool owned, bool head_only, const char *extra)
{
    uv_buf_t bufs[2];
    uint64_t used = uv_now(c->m->loop) - c->accepted_ms;
    int n;

    uv_read_stop((uv_stream_t *)&c->tcp);
    /* From here on only the whole-exchange deadline applies: it ends a
     * reader too slow to take the answer. */
    c->answering = true;
    uv_timer_start(&c->timer, on_conn_timeout,
                   used < tg_metrics_conn_timeout_ms ? tg_metrics_conn_timeout_ms - used : 0, 0);
    c->body = body;
    c->body_owned = owned;
    n = snprintf(c->hdr, sizeof(c->hdr),
                 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                 "Connection: close\r\n%s\r\n",
                 status, reason, ctype, blen, extra ? extra : "");
    if (n < 0 || (size_t)n >= sizeof(c->hdr)) { /* fixed texts only: cannot happen */
        conn_close(c);
        return;
    }
    bufs[0] = uv_buf_init(c->hdr, (unsigned)n);
    bufs[1] = uv_buf_init(body, (unsigned)blen);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, bufs, head_only || blen == 0 ? 1 : 2,
                 on_written) != 0)
        conn_close(c);
}

static void respond_text(struct conn *c, int status, const char *reason, const char *text,
                         bool head_only, const char *extra)
{
    respond(c, status, reason, "text/plain; charset=utf-8", (char *)text, strlen(text),
            false, head_only, extra);
}

/* The page may run its own inline script and style and fetch from this
 * endpoint, nothing else: a file name that got past the JSON escaping
 * still could not load or send anything (docs/security.md). */
#define PAGE_HEADERS "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n" \
    "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; " \
    "style-src 'unsafe-inline'; connect-src 'self'; img-src data:\r\n"

static tg_metrics_transfers_fn *transfers_fn;
static void *transfers_arg;
static uint64_t last_request_id; /* worker 0's loop only */

void tg_metrics_set_transfers(tg_metrics_transfers_fn *fn, void *arg)
{
    transfers_fn = fn;
    transfers_arg = arg;
}

static bool is_path(const char *target, size_t tlen, const char *path)
{
    return tlen == strlen(path) && !strncmp(target, path, tlen);
}

static void answer_transfers(struct conn *c, char *json, size_t len, bool head_only)
{
    if (!json) {
        respond_text(c, 503, "Service Unavailable", "out of memory\n", head_only, NULL);
        return;
    }
    respond(c, 200, "OK", "application/json", json, len, true, head_only,
            "Cache-Control: no-store\r\n");
}

/* Built once per request, with the running transfers capped
 * (gateway/live.h), under the same connection limits as /metrics. With
 * several workers the answer comes later (tg_metrics_transfers_reply):
 * the connection then waits with its head in, so no newcomer evicts it,
 * and the whole-exchange deadline (tg_metrics_conn_timeout_ms) still
 * bounds it whatever the provider does. */
static void respond_transfers(struct conn *c, bool head_only)
{
    uint64_t used = uv_now(c->m->loop) - c->accepted_ms;
    bool pending = false;
    size_t len = 0;
    char *json;

    if (!transfers_fn) {
        respond_text(c, 503, "Service Unavailable", "no transfers to show\n", head_only, NULL);
        return;
    }
    json = transfers_fn(transfers_arg, ++last_request_id, &len, &pending);
    if (!pending) {
        answer_transfers(c, json, len, head_only);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp); /* one request per connection */
    c->answering = true;
    c->head_only = head_only;
    c->waiting = last_request_id;
    uv_timer_start(&c->timer, on_conn_timeout,
                   used < tg_metrics_conn_timeout_ms ? tg_metrics_conn_timeout_ms - used : 0, 0);
}

void tg_metrics_transfers_reply(uint64_t id, char *json, size_t len)
{
    struct conn *c;

    for (c = cur ? cur->conns : NULL; c; c = c->next)
        if (c->waiting == id && !c->closing) {
            c->waiting = 0;
            answer_transfers(c, json, len, c->head_only);
            return;
        }
    tg_free(json); /* the connection that asked has gone */
}

/* The request line of a complete head: METHOD SP TARGET SP HTTP/x.y */
static void handle_request(struct conn *c)
{
    char *line = c->req, *end, *sp1, *sp2;
    const char *target;
    size_t tlen;
    bool head_only;
    char *text;
    size_t len;

    end = memchr(line, '\n', c->len);
    if (end > line && end[-1] == '\r')
        end--;
    *end = '\0';
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        respond_text(c, 400, "Bad Request", "bad request\n", false, NULL);
        return;
    }
    *sp1 = *sp2 = '\0';
    head_only = !strcmp(line, "HEAD");
    if (strcmp(line, "GET") != 0 && !head_only) {
        respond_text(c, 405, "Method Not Allowed", "only GET and HEAD\n", false,
                     "Allow: GET, HEAD\r\n");
        return;
    }
    target = sp1 + 1;
    tlen = strcspn(target, "?");
    if (is_path(target, tlen, "/")) {
        respond(c, 200, "OK", "text/html; charset=utf-8", (char *)tg_live_page,
                strlen(tg_live_page), false, head_only, PAGE_HEADERS);
        return;
    }
    if (is_path(target, tlen, "/transfers")) {
        respond_transfers(c, head_only);
        return;
    }
    if (!is_path(target, tlen, "/metrics")) {
        respond_text(c, 404, "Not Found", "not found; try /metrics, /transfers or /\n",
                     head_only, NULL);
        return;
    }
    text = tg_metrics_render(&len);
    if (!text) {
        respond_text(c, 503, "Service Unavailable", "out of memory\n", head_only, NULL);
        return;
    }
    respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len, true,
            head_only, NULL);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;

    (void)suggested;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - c->len));
}

static bool head_complete(const struct conn *c)
{
    size_t i;

    /* A blank line ends the head; bare LF line ends are tolerated. */
    for (i = 1; i < c->len; i++)
        if (c->req[i] == '\n' &&
            (c->req[i - 1] == '\n' || (i >= 2 && c->req[i - 1] == '\r' && c->req[i - 2] == '\n')))
            return true;
    return false;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;

    (void)buf;
    if (c->closing)
        return;
    if (nread < 0) {
        conn_close(c); /* EOF before a whole request, or a reset */
        return;
    }
    c->len += (size_t)nread;
    if (head_complete(c))
        handle_request(c);
    else if (c->len == sizeof(c->req))
        respond_text(c, 431, "Request Header Fields Too Large", "request head too large\n",
                     false, NULL);
}

/* One client: an IPv4 address, or an IPv6 /64 (what one host can
 * usually choose addresses from). */
static bool same_client(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, 8);
    return true; /* no address to tell clients apart: one client */
}

static unsigned conns_of(const struct msrv *m, const struct conn *c)
{
    const struct conn *o;
    unsigned n = 0;

    for (o = m->conns; o; o = o->next)
        n += !o->closing && same_client(&o->peer, &c->peer);
    return n;
}

/* The oldest connection still waiting for its request head. */
static struct conn *oldest_waiting(struct msrv *m)
{
    struct conn *o, *found = NULL;

    for (o = m->conns; o; o = o->next)
        if (!o->closing && !o->answering)
            found = o;
    return found;
}

/* A line per second at most, however many connections a flood brings. */
static void note_closed(struct msrv *m, const struct conn *c, const char *why)
{
    uint64_t s = uv_now(m->loop) / 1000;
    char ip[INET6_ADDRSTRLEN] = "?";

    if (s == m->logged_s) {
        m->unlogged++;
        return;
    }
    if (c->peer.ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)&c->peer, ip, sizeof(ip));
    else if (c->peer.ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)&c->peer, ip, sizeof(ip));
    tg_log(TG_LOG_WARN, "metrics %s: closed a connection from %s: %s (%u more since the last line)",
           m->spec, ip, why, m->unlogged);
    m->logged_s = s;
    m->unlogged = 0;
}

static void accept_one(struct msrv *m)
{
    struct conn *c, *evict = NULL;
    int namelen = sizeof(c->peer);

    if ((m->nlive >= tg_metrics_max_conns && !(evict = oldest_waiting(m))) ||
        !(c = tg_calloc(1, sizeof(*c)))) {
        /* Not accepting leaves the socket with libuv, which stops watching
         * the listener until the next uv_accept: a slot freeing up. With
         * no connection left to free one (out of memory), it stays so. */
        m->backlogged = true;
        return;
    }
    c->m = m;
    c->tcp.data = c;
    c->timer.data = c;
    uv_tcp_init(m->loop, &c->tcp);
    uv_timer_init(m->loop, &c->timer);
    c->open_handles = 2;
    c->next = m->conns;
    if (m->conns)
        m->conns->prev = c;
    m->conns = c;
    m->nconns++;
    m->nlive++;
    c->accepted_ms = uv_now(m->loop);
    if (uv_accept((uv_stream_t *)&m->tcp, (uv_stream_t *)&c->tcp) != 0 ||
        uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->peer, &namelen) != 0) {
        conn_close(c);
        return;
    }
    if (conns_of(m, c) > tg_metrics_max_per_client) {
        note_closed(m, c, "too many connections from that address");
        conn_close(c);
        return;
    }
    if (evict) {
        note_closed(m, evict, "the endpoint is full and it had sent no request yet");
        conn_close(evict);
    }
    uv_timer_start(&c->timer, on_conn_timeout,
                   tg_metrics_head_timeout_ms < tg_metrics_conn_timeout_ms
                       ? tg_metrics_head_timeout_ms : tg_metrics_conn_timeout_ms, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct msrv *m = server->data;

    if (status < 0) {
        tg_log(TG_LOG_WARN, "metrics %s: accept: %s", m->spec, uv_strerror(status));
        return;
    }
    if (!m->closing)
        accept_one(m);
}

static void listener_closed(uv_handle_t *h)
{
    struct msrv *m = h->data;

    m->listening = false;
    msrv_maybe_free(m);
}

int tg_metrics_serve(uv_loop_t *loop, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    struct msrv *m;
    int namelen = sizeof(ss), rc;

    if (cur && cur->loop == loop && !strcmp(cur->spec, listen))
        return 0;
    tg_metrics_close();
    if (strlen(listen) >= sizeof(m->spec) || tg_sockaddr_parse(listen, true, &ss) != 0) {
        snprintf(err, errlen, "metrics_listen %s: not ADDR:PORT (numeric; IPv6 as [ADDR]:PORT)",
                 listen);
        return TG_EINVAL;
    }
    if (!(m = tg_calloc(1, sizeof(*m)))) {
        snprintf(err, errlen, "metrics_listen %s: out of memory", listen);
        return TG_ENOMEM;
    }
    m->loop = loop;
    snprintf(m->spec, sizeof(m->spec), "%s", listen);
    m->tcp.data = m;
    rc = uv_tcp_init(loop, &m->tcp);
    if (rc != 0) {
        tg_free(m);
        snprintf(err, errlen, "metrics_listen %s: %s", listen, uv_strerror(rc));
        return rc;
    }
    m->listening = true;
    /* libuv may report an address in use at listen rather than at bind. */
    rc = uv_tcp_bind(&m->tcp, (struct sockaddr *)&ss,
                     ss.ss_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&m->tcp, BACKLOG, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&m->tcp, (struct sockaddr *)&ss, &namelen);
    if (rc != 0) {
        snprintf(err, errlen, "metrics_listen %s: cannot listen: %s", listen, uv_strerror(rc));
        m->closing = true;
        uv_close((uv_handle_t *)&m->tcp, listener_closed);
        return rc;
    }
    m->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    cur = m;
    {
        char ip[INET6_ADDRSTRLEN] = "?";

        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip));
        else
            uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip));
        tg_log(TG_LOG_INFO, ss.ss_family == AF_INET6 ? "metrics on http://[%s]:%d/metrics"
                                                     : "metrics on http://%s:%d/metrics",
               ip, m->port);
    }
    return 0;
}

void tg_metrics_close(void)
{
    struct msrv *m = cur;
    struct conn *c;

    if (!m)
        return;
    cur = NULL;
    m->closing = true;
    for (c = m->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&m->tcp, listener_closed);
}

#ifdef UNIT_TESTING
int tg_metrics_port(void)
{
    return cur ? cur->port : -1;
}

unsigned tg_metrics_open_conns(void)
{
    return cur ? cur->nlive : 0;
}
#endif
