/* gateway/liveview.h - one transfer's row in the live transfers view
 * (docs/metrics.md, "Live transfers") and each worker's ring of finished
 * ones. Owner: gateway/liveview.c.
 *
 * A session hands over what the row shows as plain facts (struct
 * tg_live_facts), so this file never sees struct tg_session; the document
 * around the rows is gateway/live.c's. */
#ifndef TFTPGW_LIVEVIEW_H
#define TFTPGW_LIVEVIEW_H

#include <stdint.h>
#include <sys/socket.h>

#include "engine.h"

struct tg_jbuf;
struct tg_request_ctx;

/* One transfer as its session sees it, read while the call lasts. */
struct tg_live_facts {
    const struct tg_eng *eng;     /* op, options, bytes, state, clock */
    const char *ip;               /* the client's address */
    const struct sockaddr *peer;  /* ... and port */
    const char *file;             /* the name as the client sent it */
    const char *route, *backend;  /* NULL: none (yet) */
    int64_t stream_size;          /* the read stream's announced size; -1: none */
};

/* What the view remembers of a running transfer between two reads, for its
 * rate and its stuck flag: sampled when the view is read, so the hot path
 * pays nothing. Kept in the session, zeroed at its start. */
struct tg_live_probe {
    uint64_t b[2], t[2];           /* bytes at two times >= 1 s apart (rate) */
    uint64_t prog_bytes, prog_ms;  /* bytes when last seen to move (stuck) */
};

/* A running transfer as one JSON object at the loop time now (ms). */
void tg_liveview_running(struct tg_jbuf *b, const struct tg_live_facts *f,
                         struct tg_live_probe *p, uint64_t now);
/* A transfer that ended with result (its metrics label) joins the calling
 * thread's ring of finished ones; its error is the engine's why. */
void tg_liveview_finished(const struct tg_live_facts *f, const char *result, uint64_t now);
/* A request refused before its session began joins the same ring. */
void tg_liveview_refused(const struct tg_request_ctx *rc, const struct tg_error *err);
/* The last 100 of the ring, newest first, as JSON objects separated by
 * commas (the ring outlives reloads). */
void tg_liveview_json_finished(struct tg_jbuf *b);
/* The calling thread's ring, at its worker's end. */
void tg_liveview_free(void);

#endif
