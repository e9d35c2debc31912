/* gateway/runtime.h - what the server shares with its listeners and
 * sessions: the running configuration and its backends, the session
 * registry, the rate tables, one receive buffer. One per worker loop
 * (gateway/workers.c); the rate tables and the shared counts are the same
 * objects in every worker's, and lock themselves. gateway/server.c owns and
 * writes it (a reload swaps cfg and backends together); listeners and
 * sessions read it. Header only: data, no functions. */
#ifndef TFTPGW_RUNTIME_H
#define TFTPGW_RUNTIME_H

#include <uv.h>

#include "neighwait.h"
#include "registry.h"
#include "tftpgw/backend.h"
#include "tftpgw/config.h"
#include "tftpgw/ratelimit.h"

#define TG_RXBUF (TG_HDR + TG_BLKSIZE_MAX + 64)

struct tg_heldmap;
struct tg_listener;

/* A request another worker's socket received (gateway/listener.c,
 * held_elsewhere): CONFIRM asks the worker of a note whether its probe is
 * held, and to send the request back to where it came from if not;
 * FINAL is served where it arrives. */
enum tg_hand { TG_HAND_NONE, TG_HAND_CONFIRM, TG_HAND_FINAL };

/* Totals for the line logged at exit. */
struct tg_stats {
    uint64_t transfers_ok;
    uint64_t transfers_failed;
    uint64_t transfers_declined; /* a UEFI tsize probe: normal, not a failure */
    uint64_t requests_refused;
};

struct tg_runtime {
    uv_loop_t *loop;
    struct tg_config *cfg;         /* the running generation; new sessions */
    struct tg_backend **backends;  /* use it, parallel to cfg->backends */
    struct tg_registry reg;
    struct tg_stats stats;
    struct tg_ratelimit *rate;     /* rate_limit buckets (listener.c) */
    uint64_t rl_logged_s;          /* second of the last rate-limit log line */
    struct tg_ratelimit *sendrate; /* client_rate buckets, in KiB */
    struct tg_macwait *macwait;    /* {client_mac}: lookups and the requests waiting */
    uint64_t mac_logged_s;         /* second of the last "lookups busy" log line */
    bool single_port;              /* fixed at start: listeners carry the transfers */
    struct tg_shared *shared;      /* session counts of every worker (gateway/shared.h) */
    unsigned worker, nworkers;     /* this loop's index, and how many run (gateway/workers.c) */
    uint32_t steer_key;            /* single-port steering's key, the same in every worker */
    /* Full, and none of this worker's sessions can be evicted: ask a worker
     * that may have an unproven one to end it (true when asked). NULL with
     * one worker. */
    bool (*room_elsewhere)(struct tg_runtime *rt);
    void *workers;                 /* for room_elsewhere (gateway/workers.c) */
    /* Per-port mode with several workers: where held UEFI probes wait
     * (gateway/heldmap.h), and the hand-off of a request to another
     * worker (true when handed; gateway/workers.c). NULL otherwise. */
    struct tg_heldmap *heldmap;
    bool (*hand_off)(struct tg_runtime *rt, unsigned worker, const struct tg_listener *l,
                     const uint8_t *buf, size_t len, const struct sockaddr *peer,
                     const struct sockaddr *local, unsigned ifindex, enum tg_hand level);
    uint64_t room_logged_s;        /* second of the last "asked another worker" line */
    bool draining;
    /* One receive buffer for the whole loop: every datagram is handled to
     * the end before the next recv, and anything kept is copied out. */
    uint8_t rxbuf[TG_RXBUF];
};

#endif
