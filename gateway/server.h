/* gateway/server.h - the server: configuration generations and reload,
 * backends, listeners, signals and drain. Owner: gateway/server.c. */
#ifndef TFTPGW_SERVER_H
#define TFTPGW_SERVER_H

#include <uv.h>

#include "listener.h"
#include "runtime.h"

struct tg_gen;

struct tg_server {
    struct tg_runtime rt;         /* shared with listeners and sessions */
    struct tg_listener *listeners;
    size_t nlisteners;
    bool handles_ready; /* signals and drain timer initialised */
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
};

int tg_server_init(struct tg_server *srv, uv_loop_t *loop, struct tg_config *cfg,
                   char *err, size_t errlen);
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
