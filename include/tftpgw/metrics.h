/* include/tftpgw/metrics.h - Prometheus metrics: a process-wide registry
 * and its HTTP endpoint (docs/metrics.md lists every series).
 *
 * The registry belongs to the process, not to a server or a configuration,
 * so its counters run on across a configuration reload. Updates may come
 * from every worker loop's thread (gateway/metrics.c says how they stay
 * exact); render and the endpoint belong to worker 0's. */
#ifndef TFTPGW_METRICS_H
#define TFTPGW_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Distinct values one label of one family may take; later new values are
 * counted under "other", so a stream of odd names cannot grow memory. */
#define TG_METRICS_MAX_VALUES 256

/* Workers' scalar slots; a larger index shares the last one. */
#define TG_METRICS_MAX_WORKERS 64

/* Called once on each worker loop's thread, before its first update: its
 * per-datagram counters go to slot id (0 for the main thread). */
void tg_metrics_set_worker(unsigned id);

/* ---- updates (cheap: no allocation once a label value has been seen) ---- */

/* op: "rrq" or "wrq"; route: the route's name. A started transfer also
 * counts in tftpgw_active_sessions until its tg_metrics_transfer_finished,
 * so every started transfer must be finished exactly once. */
void tg_metrics_transfer_started(const char *op, const char *route);
void tg_metrics_transfer_finished(const char *op, const char *route, const char *result);

void tg_metrics_bytes_sent(uint64_t n);     /* DATA payload put on the wire */
void tg_metrics_bytes_received(uint64_t n); /* DATA payload accepted */
void tg_metrics_retransmits(uint64_t n);    /* timeouts that resent something */

/* reason: busy, rate_limited, shutdown, bad_request, denied, not_found,
 * too_large, options_refused, error (tg_metrics_refusal maps codes). */
void tg_metrics_request_refused(const char *reason);

/* Seconds from asking a backend (open, commit) to its answer. */
void tg_metrics_backend_latency(const char *backend, double seconds);

/* event: hit, miss, revalidation, stale, eviction. */
void tg_metrics_cache_event(const char *cache, const char *event);

/* ---- label helpers: the one place TFTP outcomes become label values ---- */

/* A finished session's result label. outcome is the session's own word
 * ("ok", "unconfirmed", "timeout", "declined", "aborted", "superseded",
 * "error"); for "error", tftp_code is the code sent, and shutting_down says
 * the server was ending sessions when it happened. */
const char *tg_metrics_result(const char *outcome, unsigned tftp_code, bool shutting_down);
/* A request refused before any session existed, by the code sent. */
const char *tg_metrics_refusal(unsigned tftp_code);

/* ---- exposition ---- */

/* The whole registry in Prometheus text format 0.0.4. Returns a tg_malloc'd
 * NUL-terminated string (tg_free it) and its length in *len, or NULL when
 * out of memory. */
char *tg_metrics_render(size_t *len);

/* Serve GET /metrics on listen ("127.0.0.1:9169", "[::1]:9169"; numeric
 * addresses; port 0 picks a free one) on loop. A second call with the same
 * address keeps the endpoint; another address replaces it. On failure err
 * says why and the return is a negative errno. */
int tg_metrics_serve(uv_loop_t *loop, const char *listen, char *err, size_t errlen);
/* GET /transfers, the live transfers view (docs/metrics.md): fn builds
 * its JSON for request id (unique per request) and returns tg_malloc'd
 * text and its length, or NULL. NULL with *pending set means the answer
 * comes later, on this loop, through tg_metrics_transfers_reply(id, ...);
 * NULL without it means out of memory. The server that owns the transfers
 * sets fn (gateway/server.c) and clears it (NULL) before it goes; without
 * one the answer is 503. */
typedef char *tg_metrics_transfers_fn(void *arg, uint64_t id, size_t *len, bool *pending);
void tg_metrics_set_transfers(tg_metrics_transfers_fn *fn, void *arg);
/* The answer to a pending request id: json (tg_malloc'd, or NULL for out
 * of memory) is the endpoint's from here on. A connection that closed
 * meanwhile, its deadline passed, just drops it. Worker 0's loop only. */
void tg_metrics_transfers_reply(uint64_t id, char *json, size_t len);
/* GET /: the page that shows that view (gateway/live_page.c). */
extern const char tg_live_page[];

/* Close the endpoint and every connection; the loop then runs dry. */
void tg_metrics_close(void);

/* Free every series and zero every counter (tests). */
void tg_metrics_reset(void);

#ifdef UNIT_TESTING
extern uint64_t tg_metrics_conn_timeout_ms;
extern uint64_t tg_metrics_head_timeout_ms;
extern unsigned tg_metrics_max_conns;
extern unsigned tg_metrics_max_per_client;
int tg_metrics_port(void);
unsigned tg_metrics_open_conns(void); /* connections not closing */
#endif

#endif
