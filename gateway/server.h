/* gateway/server.h - the gateway's runtime objects: server, listeners and
 * sessions. Internal to gateway/; backends never see these. */
#ifndef TFTPGW_SERVER_H
#define TFTPGW_SERVER_H

#include <netinet/in.h>
#include <sys/socket.h>
#include <uv.h>

#include "tftpgw/backend.h"
#include "tftpgw/config.h"
#include "tftpgw/netascii.h"
#include "tftpgw/options.h"
#include "tftpgw/ratelimit.h"
#include "tftpgw/window.h"

#define TG_RXBUF (TG_HDR + TG_BLKSIZE_MAX + 64)

struct tg_session;
struct tg_gen;

struct tg_listener {
    struct tg_server *srv;
    int fd;
    uv_poll_t poll;
    bool open;
    bool adopted;       /* handed over by systemd (socket activation) */
    uint8_t *rx;        /* recvmmsg slots, rx_slot bytes each */
    size_t rx_slot;
    struct sockaddr_storage addr;
    char label[80]; /* "127.0.0.1:6969" */
};

struct tg_stats {
    uint64_t sessions_started;
    uint64_t transfers_ok;
    uint64_t transfers_failed;
    uint64_t requests_refused;
    uint64_t bytes_sent;
    uint64_t bytes_received;
    uint64_t retransmits;
};

struct tg_server {
    uv_loop_t *loop;
    struct tg_config *cfg;
    struct tg_backend **backends; /* parallel to cfg->backends */
    struct tg_listener *listeners;
    size_t nlisteners;
    struct tg_session *sessions;  /* intrusive doubly linked list */
    unsigned nsessions;
    struct tg_session **ptab;     /* sessions by client address:port */
    unsigned pmask;               /* ptab has pmask + 1 chains */
    bool single_port;             /* fixed at start: listeners carry the transfers */
    bool draining;
    bool handles_ready; /* signals and drain timer initialised */
    bool closed;
    uv_signal_t sig_int, sig_term, sig_hup;
    uv_timer_t drain_timer;
    unsigned drain_ms;
    struct tg_stats stats;
    struct tg_ratelimit *rate;    /* rate_limit buckets (gateway/ratelimit.c) */
    struct tg_ratelimit *sendrate; /* client_rate buckets, in KiB */
    uint64_t rl_logged_s;        /* second of the last rate-limit log line */
    struct tg_gen *retired;       /* configurations replaced by reloads */
    unsigned reloads;
    bool reload_busy;             /* a reload's file read is on the thread pool */
    bool verbose;                 /* -v: keep debug logging across reloads */
    unsigned cli_port_lo, cli_port_hi; /* --port-range, kept across reloads */
    /* One receive buffer for the whole loop: every datagram is handled to
     * the end before the next recv, and anything kept is copied out. */
    uint8_t rxbuf[TG_RXBUF];
};

/* gateway/server.c */
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
struct tg_backend *tg_server_backend(struct tg_server *srv, const char *name);
/* A session left the server's list (drain bookkeeping). */
void tg_server_session_ended(struct tg_server *srv);

/* gateway/listener.c */
int tg_listener_open(struct tg_listener *l, struct tg_server *srv,
                     const char *spec, char *err, size_t errlen);
/* Socket activation: take over a bound UDP socket systemd passed. */
int tg_listener_adopt(struct tg_listener *l, struct tg_server *srv, int fd,
                      char *err, size_t errlen);
void tg_listener_close(struct tg_listener *l);
void tg_listener_send_error(struct tg_listener *l, const struct sockaddr *peer,
                            uint16_t code, const char *msg);
void tg_sockaddr_str(const struct sockaddr *sa, char *out, size_t cap);
bool tg_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);

/* gateway/session.c */
struct tg_request_ctx {
    enum tg_opcode op;
    const struct tg_request *req;
    const struct sockaddr *peer;
    const struct sockaddr *local; /* where the request was sent */
    unsigned ifindex;             /* for IPv6 link-local replies */
};

/* Validate, route and negotiate a request, then start its session. On a
 * refusal before the session exists, err is filled and the listener sends
 * it; returns < 0 then. */
int tg_session_start(struct tg_server *srv, struct tg_listener *l,
                     const struct tg_request_ctx *rc, struct tg_error *err);
/* A request equal to one whose session has not heard from its client yet
 * (same peer address and port, op and filename): a retransmission. */
struct tg_session *tg_session_find_dup(struct tg_server *srv,
                                       const struct sockaddr *peer,
                                       enum tg_opcode op, const char *filename);
void tg_session_retransmit(struct tg_session *s);
unsigned tg_session_count_client(struct tg_server *srv, const struct sockaddr *peer);
/* Single-port mode: the session of this client address:port, if any; what
 * the listener hands it; and ending it for a new request from that port. */
struct tg_session *tg_session_find_peer(struct tg_server *srv, const struct sockaddr *peer);
bool tg_session_same_request(const struct tg_session *s, enum tg_opcode op,
                             const char *filename);
bool tg_session_heard(const struct tg_session *s);
/* The session's datagrams use the listener's socket (single-port mode). */
bool tg_session_shared(const struct tg_session *s);
void tg_session_input(struct tg_session *s, const uint8_t *buf, size_t len);
void tg_session_supersede(struct tg_session *s);
/* Shutdown: end every session with ERROR 0 and msg; or only those that
 * merely linger after a finished upload or never heard from their client. */
void tg_sessions_abort_all(struct tg_server *srv, const char *msg);
void tg_sessions_end_dallying(struct tg_server *srv);
/* At max_sessions: end the oldest session whose client never proved it
 * hears us (spoofed requests cannot lock real clients out). False if none. */
bool tg_session_evict_unheard(struct tg_server *srv);

#endif
