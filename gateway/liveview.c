/* gateway/liveview.c - the rows of the live transfers view (docs/metrics.md,
 * "Live transfers"): one transfer described from the facts its session
 * hands over (gateway/session.c keeps its own struct private), a running
 * one's rate and stuck flag, and each worker's ring of the last finished
 * transfers and refused requests. It sits below gateway/session.c and
 * gateway/live.c, which builds the /transfers document from these rows.
 *
 * The rows are fixed size and the ring has LIVE_DONE of them, so what
 * clients send can make neither grow (invariant 2). */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "liveview.h"
#include "session.h"
#include "tftpgw/json.h"
#include "tftpgw/metrics.h"
#include "tftpgw/sockaddr.h"

#define LIVE_DONE 100  /* finished transfers kept for the view */
#define LIVE_NAME 256  /* longer file names are cut (the escaper copes with a cut UTF-8) */
#define LIVE_LABEL 64  /* route and backend names */

/* One transfer as the view shows it: a running one is described into one
 * on the stack, a finished one is kept in the ring. Fixed size, so the
 * ring is a constant ~70 KiB whatever clients send. */
struct live_row {
    char client[INET6_ADDRSTRLEN];
    unsigned port;
    enum tg_opcode op;
    enum tg_mode mode;
    char file[LIVE_NAME];
    char route[LIVE_LABEL], backend[LIVE_LABEL];
    unsigned blksize, windowsize;
    int64_t tsize;                 /* -1: unknown */
    uint64_t bytes, retransmits, age_ms;
    double rate;                   /* bytes/s */
    const char *state;             /* a static name */
    bool stuck;
    /* finished only */
    char result[24];
    char error[TG_ERRMSG_MAX];
    long long finished;            /* Unix time, seconds */
};

/* Per worker loop's thread (gateway/workers.c): each worker's sessions
 * finish into its own ring, which only its thread writes or reads (the
 * view asks each worker for its part). Allocated on first use. */
struct live_ring {
    struct live_row row[LIVE_DONE];
    unsigned next, n;              /* next slot to fill; slots used */
};
static _Thread_local struct live_ring *live_done;
static _Thread_local struct live_row live_scratch; /* out of memory: shown nowhere */

void tg_liveview_free(void)
{
    tg_free(live_done);
    live_done = NULL;
}

/* A cut copy (snprintf would warn about the cut, which is meant). */
static void live_copy(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;

    memcpy(dst, src ? src : "", n);
    dst[n] = '\0';
}

static unsigned peer_port(const struct sockaddr *ss)
{
    if (ss->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* The size the progress bar divides by: the negotiated tsize, or for an
 * octet read the size the backend announced (netascii grows on the wire). */
static int64_t live_size(const struct tg_live_facts *f)
{
    const struct tg_eng *e = f->eng;

    if (e->neg.tsize >= 0)
        return e->neg.tsize;
    if (e->op == TG_OP_RRQ && e->neg.mode == TG_MODE_OCTET && f->stream_size >= 0 &&
        e->state != TG_ES_OPENING)
        return f->stream_size;
    return -1;
}

static void live_describe(const struct tg_live_facts *f, struct live_row *r, uint64_t now)
{
    const struct tg_eng *e = f->eng;
    uint64_t end = e->ended_ms ? e->ended_ms : now;

    memset(r, 0, sizeof(*r));
    live_copy(r->client, sizeof(r->client), f->ip);
    r->port = peer_port(f->peer);
    r->op = e->op;
    r->mode = e->neg.mode;
    live_copy(r->file, sizeof(r->file), f->file);
    live_copy(r->route, sizeof(r->route), f->route);
    live_copy(r->backend, sizeof(r->backend), f->backend);
    r->blksize = e->neg.blksize;
    r->windowsize = e->neg.windowsize;
    r->tsize = live_size(f);
    r->bytes = tg_eng_bytes(e);
    r->retransmits = e->retransmits;
    r->age_ms = end > e->started_ms ? end - e->started_ms : 0;
    r->rate = r->age_ms ? (double)r->bytes * 1000.0 / (double)r->age_ms : 0;
    r->state = tg_eng_state_name(e->state);
}

static void live_json_row(struct tg_jbuf *b, const struct live_row *r, bool done)
{
    static const char *const fields[] = {"client", "file", "route", "backend"};
    const char *vals[] = {r->client, r->file, r->route[0] ? r->route : NULL,
                          r->backend[0] ? r->backend : NULL};

    for (size_t i = 0; i < TG_ARRAY_LEN(fields); i++) {
        tg_jbuf_printf(b, "%s\"%s\":", i ? "," : "{", fields[i]);
        tg_jbuf_jstr(b, vals[i]);
    }
    tg_jbuf_printf(b, ",\"port\":%u,\"op\":\"%s\",\"mode\":\"%s\",\"blksize\":%u,"
                   "\"windowsize\":%u,\"tsize\":", r->port, r->op == TG_OP_RRQ ? "rrq" : "wrq",
                   r->mode == TG_MODE_NETASCII ? "netascii" : "octet", r->blksize,
                   r->windowsize);
    if (r->tsize >= 0)
        tg_jbuf_printf(b, "%lld", (long long)r->tsize);
    else
        tg_jbuf_str(b, "null");
    tg_jbuf_printf(b, ",\"bytes\":%llu,\"rate\":%.0f,\"retransmits\":%llu,\"age\":%.1f,"
                   "\"state\":\"%s\",\"stuck\":%s", (unsigned long long)r->bytes, r->rate,
                   (unsigned long long)r->retransmits, (double)r->age_ms / 1000.0, r->state,
                   r->stuck ? "true" : "false");
    if (done) {
        tg_jbuf_printf(b, ",\"result\":\"%s\",\"error\":", r->result);
        tg_jbuf_jstr(b, r->error[0] ? r->error : NULL);
        tg_jbuf_printf(b, ",\"finished\":%lld", r->finished);
    }
    tg_jbuf_str(b, "}");
}

static struct live_row *live_next(void)
{
    struct live_row *r;

    if (!live_done && !(live_done = tg_calloc(1, sizeof(*live_done))))
        return &live_scratch;
    r = &live_done->row[live_done->next];
    live_done->next = (live_done->next + 1) % LIVE_DONE;
    if (live_done->n < LIVE_DONE)
        live_done->n++;
    return r;
}

/* Called from the session's finish(): the transfer joins the ring. */
void tg_liveview_finished(const struct tg_live_facts *f, const char *result, uint64_t now)
{
    struct live_row *r = live_next();

    live_describe(f, r, now);
    r->state = "done";
    live_copy(r->result, sizeof(r->result), result);
    live_copy(r->error, sizeof(r->error), f->eng->why.msg);
    r->finished = (long long)time(NULL);
}

/* A request refused before its session began (its name, its route, its
 * options): shown among the finished ones, because a client stuck on such
 * a refusal is what the view is looked at for. */
void tg_liveview_refused(const struct tg_request_ctx *rc, const struct tg_error *err)
{
    struct live_row *r = live_next();

    memset(r, 0, sizeof(*r));
    tg_sockaddr_ip(rc->peer, r->client, sizeof(r->client));
    r->port = peer_port(rc->peer);
    r->op = rc->op;
    r->mode = rc->req->mode && !strcasecmp(rc->req->mode, "netascii") ? TG_MODE_NETASCII
                                                                     : TG_MODE_OCTET;
    live_copy(r->file, sizeof(r->file), rc->req->filename);
    r->blksize = 512; /* RFC 1350 */
    r->windowsize = 1;
    r->tsize = -1;
    r->state = "refused";
    live_copy(r->result, sizeof(r->result), tg_metrics_refusal(err->code));
    live_copy(r->error, sizeof(r->error), err->msg);
    r->finished = (long long)time(NULL);
}

void tg_liveview_running(struct tg_jbuf *b, const struct tg_live_facts *f,
                         struct tg_live_probe *p, uint64_t now)
{
    const struct tg_eng *e = f->eng;
    struct live_row r;
    unsigned stall_ms = 2 * e->rto_init;

    live_describe(f, &r, now);
    /* Rate over the last one to two seconds of reads, when the view is
     * read that often; since the start otherwise. */
    if (!p->t[1] || now - p->t[1] >= 1000) {
        p->b[0] = p->b[1];
        p->t[0] = p->t[1];
        p->b[1] = r.bytes;
        p->t[1] = now;
    }
    if (p->t[0] && now > p->t[0] && now - p->t[0] <= 10000 && r.bytes >= p->b[0])
        r.rate = (double)(r.bytes - p->b[0]) * 1000.0 / (double)(now - p->t[0]);
    if (!p->prog_ms || r.bytes != p->prog_bytes) {
        p->prog_bytes = r.bytes;
        p->prog_ms = p->prog_ms || r.bytes ? now : e->started_ms;
    }
    /* Stuck: retransmitting right now, or nothing moved for two of the
     * server's timeouts (an upload dallying after its final ACK is done,
     * not stuck). */
    r.stuck = e->state != TG_ES_DALLY && (e->tries > 0 || now - p->prog_ms > stall_ms);
    live_json_row(b, &r, false);
}

void tg_liveview_json_finished(struct tg_jbuf *b)
{
    for (unsigned i = 0; live_done && i < live_done->n; i++) {
        unsigned at = (live_done->next + LIVE_DONE - 1 - i) % LIVE_DONE;

        if (i)
            tg_jbuf_str(b, ",");
        live_json_row(b, &live_done->row[at], true);
    }
}
