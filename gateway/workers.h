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

/* Work one worker hands another (gateway/remote.c): fn runs on the
 * receiving worker's loop, in the order the calls were posted. The call's
 * memory is the poster's, and stays valid until fn has run. */
struct tg_call {
    struct tg_call *next;
    void (*fn)(struct tg_call *c);
    /* Optional: frees a call the worker closed before running. */
    void (*drop)(struct tg_call *c);
};

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
    struct tg_call *calls, **calls_tail; /* tg_worker_call, oldest first */
};

struct tg_collect;

struct tg_workers {
    unsigned n;
    int passed;              /* sockets systemd passed (0: none) */
    uint32_t steer_key;      /* single-port steering (gateway/listener.c) */
    struct tg_config *cfg;   /* the one workers start on */
    struct tg_shared *shared;
    struct tg_heldmap *heldmap; /* per-port mode: where held probes wait */
    struct tg_ratelimit *rate, *sendrate;
    struct tg_collect *collect; /* /transfers; worker 0's loop only */
    /* Worker 0's backends per configuration generation, for the stand-ins
     * other workers build for its caches (gateway/remote.c); generations
     * are never freed before exit, so neither are these. */
    uv_mutex_t gens_mu;
    struct tg_owned *gens;
    struct tg_worker w[];
};

/* How many workers cfg asks for. passed: sockets systemd passed. */
unsigned tg_workers_count(const struct tg_config *cfg, int passed);
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
/* Run c->fn on w's loop; false when w has closed (c was not queued). Any
 * thread. */
bool tg_worker_call(struct tg_worker *w, struct tg_call *c);
/* From a worker's loop (its struct tg_runtime's hand_off): post the
 * request l received to worker, which handles it at level on its socket
 * of the same address (gateway/listener.c, held_elsewhere). False when it
 * cannot be handed. */
bool tg_workers_hand_off(struct tg_runtime *rt, unsigned worker, const struct tg_listener *l,
                         const uint8_t *buf, size_t len, const struct sockaddr *peer,
                         const struct sockaddr *local, unsigned ifindex, enum tg_hand level);
/* Worker 0: backends is what it runs cfg with. */
void tg_workers_own(struct tg_workers *ws, const struct tg_config *cfg,
                    struct tg_backend **backends);
/* The backend worker 0 runs as cfg's i-th; NULL when it has none. */
struct tg_backend *tg_workers_owned(struct tg_workers *ws, const struct tg_config *cfg, size_t i);
/* From a worker's own loop when its server closes. */
void tg_worker_closing(struct tg_worker *w);

#endif
