/* gateway/session.h - one transfer, from its request to its log line.
 * Owner: gateway/session.c. */
#ifndef TFTPGW_SESSION_H
#define TFTPGW_SESSION_H

#include <netinet/in.h>

#include "tftpgw/packet.h"

struct tg_sendq;

struct tg_jbuf;
struct tg_runtime;
struct tg_session;

struct tg_request_ctx {
    enum tg_opcode op;
    const struct tg_request *req;
    const struct sockaddr *peer;
    const struct sockaddr *local; /* where the request was sent */
    unsigned ifindex;             /* for IPv6 link-local replies */
    int listen_fd;                /* the listener's socket (single-port mode) */
    struct tg_sendq *sendq;       /* the listener's batch of replies (single-port mode) */
    const char *client_mac;       /* "52-54-00-..." when the route needs it and it is
                                     known; NULL otherwise (gateway/neighwait.h) */
};

/* Validate, route and negotiate a request, then start its session on the
 * running configuration. On a refusal before the session exists, err is
 * filled and the listener sends it; returns < 0 then. */
int tg_session_start(struct tg_runtime *rt, const struct tg_request_ctx *rc,
                     struct tg_error *err);
/* The client sent its request again before we heard from it: answer once
 * more (no amplification: one answer per request). */
void tg_session_retransmit(struct tg_session *s);
/* Single-port mode: a datagram the listener received from the session's
 * client. */
void tg_session_input(struct tg_session *s, const uint8_t *buf, size_t len);
/* Single-port mode: a new request from the session's client address:port. */
void tg_session_supersede(struct tg_session *s);

/* The live transfers view (docs/metrics.md, "Live transfers"): one running
 * transfer as a JSON object (gateway/liveview.c writes it). Not const:
 * reading it samples the transfer's progress for its rate and its stuck
 * flag. now: the loop's ms clock. The finished ones: gateway/liveview.h. */
void tg_session_json(struct tg_session *s, struct tg_jbuf *b, uint64_t now);

#endif
