/* gateway/server.c - owns the loop-wide objects: backends, listeners, the
 * session list, signals, and the drain on shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "live.h"
#include "remote.h"
#include "server.h"
#include "shared.h"
#include "workers.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/options.h"
#include "tftpgw/remap.h"

#define DRAIN_MS 30000

/* One configuration and its backends: the running one, or one retired by a
 * reload whose sessions may still run. */
struct tg_gen {
    struct tg_config *cfg;
    struct tg_backend **backends; /* parallel to cfg->backends */
    struct tg_gen *next;
};

struct build_ctx {
    const struct tg_config *cfg;
    struct tg_backend **backends;
};

static struct tg_backend *find_built(void *ctx, const char *name)
{
    const struct build_ctx *b = ctx;

    for (size_t i = 0; i < b->cfg->nbackends; i++)
        if (strcmp(b->cfg->backends[i].name, name) == 0)
            return b->backends[i];
    return NULL;
}

static bool same_backend_cfg(const struct tg_backend_cfg *a, const struct tg_backend_cfg *b)
{
    if (strcmp(a->name, b->name) != 0 || strcmp(a->type, b->type) != 0 || a->nkv != b->nkv)
        return false;
    for (size_t i = 0; i < a->nkv; i++)
        if (strcmp(a->kv[i].key, b->kv[i].key) != 0 || strcmp(a->kv[i].value, b->kv[i].value) != 0)
            return false;
    return true;
}

/* The running backend a reload can keep: same settings, so a cache stays
 * warm and its directory has one owner. A backend linked to others (a
 * cache and its upstream) is kept only when no backend changed at all,
 * since it holds on to the upstream it linked. */
static struct tg_backend *reusable(const struct tg_server *srv, const struct tg_backend_cfg *want,
                                   bool all_same)
{
    const struct tg_config *old = srv->rt.cfg;

    for (size_t i = 0; old && i < old->nbackends; i++) {
        struct tg_backend *b = srv->rt.backends[i];

        if (!same_backend_cfg(&old->backends[i], want))
            continue;
        return (!b->ops->link || all_same) ? b : NULL;
    }
    return NULL;
}

static bool all_backends_same(const struct tg_server *srv, const struct tg_config *cfg)
{
    if (!srv->rt.cfg || srv->rt.cfg->nbackends != cfg->nbackends)
        return false;
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (!same_backend_cfg(&srv->rt.cfg->backends[i], &cfg->backends[i]))
            return false;
    return true;
}

static bool was_reused(const struct tg_server *srv, const struct tg_backend *b)
{
    for (size_t i = 0; srv->rt.cfg && i < srv->rt.cfg->nbackends; i++)
        if (srv->rt.backends[i] == b)
            return true;
    return false;
}

/* Backends for cfg into out (cfg->nbackends slots, zeroed): reused from the
 * running generation where possible, else created and linked. On failure
 * the new ones are left in out for the caller to retire. */
static int build_backends(struct tg_server *srv, const struct tg_config *cfg,
                          struct tg_backend **out, unsigned *nreused, char *err, size_t errlen)
{
    struct build_ctx ctx = {cfg, out};
    bool all_same = all_backends_same(srv, cfg);
    size_t i;

    *nreused = 0;
    for (i = 0; i < cfg->nbackends; i++) {
        char e[256];
        int rc;

        if ((out[i] = reusable(srv, &cfg->backends[i], all_same)) != NULL) {
            (*nreused)++;
            continue;
        }
        /* One cache per name in the process: worker 0 runs it, the others
         * reach it through a stand-in (gateway/remote.c). */
        if (!srv->main && srv->w && strcmp(cfg->backends[i].type, "cache") == 0)
            rc = tg_remote_create(srv->w, tg_workers_owned(srv->w->all, cfg, i),
                                  &cfg->backends[i], &out[i], e, sizeof(e));
        else
            rc = tg_backend_create(srv->rt.loop, &cfg->backends[i], &out[i], e, sizeof(e));
        if (rc != 0) {
            out[i] = NULL;
            snprintf(err, errlen, "%s: [backend %s] %s", cfg->file ? cfg->file : "(built-in)",
                     cfg->backends[i].name, e);
            return rc;
        }
    }
    for (i = 0; i < cfg->nbackends; i++) {
        char e[256];
        struct tg_backend *b = out[i];
        int rc;

        if (!b->ops->link || was_reused(srv, b))
            continue;
        rc = b->ops->link(b, find_built, &ctx, e, sizeof(e));
        if (rc != 0) {
            snprintf(err, errlen, "%s: [backend %s] %s", cfg->file ? cfg->file : "(built-in)",
                     cfg->backends[i].name, e);
            return rc;
        }
    }
    return 0;
}

/* Worker 0 says which backends run this generation, before the other
 * workers build theirs: their stand-ins for its caches look them up. */
static void own_backends(struct tg_server *srv)
{
    if (srv->main && srv->w && srv->w->all->n > 1)
        tg_workers_own(srv->w->all, srv->rt.cfg, srv->rt.backends);
}

/* Backends stay alive until exit once retired: a cache's fills and a
 * stream's callbacks may outlive every session that used them, and a
 * retired generation is a few KiB. */
static int retire(struct tg_server *srv, struct tg_config *cfg, struct tg_backend **backends)
{
    struct tg_gen *g = tg_calloc(1, sizeof(*g));

    if (!g)
        return TG_ENOMEM;
    g->cfg = cfg;
    g->backends = backends;
    g->next = srv->retired;
    srv->retired = g;
    return 0;
}

/* Streams the backends hold for declined probes (probe_hold) go at a
 * reload and at shutdown: a retired backend serves no new request, and a
 * held stream would keep the loop running. */
static void drop_held(struct tg_backend **bs, size_t n)
{
    for (size_t i = 0; bs && i < n; i++)
        tg_backend_drop_held(bs[i]);
}

/* GET /transfers on the metrics endpoint (gateway/live.h). */
static char *transfers_json(void *arg, uint64_t id, size_t *len, bool *pending)
{
    struct tg_server *srv = arg;

    if (srv->w && srv->w->all->n > 1)
        return tg_workers_transfers(srv->w->all, id, len, pending);
    *pending = false;
    return tg_live_json(&srv->rt.reg, uv_now(srv->rt.loop), len);
}

/* Drained: worker 0 closes when its own sessions and every other
 * worker's are gone, and closes the others with it; another worker only
 * says it has drained. */
static void close_if_done(struct tg_server *srv)
{
    if (srv->rt.reg.count != 0 || srv->closed)
        return;
    if (!srv->main) {
        tg_worker_drained(srv->w); /* worker 0 closes every worker at once */
        return;
    }
    if (srv->w && !tg_workers_others_drained(srv->w->all))
        return;
    if (srv->w)
        tg_workers_post_close(srv->w->all);
    tg_server_close(srv);
}

void tg_server_check_done(struct tg_server *srv)
{
    if (srv->rt.draining)
        close_if_done(srv);
}

/* A session left the registry: the drain ends with the last one. */
static void session_ended(void *arg)
{
    struct tg_server *srv = arg;

    if (srv->rt.draining)
        close_if_done(srv);
}

int tg_server_init(struct tg_server *srv, uv_loop_t *loop, struct tg_config *cfg,
                   struct tg_worker *w, char *err, size_t errlen)
{
    unsigned reused;
    int rc;

    memset(srv, 0, sizeof(*srv));
    srv->w = w;
    srv->main = !w || w->id == 0;
    srv->rt.loop = loop;
    srv->rt.single_port = cfg->server.single_port;
    srv->rt.worker = w ? w->id : 0;
    srv->rt.nworkers = w ? w->all->n : 1;
    rc = tg_registry_init(&srv->rt.reg, cfg->server.max_sessions);
    srv->rt.reg.ended = session_ended;
    srv->rt.reg.arg = srv;
    srv->rt.backends = tg_calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*srv->rt.backends));
    srv->listeners = tg_calloc(cfg->server.nlisten ? cfg->server.nlisten : 1,
                               sizeof(*srv->listeners));
    /* The rate tables and session counts are every worker's
     * (gateway/workers.c made them before any request). */
    if (w) {
        srv->rt.rate = w->all->rate;
        srv->rt.sendrate = w->all->sendrate;
        srv->rt.shared = w->all->shared;
        srv->rt.reg.shared = w->all->shared;
        srv->rt.steer_key = w->all->steer_key;
        if (w->all->n > 1) {
            srv->rt.room_elsewhere = tg_workers_room_elsewhere;
            srv->rt.workers = w->all;
            srv->rt.heldmap = w->all->heldmap;
            srv->rt.hand_off = w->all->heldmap ? tg_workers_hand_off : NULL;
        }
    }
    srv->rt.macwait = tg_macwait_new(loop);
    if (rc != 0 || !srv->rt.backends || !srv->listeners || !srv->rt.macwait) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    /* srv->rt.cfg is set after the build: nothing to reuse at start. */
    rc = build_backends(srv, cfg, srv->rt.backends, &reused, err, errlen);
    srv->rt.cfg = cfg;
    if (rc == 0)
        own_backends(srv);
    return rc;
}

/* Keys that shape sockets and the process, not sessions. */
static void warn_restart_only(const struct tg_server_cfg *o, const struct tg_server_cfg *n)
{
    bool listen_same = o->nlisten == n->nlisten;

    for (size_t i = 0; listen_same && i < o->nlisten; i++)
        listen_same = strcmp(o->listen[i], n->listen[i]) == 0;
    if (!listen_same)
        tg_log(TG_LOG_WARN, "reload: listen changed; takes effect on restart");
    if (o->single_port != n->single_port)
        tg_log(TG_LOG_WARN, "reload: single_port changed; takes effect on restart");
    if ((o->user == NULL) != (n->user == NULL) || (o->user && strcmp(o->user, n->user)))
        tg_log(TG_LOG_WARN, "reload: user changed; takes effect on restart");
    if ((o->chroot == NULL) != (n->chroot == NULL) || (o->chroot && strcmp(o->chroot, n->chroot)))
        tg_log(TG_LOG_WARN, "reload: chroot changed; takes effect on restart");
    if ((o->metrics_listen == NULL) != (n->metrics_listen == NULL) ||
        (o->metrics_listen && strcmp(o->metrics_listen, n->metrics_listen)))
        tg_log(TG_LOG_WARN, "reload: metrics_listen changed; takes effect on restart");
    if (o->workers != n->workers)
        tg_log(TG_LOG_WARN, "reload: workers changed; takes effect on restart");
}

/* Reading and parsing the file is disk work: it runs on the thread pool
 * (invariant 1); building backends needs the loop and follows there. */
struct reload_job {
    uv_work_t work;
    struct tg_server *srv;
    char *path;
    struct tg_config *cfg;
    int rc;
    char err[512];
};

static void reload_work(uv_work_t *w)
{
    struct reload_job *j = tg_container_of(w, struct reload_job, work);

    j->rc = tg_config_load(j->path, &j->cfg, j->err, sizeof(j->err));
}

static int reload_apply(struct tg_server *srv, struct tg_config *cfg);

static void reload_after(uv_work_t *w, int status)
{
    struct reload_job *j = tg_container_of(w, struct reload_job, work);
    struct tg_server *srv = j->srv;

    srv->reload_busy = false;
    if (status != 0 || j->rc != 0)
        tg_log(TG_LOG_ERROR, "reload refused, running configuration kept: %s",
               status != 0 ? "cancelled" : j->err);
    else if (srv->rt.draining || srv->closed)
        tg_config_free(j->cfg); /* shutting down: nothing to reload into */
    else if (reload_apply(srv, j->cfg) == 0 && srv->w)
        tg_workers_post_gen(srv->w->all, srv->rt.cfg);
    tg_free(j->path);
    tg_free(j);
}

/* --root with --remap: a reload re-reads the rules file alone (as
 * tftpd-hpa does on SIGHUP), on the thread pool; the swap happens on the
 * loop, where requests read the rules, and only while negotiating. --root
 * always runs one worker (workers is a configuration file key), so no other
 * thread reads the rules being swapped. */
struct remap_job {
    uv_work_t work;
    struct tg_server *srv;
    char *path;
    struct tg_remap *rm;
    int rc;
    char err[512];
};

static void remap_reload_work(uv_work_t *w)
{
    struct remap_job *j = tg_container_of(w, struct remap_job, work);

    j->rc = tg_remap_load(j->path, &j->rm, j->err, sizeof(j->err));
}

static void remap_reload_after(uv_work_t *w, int status)
{
    struct remap_job *j = tg_container_of(w, struct remap_job, work);
    struct tg_config *cfg = j->srv->rt.cfg;

    j->srv->reload_busy = false;
    if (status != 0 || j->rc != 0) {
        tg_log(TG_LOG_ERROR, "reload refused, running remap rules kept: %s",
               status != 0 ? "cancelled" : j->rc == TG_ENOMEM ? "out of memory" : j->err);
    } else if (!j->srv->rt.draining && !j->srv->closed && cfg->nroutes == 1 &&
               cfg->routes[0].remap_file) {
        tg_remap_free(cfg->routes[0].remap);
        cfg->routes[0].remap = j->rm;
        j->rm = NULL;
        tg_log(TG_LOG_INFO, "reload: %zu remap rules from %s",
               tg_remap_count(cfg->routes[0].remap), j->path);
    }
    tg_remap_free(j->rm);
    tg_free(j->path);
    tg_free(j);
}

/* The read of a reload goes to the thread pool: the path is copied for it
 * and reload_busy is set until its after-callback runs. */
static int queue_read(struct tg_server *srv, uv_work_t *w, char **path, const char *src,
                      uv_work_cb work, uv_after_work_cb after)
{
    if (!(*path = tg_strdup(src))) {
        tg_log(TG_LOG_ERROR, "reload refused: out of memory");
        return TG_ENOMEM;
    }
    if (uv_queue_work(srv->rt.loop, w, work, after) != 0) {
        tg_free(*path);
        *path = NULL;
        tg_log(TG_LOG_ERROR, "reload refused: cannot queue the read");
        return TG_EINVAL;
    }
    srv->reload_busy = true;
    return 0;
}

static int remap_reload(struct tg_server *srv)
{
    struct remap_job *j = tg_calloc(1, sizeof(*j));
    int rc;

    if (!j) {
        tg_log(TG_LOG_ERROR, "reload refused: out of memory");
        return TG_ENOMEM;
    }
    j->srv = srv;
    rc = queue_read(srv, &j->work, &j->path, srv->rt.cfg->routes[0].remap_file,
                    remap_reload_work, remap_reload_after);
    if (rc != 0)
        tg_free(j);
    return rc;
}

int tg_server_reload(struct tg_server *srv)
{
    struct reload_job *j;
    int rc;

    if (!srv->rt.cfg->file && srv->rt.cfg->nroutes == 1 && srv->rt.cfg->routes[0].remap_file &&
        !srv->reload_busy)
        return remap_reload(srv);
    if (!srv->rt.cfg->file) {
        tg_log(TG_LOG_WARN, "reload: running on the built-in configuration (--root); nothing to reload");
        return TG_EINVAL;
    }
    if (srv->reload_busy) {
        tg_log(TG_LOG_WARN, "reload: one is already being read; send SIGHUP again after it");
        return TG_EAGAIN;
    }
    j = tg_calloc(1, sizeof(*j));
    if (!j) {
        tg_log(TG_LOG_ERROR, "reload refused: out of memory");
        return TG_ENOMEM;
    }
    j->srv = srv;
    rc = queue_read(srv, &j->work, &j->path, srv->rt.cfg->file, reload_work, reload_after);
    if (rc != 0)
        tg_free(j);
    return rc;
}

/* Uploads on the shared single port trust the client's source address,
 * which anyone can forge there (docs/security.md): say so at every start
 * and reload, per route, while the setting asks for it. */
static void warn_spoofable_writes(const struct tg_server *srv, const struct tg_config *cfg)
{
    if (!srv->rt.single_port || !cfg->server.single_port_writes)
        return;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct tg_route *r = &cfg->routes[i];

        if (r->write == TG_WRITE_OFF)
            continue;
        tg_log(TG_LOG_WARN,
               "route %s: uploads on the single port (single_port_writes = yes): a blind sender "
               "can forge a client address%s and store a file; single_port_writes = no gives "
               "each upload a port of its own",
               r->name, r->nallow ? " that the route's allow list trusts" : "");
    }
}

static int reload_apply(struct tg_server *srv, struct tg_config *cfg)
{
    struct tg_backend **be;
    unsigned reused = 0;
    char err[512];
    int rc;

    /* What the command line set stays set: the file's listen list would
     * only warn that it differs from the sockets --listen opened. */
    if (srv->cli_listen &&
        tg_config_set_listen(cfg, srv->rt.cfg->server.listen, srv->rt.cfg->server.nlisten) != 0) {
        tg_log(TG_LOG_ERROR, "reload refused: out of memory");
        tg_config_free(cfg);
        return TG_ENOMEM;
    }
    if (srv->cli_port_lo) {
        cfg->server.port_lo = srv->cli_port_lo;
        cfg->server.port_hi = srv->cli_port_hi;
    }
    be = tg_calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*be));
    if (!be) {
        tg_log(TG_LOG_ERROR, "reload refused: out of memory");
        tg_config_free(cfg);
        return TG_ENOMEM;
    }
    rc = build_backends(srv, cfg, be, &reused, err, sizeof(err));
    if (rc != 0) {
        bool fresh = false;

        tg_log(TG_LOG_ERROR, "reload refused, running configuration kept: %s", err);
        /* What was created may have started work (a cache's prefetch):
         * retire it rather than destroy it under that work. */
        for (size_t i = 0; i < cfg->nbackends; i++) {
            if (be[i] && was_reused(srv, be[i]))
                be[i] = NULL;
            else if (be[i])
                fresh = true;
        }
        if (!fresh || retire(srv, cfg, be) != 0) {
            tg_free(be);
            tg_config_free(cfg);
        }
        return rc;
    }
    warn_restart_only(&srv->rt.cfg->server, &cfg->server);
    /* Reused backends now belong to the new generation as well; free()
     * destroys each backend once whatever generations share it. */
    if (retire(srv, srv->rt.cfg, srv->rt.backends) != 0) {
        tg_log(TG_LOG_ERROR, "reload refused: out of memory");
        for (size_t i = 0; i < cfg->nbackends; i++)
            if (be[i] && was_reused(srv, be[i]))
                be[i] = NULL;
        (void)retire(srv, cfg, be);
        return TG_ENOMEM;
    }
    drop_held(srv->rt.backends, srv->rt.cfg->nbackends);
    srv->rt.cfg = cfg;
    srv->rt.backends = be;
    own_backends(srv);
    if (!srv->verbose)
        tg_log_init(cfg->server.log_level, cfg->server.log_format, cfg->server.log_target);
    srv->reloads++;
    warn_spoofable_writes(srv, cfg);
    tg_log(TG_LOG_INFO, "configuration reloaded from %s: %zu route(s), %zu backend(s), %u kept "
                        "running; %u session(s) finish on the previous one",
           cfg->file, cfg->nroutes, cfg->nbackends, reused, srv->rt.reg.count);
    return 0;
}

void tg_server_adopt(struct tg_server *srv, struct tg_config *cfg)
{
    struct tg_backend **be = tg_calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*be));
    unsigned reused = 0;
    char err[512];

    if (!be || build_backends(srv, cfg, be, &reused, err, sizeof(err)) != 0) {
        tg_log(TG_LOG_ERROR, "worker %u: reload not taken, its sessions keep the previous "
                             "configuration: %s", srv->rt.worker, be ? err : "out of memory");
        for (size_t i = 0; be && i < cfg->nbackends; i++)
            if (be[i] && was_reused(srv, be[i]))
                be[i] = NULL;
        if (!be || retire(srv, cfg, be) != 0)
            tg_free(be); /* what was built leaks rather than dies under its work */
        return;
    }
    if (retire(srv, srv->rt.cfg, srv->rt.backends) != 0) {
        tg_log(TG_LOG_ERROR, "worker %u: reload not taken: out of memory", srv->rt.worker);
        for (size_t i = 0; i < cfg->nbackends; i++)
            if (be[i] && was_reused(srv, be[i]))
                be[i] = NULL;
        (void)retire(srv, cfg, be);
        return;
    }
    drop_held(srv->rt.backends, srv->rt.cfg->nbackends);
    srv->rt.cfg = cfg;
    srv->rt.backends = be;
    srv->reloads++;
    tg_log(TG_LOG_DEBUG, "worker %u: configuration reloaded, %u backend(s) kept running",
           srv->rt.worker, reused);
}

void tg_server_begin_drain(struct tg_server *srv)
{
    if (srv->rt.draining || srv->closed)
        return;
    srv->drain_ms = srv->rt.cfg->server.drain_timeout_s * 1000u;
    tg_server_drain(srv);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct tg_server *srv = h->data;

    if (signum == SIGHUP) {
        if (!srv->rt.draining)
            (void)tg_server_reload(srv);
        return;
    }
    if (!srv->rt.draining) {
        srv->drain_ms = srv->rt.cfg->server.drain_timeout_s * 1000u;
        tg_log(TG_LOG_INFO, "signal %d: draining %u session(s), at most %u ms",
               signum, srv->rt.shared ? tg_shared_sessions(srv->rt.shared) : srv->rt.reg.count,
               srv->drain_ms);
        if (srv->w)
            tg_workers_post_drain(srv->w->all);
        tg_server_drain(srv);
        return;
    }
    tg_log(TG_LOG_WARN, "signal %d again: ending %u session(s) now", signum,
           srv->rt.shared ? tg_shared_sessions(srv->rt.shared) : srv->rt.reg.count);
    if (srv->w)
        tg_workers_post_abort(srv->w->all);
    tg_registry_abort_all(&srv->rt.reg, "server is shutting down");
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct tg_server *srv = t->data;

    tg_log(TG_LOG_WARN, "drain timeout: ending %u session(s)", srv->rt.reg.count);
    tg_registry_abort_all(&srv->rt.reg, "server is shutting down");
}

#define SD_LISTEN_FDS_START 3

/* systemd's socket activation protocol (sd_listen_fds(3)), without
 * libsystemd: LISTEN_PID names us, LISTEN_FDS counts descriptors from 3.
 * Returns how many were passed; they replace the configured addresses. */
int tg_server_passed_sockets(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    uint64_t p, n;

    if (!pid || !fds || tg_parse_u64(pid, UINT32_MAX, &p) != 0 || p != (uint64_t)getpid() ||
        tg_parse_u64(fds, 64, &n) != 0)
        return 0;
    /* Not for our children (none today, but the protocol asks). */
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return (int)n;
}

static int adopt_listeners(struct tg_server *srv, int n, char *err, size_t errlen)
{
    struct tg_listener *ls = tg_realloc(srv->listeners, (size_t)n * sizeof(*ls));

    if (!ls) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    srv->listeners = ls;
    for (int i = 0; i < n; i++) {
        /* Per-port mode with workers: every worker polls the same passed
         * socket through a descriptor of its own (docs/design.md). */
        int fd = srv->main ? SD_LISTEN_FDS_START + i : dup(SD_LISTEN_FDS_START + i);
        int rc = fd < 0 ? -errno
                        : tg_listener_adopt(&srv->listeners[srv->nlisteners], &srv->rt, fd,
                                            err, errlen);

        if (fd < 0)
            snprintf(err, errlen, "socket activation: dup: %s", strerror(errno));
        if (rc != 0)
            return rc;
        srv->nlisteners++;
    }
    if (srv->main)
        tg_log(TG_LOG_INFO, "socket activation: %d socket(s) from systemd; "
                            "[server] listen is not used", n);
    return 0;
}

int tg_server_start(struct tg_server *srv, char *err, size_t errlen)
{
    const struct tg_server_cfg *sc = &srv->rt.cfg->server;
    size_t i;
    int rc, passed = srv->w ? srv->w->all->passed : tg_server_passed_sockets();

    if (passed > 0) {
        rc = adopt_listeners(srv, passed, err, errlen);
        if (rc != 0)
            return rc;
    }
    for (i = 0; passed == 0 && i < sc->nlisten; i++) {
        rc = tg_listener_open(&srv->listeners[srv->nlisteners], &srv->rt, sc->listen[i], err,
                              errlen);
        if (rc == -EAFNOSUPPORT && sc->nlisten > 1) {
            /* A host without IPv6 still serves IPv4 with the default
             * "0.0.0.0:69 [::]:69". */
            tg_log(TG_LOG_WARN, "%s; skipped", err);
            continue;
        }
        if (rc != 0)
            return rc;
        srv->nlisteners++;
    }
    if (srv->nlisteners == 0) {
        snprintf(err, errlen, "no address to listen on");
        return TG_EINVAL;
    }
    uv_timer_init(srv->rt.loop, &srv->drain_timer);
    srv->drain_timer.data = srv;
    srv->handles_ready = true;
    if (!srv->main)
        return 0;
    if (sc->metrics_listen &&
        (rc = tg_metrics_serve(srv->rt.loop, sc->metrics_listen, err, errlen)) != 0)
        return rc;
    tg_metrics_set_transfers(transfers_json, srv);
    warn_spoofable_writes(srv, srv->rt.cfg);
    srv->signals_ready = true;
    uv_signal_init(srv->rt.loop, &srv->sig_int);
    uv_signal_init(srv->rt.loop, &srv->sig_term);
    uv_signal_init(srv->rt.loop, &srv->sig_hup);
    srv->sig_int.data = srv->sig_term.data = srv->sig_hup.data = srv;
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv->sig_hup, on_signal, SIGHUP);
    return 0;
}

void tg_server_drain(struct tg_server *srv)
{
    if (srv->rt.draining)
        return;
    srv->rt.draining = true;
    /* Listeners stay open until the end so new requests hear why they are
     * refused instead of timing out. */
    /* What is not a running transfer ends now: a dallying upload only
     * waits for a lost final ACK's echo, an unanswered request never
     * started. */
    tg_registry_drain(&srv->rt.reg);
    close_if_done(srv);
    if (srv->closed || !srv->handles_ready)
        return;
    uv_timer_start(&srv->drain_timer, on_drain_timeout, srv->drain_ms, 0);
}

void tg_server_close(struct tg_server *srv)
{
    size_t i;

    if (srv->closed)
        return;
    srv->closed = true;
    drop_held(srv->rt.backends, srv->rt.cfg ? srv->rt.cfg->nbackends : 0);
    /* A session that finished on a retired generation may have left one. */
    for (const struct tg_gen *g = srv->retired; g; g = g->next)
        drop_held(g->backends, g->cfg->nbackends);
    /* Before the listeners: what waits for a MAC holds their pointers. */
    tg_macwait_close(srv->rt.macwait);
    for (i = 0; i < srv->nlisteners; i++)
        tg_listener_close(&srv->listeners[i]);
    if (srv->w)
        tg_worker_closing(srv->w);
    if (srv->main) {
        tg_metrics_set_transfers(NULL, NULL);
        tg_metrics_close();
    }
    if (srv->handles_ready)
        uv_close((uv_handle_t *)&srv->drain_timer, NULL);
    if (!srv->signals_ready)
        return;
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
}

/* Whether b is also in a generation further down the list (shared by a
 * reload): it is destroyed there, once. */
static bool later_has(const struct tg_gen *g, const struct tg_backend *b)
{
    for (; g; g = g->next)
        for (size_t i = 0; i < g->cfg->nbackends; i++)
            if (g->backends[i] == b)
                return true;
    return false;
}

/* After the loop has stopped: nothing of a stream can still be in flight. */
void tg_server_free(struct tg_server *srv)
{
    struct tg_gen *g, *next;
    size_t i;

    for (i = 0; srv->rt.backends && i < srv->rt.cfg->nbackends; i++)
        if (srv->rt.backends[i] && !later_has(srv->retired, srv->rt.backends[i]))
            tg_backend_destroy(srv->rt.backends[i]);
    tg_free(srv->rt.backends);
    for (g = srv->retired; g; g = next) {
        next = g->next;
        for (i = 0; i < g->cfg->nbackends; i++)
            if (g->backends[i] && !later_has(next, g->backends[i]))
                tg_backend_destroy(g->backends[i]);
        tg_free(g->backends);
        if (srv->main) /* worker 0 owns every configuration */
            tg_config_free(g->cfg);
        tg_free(g);
    }
    srv->retired = NULL;
    for (i = 0; srv->listeners && i < srv->nlisteners; i++)
        tg_listener_free(&srv->listeners[i]);
    tg_free(srv->listeners);
    tg_registry_free(&srv->rt.reg);
    srv->rt.rate = NULL; /* gateway/workers.c's */
    srv->rt.sendrate = NULL;
    tg_macwait_free(srv->rt.macwait);
    srv->rt.macwait = NULL;
    srv->rt.backends = NULL;
    srv->listeners = NULL;
}
