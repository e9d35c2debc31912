/* gateway/workers.c - the worker threads, their mailboxes, and what worker
 * 0 asks of the others: adopt a reloaded configuration, drain, abort, and
 * their part of the live transfers view. No worker ever waits for another
 * (invariant 1): for /transfers worker 0 posts its ask and goes on serving;
 * each part comes back through worker 0's mailbox, and a timer on worker
 * 0's loop (PART_WAIT_MS) ends a collection whose parts are late. */
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "heldmap.h"
#include "listener.h"
#include "shared.h"
#include "workers.h"
#include "tftpgw/sockaddr.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "liveview.h"

#define PART_WAIT_MS 500

/* One /transfers collection at a time, on worker 0's loop: the requests
 * that arrive while it runs join it and get the same answer, so a burst
 * of requests costs one part per worker, not one per request. */
struct tg_collect {
    uv_timer_t timer;        /* the deadline */
    struct tg_workers *ws;
    bool running;
    uint64_t seq;            /* parts built for an older collection are stale */
    uint64_t *ids;           /* metrics request ids waiting for this one */
    size_t nids, cap;
    unsigned missing;        /* parts neither in nor given up on */
    bool *have;              /* per worker: part in, or the worker closed */
    struct tg_live_part *parts;
};

/* One generation of worker 0's backends (tg_workers_own). */
struct tg_owned {
    struct tg_owned *next;
    const struct tg_config *cfg;
    struct tg_backend **backends;
};

unsigned tg_workers_count(const struct tg_config *cfg, int passed)
{
    unsigned n = cfg->server.workers;

    if (n == 0) {
        cpu_set_t set;

        n = sched_getaffinity(0, sizeof(set), &set) == 0 ? (unsigned)CPU_COUNT(&set) : 1;
        n = n < 1 ? 1 : n > TG_WORKERS_MAX ? TG_WORKERS_MAX : n;
    }
    if (n > 1 && passed > 0 && cfg->server.single_port) {
        tg_log(TG_LOG_INFO, "socket activation in single-port mode: 1 worker (workers = %u "
                            "needs sockets of its own to steer transfers)", n);
        n = 1;
    }
    return n;
}

struct tg_workers *tg_workers_new(struct tg_config *cfg, unsigned n, int passed)
{
    struct tg_workers *ws = tg_calloc(1, sizeof(*ws) + n * sizeof(ws->w[0]));

    if (!ws)
        return NULL;
    ws->n = n;
    ws->passed = passed;
    if (getrandom(&ws->steer_key, sizeof(ws->steer_key), GRND_NONBLOCK) !=
        (ssize_t)sizeof(ws->steer_key))
        ws->steer_key = (uint32_t)uv_hrtime() ^ (uint32_t)getpid();
    ws->cfg = cfg;
    uv_mutex_init(&ws->gens_mu);
    ws->shared = tg_shared_new();
    if (n > 1 && !cfg->server.single_port) {
        uint8_t key[TG_HELDMAP_KEYLEN];

        if (getrandom(key, sizeof(key), GRND_NONBLOCK) != (ssize_t)sizeof(key)) {
            uint64_t t[2] = {uv_hrtime(), (uint64_t)getpid() ^ (uint64_t)(uintptr_t)ws};

            memcpy(key, t, sizeof(key));
        }
        /* Each worker's http/s3 backends hold at most HT_MAX (32) probes
         * each: twice that per worker is room for the usual one or two. */
        ws->heldmap = tg_heldmap_new(64 * n, key);
    }
    /* Keyed once per process, before any request: a reload that turns
     * rate_limit on finds the table ready (its pages are touched only then). */
    ws->rate = tg_ratelimit_new(NULL);
    ws->sendrate = tg_ratelimit_new(NULL);
    for (unsigned i = 0; i < n; i++) {
        ws->w[i].all = ws;
        ws->w[i].id = i;
        ws->w[i].calls_tail = &ws->w[i].calls;
        uv_mutex_init(&ws->w[i].mu);
    }
    if (!ws->shared || !ws->rate || !ws->sendrate || (n > 1 && !cfg->server.single_port && !ws->heldmap)) {
        tg_workers_free(ws);
        return NULL;
    }
    return ws;
}

void tg_workers_free(struct tg_workers *ws)
{
    if (!ws)
        return;
    for (unsigned i = 0; i < ws->n; i++) {
        tg_live_part_free(&ws->w[i].part);
        uv_mutex_destroy(&ws->w[i].mu);
    }
    while (ws->gens) {
        struct tg_owned *g = ws->gens;

        ws->gens = g->next;
        tg_free(g);
    }
    uv_mutex_destroy(&ws->gens_mu);
    tg_shared_free(ws->shared);
    tg_heldmap_free(ws->heldmap);
    tg_ratelimit_free(ws->rate);
    tg_ratelimit_free(ws->sendrate);
    tg_free(ws);
}

static bool post(struct tg_worker *w, void (*set)(struct tg_worker *, void *), void *arg);
static void collect_take(struct tg_workers *ws);

static void set_parts_in(struct tg_worker *w, void *arg)
{
    (void)arg;
    w->parts_in = true;
}

/* Worker i > 0, on its own loop: its part for collection seq, left in its
 * mailbox for worker 0 to take. */
static void build_part(struct tg_worker *w, uint64_t seq)
{
    struct tg_live_part p;

    if (tg_live_part(&w->srv.rt.reg, uv_now(w->srv.rt.loop), &p) != 0)
        memset(&p, 0, sizeof(p));
    uv_mutex_lock(&w->mu);
    tg_live_part_free(&w->part);
    w->part = p;
    w->part_seq = seq;
    w->part_ready = true;
    uv_mutex_unlock(&w->mu);
    (void)post(&w->all->w[0], set_parts_in, NULL);
}

/* What the mailbox holds, on the worker's own loop. */
static void on_mail(uv_async_t *a)
{
    struct tg_worker *w = a->data;
    struct tg_server *srv = &w->srv;
    struct tg_config *gen;
    bool drain, abort_now, close_now, want_part, peer_done, parts_in;
    unsigned evict;
    uint64_t want_seq;
    struct tg_call *calls;

    uv_mutex_lock(&w->mu);
    calls = w->calls;
    w->calls = NULL;
    w->calls_tail = &w->calls;
    gen = w->gen;
    w->gen = NULL;
    drain = w->drain;
    abort_now = w->abort;
    close_now = w->close_now;
    evict = w->evict;
    w->evict = 0;
    want_part = w->want_part;
    want_seq = w->want_seq;
    peer_done = w->peer_done;
    parts_in = w->parts_in;
    w->drain = w->abort = w->close_now = w->peer_done = w->want_part = w->parts_in = false;
    uv_mutex_unlock(&w->mu);
    /* Calls first: a worker's last stream closes are posted before it
     * says it has drained, and worker 0 must see them before closing. */
    while (calls) {
        struct tg_call *c = calls;

        calls = c->next;
        c->fn(c);
    }
    if (gen && !srv->closed && !srv->rt.draining)
        tg_server_adopt(srv, gen);
    if (drain)
        tg_server_begin_drain(srv);
    if (abort_now)
        tg_registry_abort_all(&srv->rt.reg, "server is shutting down");
    /* Only while still full: a place may have come free meanwhile. */
    while (evict-- > 0 && !srv->closed &&
           tg_shared_sessions(srv->rt.shared) >= srv->rt.cfg->server.max_sessions &&
           tg_registry_evict_unproven(&srv->rt.reg))
        tg_log(TG_LOG_INFO, "server full: evicted a session whose client never answered "
                            "(for a request another worker received)");
    if (want_part)
        build_part(w, want_seq);
    if (parts_in)
        collect_take(w->all);
    if (peer_done)
        tg_server_check_done(srv);
    if (close_now)
        tg_server_close(srv);
}

static int attach(struct tg_worker *w, uv_loop_t *loop)
{
    int rc = uv_async_init(loop, &w->async, on_mail);

    if (rc == 0) {
        w->async.data = w;
        uv_mutex_lock(&w->mu);
        w->open = true;
        uv_mutex_unlock(&w->mu);
    }
    return rc;
}

int tg_workers_attach_main(struct tg_workers *ws, uv_loop_t *loop)
{
    return attach(&ws->w[0], loop);
}

static void worker_main(void *arg)
{
    struct tg_worker *w = arg;
    int rc;

    tg_metrics_set_worker(w->id);
    uv_loop_init(&w->loop);
    /* The mailbox opens after init: others read this server's registry
     * hint only while it is open (tg_workers_room_elsewhere). */
    rc = tg_server_init(&w->srv, &w->loop, w->all->cfg, w, w->err, sizeof(w->err));
    if (rc == 0)
        rc = attach(w, &w->loop);
    if (rc == 0)
        rc = tg_server_start(&w->srv, w->err, sizeof(w->err));
    w->start_rc = rc;
    uv_sem_post(&w->started);
    if (rc != 0)
        tg_server_close(&w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    tg_server_free(&w->srv);
    uv_run(&w->loop, UV_RUN_DEFAULT); /* close callbacks of what the backends held */
    uv_loop_close(&w->loop);
    tg_liveview_free();
}

int tg_workers_spawn(struct tg_workers *ws, char *err, size_t errlen)
{
    for (unsigned i = 1; i < ws->n; i++) {
        struct tg_worker *w = &ws->w[i];

        uv_sem_init(&w->started, 0);
        if (uv_thread_create(&w->thread, worker_main, w) != 0) {
            uv_sem_destroy(&w->started);
            snprintf(err, errlen, "worker %u: cannot start its thread", i);
            return TG_ENOMEM;
        }
        w->spawned = true;
        uv_sem_wait(&w->started);
        uv_sem_destroy(&w->started);
        if (w->start_rc != 0) {
            snprintf(err, errlen, "worker %u: %s", i, w->err);
            return w->start_rc;
        }
    }
    return 0;
}

void tg_workers_join(struct tg_workers *ws)
{
    for (unsigned i = 1; i < ws->n; i++)
        if (ws->w[i].spawned) {
            uv_thread_join(&ws->w[i].thread);
            ws->w[i].spawned = false;
        }
}

/* Ask worker i something; false when it has closed. */
static bool post(struct tg_worker *w, void (*set)(struct tg_worker *, void *), void *arg)
{
    bool sent = false;

    uv_mutex_lock(&w->mu);
    if (w->open) {
        set(w, arg);
        uv_async_send(&w->async);
        sent = true;
    }
    uv_mutex_unlock(&w->mu);
    return sent;
}

bool tg_worker_call(struct tg_worker *w, struct tg_call *c)
{
    bool sent = false;

    c->next = NULL;
    uv_mutex_lock(&w->mu);
    if (w->open) {
        *w->calls_tail = c;
        w->calls_tail = &c->next;
        uv_async_send(&w->async);
        sent = true;
    }
    uv_mutex_unlock(&w->mu);
    return sent;
}

/* A request on its way to the worker that holds its probe. */
struct handed {
    struct tg_call call;
    struct tg_workers *ws;
    unsigned to, from;
    size_t listener; /* its index: every worker opens the same in order */
    struct sockaddr_storage peer, local;
    unsigned ifindex;
    enum tg_hand level;
    size_t len;
    uint8_t buf[];
};

static void handed_drop(struct tg_call *c)
{
    tg_free(c);
}

static void handed_run(struct tg_call *c)
{
    struct handed *h = (struct handed *)c;
    struct tg_server *srv = &h->ws->w[h->to].srv;

    if (!srv->closed && h->listener < srv->nlisteners) {
        if (tg_log_enabled(TG_LOG_DEBUG)) {
            char ps[INET6_ADDRSTRLEN + 8];

            tg_sockaddr_str((struct sockaddr *)&h->peer, ps, sizeof(ps));
            tg_log(TG_LOG_DEBUG, "worker %u: request from %s handed over by worker %u (%s)",
                   h->to, ps, h->from,
                   h->level == TG_HAND_CONFIRM ? "a probe of ours?" : "to serve here");
        }
        tg_listener_handed(&srv->listeners[h->listener], h->buf, h->len,
                           (struct sockaddr *)&h->peer, (struct sockaddr *)&h->local, h->ifindex,
                           h->level, h->from);
    }
    tg_free(h);
}

bool tg_workers_hand_off(struct tg_runtime *rt, unsigned worker, const struct tg_listener *l,
                         const uint8_t *buf, size_t len, const struct sockaddr *peer,
                         const struct sockaddr *local, unsigned ifindex, enum tg_hand level)
{
    struct tg_workers *ws = rt->workers;
    const struct tg_server *from;
    struct handed *h;
    size_t idx;

    if (!ws || worker >= ws->n || rt->worker >= ws->n)
        return false;
    from = &ws->w[rt->worker].srv;
    idx = (size_t)(l - from->listeners);
    if (idx >= from->nlisteners || !(h = tg_malloc(sizeof(*h) + len)))
        return false;
    *h = (struct handed){.call = {.fn = handed_run, .drop = handed_drop}, .ws = ws, .to = worker,
                         .from = rt->worker, .listener = idx, .ifindex = ifindex,
                         .level = level, .len = len};
    memcpy(&h->peer, peer, tg_sockaddr_len(peer));
    memcpy(&h->local, local, tg_sockaddr_len(local));
    memcpy(h->buf, buf, len);
    if (tg_worker_call(&ws->w[worker], &h->call))
        return true;
    tg_free(h);
    return false;
}

void tg_workers_own(struct tg_workers *ws, const struct tg_config *cfg,
                    struct tg_backend **backends)
{
    struct tg_owned *g = tg_calloc(1, sizeof(*g));

    if (!g)
        return; /* the other workers' stand-ins find no owner and refuse to start */
    g->cfg = cfg;
    g->backends = backends;
    uv_mutex_lock(&ws->gens_mu);
    g->next = ws->gens;
    ws->gens = g;
    uv_mutex_unlock(&ws->gens_mu);
}

struct tg_backend *tg_workers_owned(struct tg_workers *ws, const struct tg_config *cfg, size_t i)
{
    struct tg_backend *b = NULL;

    uv_mutex_lock(&ws->gens_mu);
    for (struct tg_owned *g = ws->gens; g; g = g->next)
        if (g->cfg == cfg) {
            b = i < cfg->nbackends ? g->backends[i] : NULL;
            break;
        }
    uv_mutex_unlock(&ws->gens_mu);
    return b;
}

static void set_gen(struct tg_worker *w, void *arg)
{
    w->gen = arg;
}

static void set_drain(struct tg_worker *w, void *arg)
{
    (void)arg;
    w->drain = true;
}

static void set_abort(struct tg_worker *w, void *arg)
{
    (void)arg;
    w->abort = true;
}

static void set_peer_done(struct tg_worker *w, void *arg)
{
    (void)arg;
    w->peer_done = true;
}

/* The configuration stays worker 0's (it retires it, frees it at exit):
 * every worker only reads it, from its own loop, after the mailbox lock. */
void tg_workers_post_gen(struct tg_workers *ws, struct tg_config *cfg)
{
    for (unsigned i = 1; i < ws->n; i++)
        (void)post(&ws->w[i], set_gen, cfg);
}

void tg_workers_post_drain(struct tg_workers *ws)
{
    for (unsigned i = 1; i < ws->n; i++)
        (void)post(&ws->w[i], set_drain, NULL);
}

void tg_workers_post_abort(struct tg_workers *ws)
{
    for (unsigned i = 1; i < ws->n; i++)
        (void)post(&ws->w[i], set_abort, NULL);
}

static void add_evict(struct tg_worker *w, void *arg)
{
    (void)arg;
    if (w->evict < 64) /* a flood asks again and again; one each is plenty */
        w->evict++;
}

bool tg_workers_room_elsewhere(struct tg_runtime *rt)
{
    struct tg_workers *ws = rt->workers;
    struct tg_worker *best = NULL;
    unsigned most = 0;

    for (unsigned i = 0; i < ws->n; i++) {
        struct tg_worker *w = &ws->w[i];
        unsigned u = 0;

        if (i == rt->worker)
            continue;
        uv_mutex_lock(&w->mu);
        if (w->open)
            u = atomic_load_explicit(&w->srv.rt.reg.unproven, memory_order_relaxed);
        uv_mutex_unlock(&w->mu);
        if (u > most) {
            most = u;
            best = w;
        }
    }
    return best && post(best, add_evict, NULL);
}

static void set_close(struct tg_worker *w, void *arg)
{
    (void)arg;
    w->close_now = true;
}

void tg_workers_post_close(struct tg_workers *ws)
{
    for (unsigned i = 1; i < ws->n; i++)
        (void)post(&ws->w[i], set_close, NULL);
}

bool tg_workers_others_drained(struct tg_workers *ws)
{
    bool all = true;

    for (unsigned i = 1; i < ws->n && all; i++) {
        uv_mutex_lock(&ws->w[i].mu);
        all = ws->w[i].drained || ws->w[i].closed || !ws->w[i].spawned;
        uv_mutex_unlock(&ws->w[i].mu);
    }
    return all;
}

void tg_worker_drained(struct tg_worker *w)
{
    uv_mutex_lock(&w->mu);
    w->drained = true;
    uv_mutex_unlock(&w->mu);
    (void)post(&w->all->w[0], set_peer_done, NULL);
}

static void collect_closed(uv_handle_t *h)
{
    struct tg_collect *c = h->data;

    tg_free(c->ids);
    tg_free(c->have);
    tg_free(c->parts);
    tg_free(c);
}

static void free_parts(struct tg_collect *c)
{
    for (unsigned i = 0; i < c->ws->n; i++)
        tg_live_part_free(&c->parts[i]);
}

void tg_worker_closing(struct tg_worker *w)
{
    struct tg_collect *c;
    bool was_open;

    struct tg_call *left, **pp;

    uv_mutex_lock(&w->mu);
    was_open = w->open;
    w->open = false;
    w->closed = true;
    /* Calls that can be dropped leave with the mailbox; the others stay
     * where their posters expect them. */
    left = NULL;
    for (pp = &w->calls; *pp;) {
        struct tg_call *k = *pp;

        if (!k->drop) {
            pp = &k->next;
            continue;
        }
        *pp = k->next;
        k->next = left;
        left = k;
    }
    w->calls_tail = pp;
    uv_mutex_unlock(&w->mu);
    while (left) {
        struct tg_call *k = left;

        left = k->next;
        k->drop(k);
    }
    if (was_open)
        uv_close((uv_handle_t *)&w->async, NULL);
    if (w->id != 0) {
        /* A part it will never build: worker 0 counts it as answered. */
        (void)post(&w->all->w[0], set_parts_in, NULL);
        return;
    }
    /* Worker 0 closes the endpoint too: whoever waits is closed with it.
     * The collection is worker 0's alone: read only here. */
    if (!(c = w->all->collect))
        return;
    w->all->collect = NULL;
    free_parts(c);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, collect_closed);
}

/* Every part in, or the deadline passed: merge what came, answer each
 * request that waited (each gets its own copy: the endpoint frees it). */
static void collect_finish(struct tg_collect *c)
{
    size_t len = 0;
    char *json;

    uv_timer_stop(&c->timer);
    json = tg_live_merge(c->parts, c->ws->n, &len);
    free_parts(c);
    c->running = false;
    for (size_t i = 0; i < c->nids; i++) {
        char *copy = json;

        if (json && i + 1 < c->nids && (copy = tg_malloc(len + 1)) != NULL)
            memcpy(copy, json, len);
        tg_metrics_transfers_reply(c->ids[i], copy, len);
    }
    if (c->nids == 0)
        tg_free(json);
    c->nids = 0;
}

static void on_collect_deadline(uv_timer_t *t)
{
    struct tg_collect *c = t->data;

    if (c->running)
        collect_finish(c); /* the parts missing are left out */
}

/* Worker 0's mailbox said a part is ready, or a worker closed. */
static void collect_take(struct tg_workers *ws)
{
    struct tg_collect *c = ws->collect;

    if (!c || !c->running)
        return;
    for (unsigned i = 1; i < ws->n; i++) {
        struct tg_worker *w = &ws->w[i];

        if (c->have[i])
            continue;
        uv_mutex_lock(&w->mu);
        if (w->part_ready && w->part_seq == c->seq) {
            c->parts[i] = w->part;
            memset(&w->part, 0, sizeof(w->part));
            w->part_ready = false;
            c->have[i] = true;
        } else if (w->closed) {
            c->have[i] = true;
        }
        uv_mutex_unlock(&w->mu);
        c->missing -= c->have[i];
    }
    if (c->missing == 0)
        collect_finish(c);
}

static struct tg_collect *collect_get(struct tg_workers *ws)
{
    struct tg_collect *c = ws->collect;

    if (c)
        return c;
    if (!(c = tg_calloc(1, sizeof(*c))) || !(c->have = tg_calloc(ws->n, sizeof(bool))) ||
        !(c->parts = tg_calloc(ws->n, sizeof(*c->parts)))) {
        if (c)
            tg_free(c->have);
        tg_free(c);
        return NULL;
    }
    c->ws = ws;
    c->timer.data = c;
    uv_timer_init(ws->w[0].srv.rt.loop, &c->timer);
    return ws->collect = c;
}

/* Worker 0's part now; every other open worker is asked at once. */
static int collect_start(struct tg_collect *c)
{
    struct tg_workers *ws = c->ws;
    struct tg_server *srv0 = &ws->w[0].srv;

    if (tg_live_part(&srv0->rt.reg, uv_now(srv0->rt.loop), &c->parts[0]) != 0)
        return -1;
    c->seq++;
    c->running = true;
    c->missing = 0;
    memset(c->have, 0, ws->n * sizeof(bool));
    c->have[0] = true;
    for (unsigned i = 1; i < ws->n; i++) {
        struct tg_worker *w = &ws->w[i];

        uv_mutex_lock(&w->mu);
        if (w->open) {
            w->want_part = true;
            w->want_seq = c->seq;
            uv_async_send(&w->async);
            c->missing++;
        } else {
            c->have[i] = true;
        }
        uv_mutex_unlock(&w->mu);
    }
    return 0;
}

char *tg_workers_transfers(struct tg_workers *ws, uint64_t id, size_t *len, bool *pending)
{
    struct tg_collect *c = collect_get(ws);
    char *out;

    *pending = false;
    if (!c)
        return NULL;
    if (c->running) {
        /* The endpoint's connection limit bounds how many wait. */
        if (c->nids == c->cap) {
            size_t cap = c->cap ? c->cap * 2 : 8;
            uint64_t *ids = tg_realloc(c->ids, cap * sizeof(*ids));

            if (!ids)
                return NULL;
            c->ids = ids;
            c->cap = cap;
        }
        c->ids[c->nids++] = id;
        *pending = true;
        return NULL;
    }
    if (collect_start(c) != 0)
        return NULL;
    if (c->missing == 0) { /* no other worker open: nothing to wait for */
        c->running = false;
        out = tg_live_merge(c->parts, ws->n, len);
        free_parts(c);
        return out;
    }
    uv_timer_start(&c->timer, on_collect_deadline, PART_WAIT_MS, 0);
    /* Running now: the request joins its own collection. */
    return tg_workers_transfers(ws, id, len, pending);
}
