/* gateway/server.c - owns the loop-wide objects: backends, listeners, the
 * session list, signals, and the drain on shutdown. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"

#define DRAIN_MS 30000

static struct tg_backend *find_backend(void *ctx, const char *name)
{
    return tg_server_backend(ctx, name);
}

int tg_server_init(struct tg_server *srv, uv_loop_t *loop, struct tg_config *cfg,
                   char *err, size_t errlen)
{
    size_t i;

    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;
    srv->drain_ms = DRAIN_MS;
    srv->single_port = cfg->server.single_port;
    /* Chains of about one session each at max_sessions; a reload that
     * raises it only makes them longer. */
    for (srv->pmask = 63; srv->pmask < cfg->server.max_sessions && srv->pmask < 65535;)
        srv->pmask = srv->pmask * 2 + 1;
    srv->ptab = tg_calloc((size_t)srv->pmask + 1, sizeof(*srv->ptab));
    srv->backends = tg_calloc(cfg->nbackends ? cfg->nbackends : 1, sizeof(*srv->backends));
    srv->listeners = tg_calloc(cfg->server.nlisten ? cfg->server.nlisten : 1,
                               sizeof(*srv->listeners));
    if (!srv->backends || !srv->listeners || !srv->ptab) {
        snprintf(err, errlen, "out of memory");
        return TG_ENOMEM;
    }
    for (i = 0; i < cfg->nbackends; i++) {
        char e[256];
        int rc = tg_backend_create(loop, &cfg->backends[i], &srv->backends[i], e, sizeof(e));

        if (rc != 0) {
            snprintf(err, errlen, "%s: [backend %s] %s", cfg->file ? cfg->file : "(built-in)",
                     cfg->backends[i].name, e);
            return rc;
        }
    }
    for (i = 0; i < cfg->nbackends; i++) {
        char e[256];
        struct tg_backend *b = srv->backends[i];
        int rc;

        if (!b->ops->link)
            continue;
        rc = b->ops->link(b, find_backend, srv, e, sizeof(e));
        if (rc != 0) {
            snprintf(err, errlen, "%s: [backend %s] %s", cfg->file ? cfg->file : "(built-in)",
                     cfg->backends[i].name, e);
            return rc;
        }
    }
    return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct tg_server *srv = h->data;

    if (signum == SIGHUP) {
        tg_log(TG_LOG_WARN, "SIGHUP: configuration reload is not implemented yet; "
                            "running configuration unchanged");
        return;
    }
    if (!srv->draining) {
        tg_log(TG_LOG_INFO, "signal %d: draining %u session(s), at most %u ms",
               signum, srv->nsessions, srv->drain_ms);
        tg_server_drain(srv);
        return;
    }
    tg_log(TG_LOG_WARN, "signal %d again: ending %u session(s) now", signum, srv->nsessions);
    tg_sessions_abort_all(srv, "server is shutting down");
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct tg_server *srv = t->data;

    tg_log(TG_LOG_WARN, "drain timeout: ending %u session(s)", srv->nsessions);
    tg_sessions_abort_all(srv, "server is shutting down");
}

#define SD_LISTEN_FDS_START 3

/* systemd's socket activation protocol (sd_listen_fds(3)), without
 * libsystemd: LISTEN_PID names us, LISTEN_FDS counts descriptors from 3.
 * Returns how many were passed; they replace the configured addresses. */
static int passed_sockets(void)
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
        int rc = tg_listener_adopt(&srv->listeners[srv->nlisteners], srv,
                                   SD_LISTEN_FDS_START + i, err, errlen);

        if (rc != 0)
            return rc;
        srv->nlisteners++;
    }
    tg_log(TG_LOG_INFO, "socket activation: %d socket(s) from systemd; "
                        "[server] listen is not used", n);
    return 0;
}

int tg_server_start(struct tg_server *srv, char *err, size_t errlen)
{
    const struct tg_server_cfg *sc = &srv->cfg->server;
    size_t i;
    int rc, passed = passed_sockets();

    if (passed > 0) {
        rc = adopt_listeners(srv, passed, err, errlen);
        if (rc != 0)
            return rc;
    }
    for (i = 0; passed == 0 && i < sc->nlisten; i++) {
        rc = tg_listener_open(&srv->listeners[srv->nlisteners], srv, sc->listen[i], err, errlen);
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
    if (sc->metrics_listen &&
        (rc = tg_metrics_serve(srv->loop, sc->metrics_listen, err, errlen)) != 0)
        return rc;
    srv->handles_ready = true;
    uv_signal_init(srv->loop, &srv->sig_int);
    uv_signal_init(srv->loop, &srv->sig_term);
    uv_signal_init(srv->loop, &srv->sig_hup);
    uv_timer_init(srv->loop, &srv->drain_timer);
    srv->sig_int.data = srv->sig_term.data = srv->sig_hup.data = srv;
    srv->drain_timer.data = srv;
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv->sig_hup, on_signal, SIGHUP);
    return 0;
}

void tg_server_drain(struct tg_server *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    /* Listeners stay open until the end so new requests hear why they are
     * refused instead of timing out. */
    /* Dallying sessions only wait for a lost final ACK's echo. */
    tg_sessions_end_dallying(srv);
    if (srv->nsessions == 0) {
        tg_server_close(srv);
        return;
    }
    uv_timer_start(&srv->drain_timer, on_drain_timeout, srv->drain_ms, 0);
}

void tg_server_session_ended(struct tg_server *srv)
{
    if (srv->draining && srv->nsessions == 0)
        tg_server_close(srv);
}

void tg_server_close(struct tg_server *srv)
{
    size_t i;

    if (srv->closed)
        return;
    srv->closed = true;
    for (i = 0; i < srv->nlisteners; i++)
        tg_listener_close(&srv->listeners[i]);
    tg_metrics_close();
    if (!srv->handles_ready)
        return;
    uv_close((uv_handle_t *)&srv->sig_int, NULL);
    uv_close((uv_handle_t *)&srv->sig_term, NULL);
    uv_close((uv_handle_t *)&srv->sig_hup, NULL);
    uv_close((uv_handle_t *)&srv->drain_timer, NULL);
}

/* After the loop has stopped: nothing of a stream can still be in flight. */
void tg_server_free(struct tg_server *srv)
{
    size_t i;

    for (i = 0; srv->backends && i < srv->cfg->nbackends; i++)
        if (srv->backends[i])
            tg_backend_destroy(srv->backends[i]);
    tg_free(srv->backends);
    for (i = 0; srv->listeners && i < srv->nlisteners; i++)
        tg_free(srv->listeners[i].rx);
    tg_free(srv->listeners);
    tg_free(srv->ptab);
    srv->backends = NULL;
    srv->listeners = NULL;
    srv->ptab = NULL;
}

struct tg_backend *tg_server_backend(struct tg_server *srv, const char *name)
{
    size_t i;

    for (i = 0; i < srv->cfg->nbackends; i++)
        if (strcmp(srv->cfg->backends[i].name, name) == 0)
            return srv->backends[i];
    return NULL;
}
