/* gateway/server.h - the server: configuration generations and reload,
 * backends, listeners, signals and drain. Owner: gateway/server.c. */
#ifndef TFTPGW_SERVER_H
#define TFTPGW_SERVER_H

#include <uv.h>

#include "listener.h"
#include "runtime.h"

struct tg_gen;
struct tg_worker;

struct tg_server {
    struct tg_runtime rt;         /* shared with listeners and sessions */
    struct tg_listener *listeners;
    size_t nlisteners;
    bool handles_ready; /* drain timer initialised */
    bool signals_ready; /* worker 0: signals initialised */
    bool closed;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t drain_timer;
    unsigned drain_ms;
    struct tg_gen *retired;       /* configurations replaced by reloads */
    unsigned reloads;
    bool reload_busy;             /* a reload's file read is on the thread pool */
    bool verbose;                 /* -v: keep debug logging across reloads */
    unsigned cli_port_lo, cli_port_hi; /* --port-range, kept across reloads */
    bool cli_listen;                   /* --listen: its addresses outlive reloads */
    struct tg_worker *w;  /* gateway/workers.c; NULL: --check-config */
    bool main;            /* worker 0 (or no workers): signals, metrics, owns configurations */
};

/* w: the worker this server runs on (NULL: a check only, nothing shared). */
int tg_server_init(struct tg_server *srv, uv_loop_t *loop, struct tg_config *cfg,
                   struct tg_worker *w, char *err, size_t errlen);
/* The sockets systemd passed (sd_listen_fds(3)); call once, before workers. */
int tg_server_passed_sockets(void);
/* Workers 1..N-1: worker 0 parsed cfg and switched to it; this server
 * builds its own backends for it and switches too (worker 0 keeps cfg). */
void tg_server_adopt(struct tg_server *srv, struct tg_config *cfg);
/* Workers 1..N-1: worker 0 was told to drain. */
void tg_server_begin_drain(struct tg_server *srv);
/* Worker 0: another worker closed; close too once all have. */
void tg_server_check_done(struct tg_server *srv);
int tg_server_start(struct tg_server *srv, char *err, size_t errlen);
void tg_server_drain(struct tg_server *srv);
/* SIGHUP: read the same file again (on the thread pool), then new sessions
 * use the new routes and backends and running ones finish on theirs. A bad
 * file is refused with the reason logged and the running configuration
 * kept. Returns < 0 when no reload could be started. */
int tg_server_reload(struct tg_server *srv);
void tg_server_close(struct tg_server *srv); /* then run the loop until it ends */
void tg_server_free(struct tg_server *srv);   /* after the loop ran dry */

#endif
