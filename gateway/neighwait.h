/* gateway/neighwait.h - requests waiting for their client's MAC, and the
 * rtnetlink lookups that answer them. Owner: gateway/neighwait.c.
 *
 * A request whose route needs {client_mac} and whose answer is not cached
 * is parked here (a copy of its datagram and addresses, nothing sent);
 * when the lookup ends, the answer is cached and the owner's callback gets
 * the request back to start it. Bounded (docs/security.md, "Client MAC
 * lookup"): TG_MW_PARKED requests, TG_MW_INFLIGHT lookups at once, and
 * TG_MW_RATE lookups started per second; past them a request is dropped
 * (the client retransmits it). */
#ifndef TFTPGW_NEIGHWAIT_H
#define TFTPGW_NEIGHWAIT_H

#include <netinet/in.h>
#include <uv.h>

#include "tftpgw/neigh.h"

#define TG_MW_PARKED 64      /* requests waiting, all clients together */
#define TG_MW_INFLIGHT 32    /* lookups sent and not yet answered */
#define TG_MW_RATE 256       /* lookups started per second (and burst) */
#define TG_MW_TIMEOUT_MS 1000 /* a lookup the kernel never answered */
#define TG_MW_DGRAM_MAX 4096 /* the longest request kept */

struct tg_macwait;

/* A parked request, given back: the datagram as received, its addresses. */
struct tg_mw_request {
    const uint8_t *dgram;
    size_t len;
    const struct sockaddr *peer, *local;
    unsigned ifindex;
};
typedef void tg_mw_cb(void *owner, const struct tg_mw_request *r);

enum tg_mw_park {
    TG_MW_PARKED_OK = 0, /* waiting; cb runs when the answer is known */
    TG_MW_DUPLICATE,     /* the same datagram from the same peer already waits */
    TG_MW_FULL,          /* no room, or the lookup budget is spent: dropped */
};

/* NULL when out of memory. Nothing is opened until the first lookup. */
struct tg_macwait *tg_macwait_new(uv_loop_t *loop);
/* Drops what waits (logged) and closes the socket and timer. */
void tg_macwait_close(struct tg_macwait *mw);
/* After the loop ran the close callbacks. NULL is fine. */
void tg_macwait_free(struct tg_macwait *mw);

/* What the cache knows of k now (TG_NEIGH_MISS: ask). */
enum tg_neigh_state tg_macwait_cached(struct tg_macwait *mw, const struct tg_neigh_key *k,
                                      char mac[TG_MAC_STRLEN], char why[TG_NEIGH_WHY_MAX]);
/* Park r until k's answer is known, starting its lookup if none runs. */
enum tg_mw_park tg_macwait_park(struct tg_macwait *mw, const struct tg_neigh_key *k,
                                const struct tg_mw_request *r, tg_mw_cb *cb, void *owner);

#endif
