/* gateway/workers.h - [server] workers: N event loops on N threads, each
 * with its own server (listeners, registry, backends); worker 0 runs on
 * the main thread and owns signals, the metrics endpoint and reload's
 * parsing. What crosses threads goes through each worker's mailbox (a
 * mutex and a uv_async_t). docs/design.md, "Workers". Owner:
 * gateway/workers.c. */
#ifndef TFTPGW_WORKERS_H
#define TFTPGW_WORKERS_H

#include <uv.h>

#include "live.h"
#include "server.h"

struct tg_workers;

struct tg_worker {
    struct tg_workers *all;
    unsigned id;
    uv_thread_t thread;
    bool spawned;
    uv_loop_t loop;          /* id > 0: its own; worker 0 runs on main's */
    struct tg_server srv;
    uv_async_t async;
    uv_sem_t started;
    int start_rc;
    char err[512];
    /* The mailbox: what other threads ask of this worker. */
    uv_mutex_t mu;
    bool open;               /* async may be sent */
    bool closed;             /* its server has closed: no sessions left */
    struct tg_config *gen;   /* a reload's configuration to adopt */
    bool drained;            /* draining, and its last session has ended */
    bool drain, abort, close_now, want_part, part_ready, peer_done;
    bool parts_in;           /* worker 0: another worker's part is ready */
    unsigned evict;          /* sessions to evict for other workers' requests */
    uint64_t want_seq;       /* the collection want_part is for */
    uint64_t part_seq;       /* the collection part was built for */
    struct tg_live_part part;
};

struct tg_collect;

struct tg_workers {
    unsigned n;
    int passed;              /* sockets systemd passed (0: none) */
    uint32_t steer_key;      /* single-port steering (gateway/listener.c) */
    struct tg_config *cfg;   /* the one workers start on */
    struct tg_shared *shared;
    struct tg_ratelimit *rate, *sendrate;
    struct tg_collect *collect; /* /transfers; worker 0's loop only */
    struct tg_worker w[];
};

/* How many workers cfg asks for, or -1 with err filled when it cannot run
 * (workers > 1 with a cache backend). passed: sockets systemd passed. */
int tg_workers_count(const struct tg_config *cfg, int passed, char *err, size_t errlen);
/* A cache backend is bound to its loop (docs/design.md, "Workers"). */
bool tg_workers_has_cache(const struct tg_config *cfg);
struct tg_workers *tg_workers_new(struct tg_config *cfg, unsigned n, int passed);
/* Worker 0's mailbox on the main loop; before its server starts. */
int tg_workers_attach_main(struct tg_workers *ws, uv_loop_t *loop);
/* Start workers 1..n-1, one after another (their sockets join each
 * SO_REUSEPORT group in worker order). */
int tg_workers_spawn(struct tg_workers *ws, char *err, size_t errlen);
void tg_workers_join(struct tg_workers *ws);
void tg_workers_free(struct tg_workers *ws);

/* From worker 0's loop. */
void tg_workers_post_gen(struct tg_workers *ws, struct tg_config *cfg);
void tg_workers_post_drain(struct tg_workers *ws);
void tg_workers_post_abort(struct tg_workers *ws);
/* Every other worker drained: worker 0 then closes them all at once, so
 * an SO_REUSEPORT group never shrinks while a transfer still runs (in
 * single-port mode its datagrams are steered by socket index). */
bool tg_workers_others_drained(struct tg_workers *ws);
void tg_workers_post_close(struct tg_workers *ws);
/* From worker i's loop: it is draining and has no session left. */
void tg_worker_drained(struct tg_worker *w);
/* Worker 0, GET /transfers (tg_metrics_transfers_fn): every worker's
 * part, merged. Returns the JSON at once when no other worker is open;
 * else NULL with *pending set, and the answer goes to
 * tg_metrics_transfers_reply(id) once every part is in or the deadline
 * passed. NULL without *pending: out of memory. */
char *tg_workers_transfers(struct tg_workers *ws, uint64_t id, size_t *len, bool *pending);
/* From a worker's loop (its struct tg_runtime's room_elsewhere): at
 * max_sessions with no session of its own to evict, ask the worker whose
 * registry may hold the most unproven sessions to end its oldest. False
 * when no other worker may have one. */
bool tg_workers_room_elsewhere(struct tg_runtime *rt);
/* From a worker's own loop when its server closes. */
void tg_worker_closing(struct tg_worker *w);

#endif
