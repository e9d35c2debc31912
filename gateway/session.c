/* gateway/session.c - one transfer, as glue: it turns a request into an
 * engine (gateway/engine.c, the protocol), a transport (gateway/transport.c,
 * the socket) and a backend stream, then carries events to the engine and
 * the engine's actions out. It owns the libuv handles (the socket's poll,
 * the one timer), the sender's two fills (octet: reads straight into the
 * window's slots; netascii: reads into a staging buffer, then encodes),
 * and the transfer's log line.
 *
 *   datagram (input)     ─┐                      ┌─ SEND_* ─────────────▶ transport
 *   stream   (on_stream) ─┼─▶ run ─▶ tg_eng_run ─┼─ FILL, PUSH, COMMIT ─▶ stream
 *   timer    (on_timer)  ─┘                      └─ ARM, READ_*, FINISH    (here)
 *
 * Actions with a result (FILL, SEND_DATA, PUSH) report it to the engine at
 * once, so one event can run a short chain: ACK -> FILL -> FILLED ->
 * SEND_DATA -> SENT -> ARM.
 *
 * The live view's rows and the ring of finished transfers are
 * gateway/liveview.c's: this file only hands it a transfer's facts (struct
 * tg_live_facts), so struct tg_session stays private here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "heldmap.h"
#include "liveview.h"
#include "registry.h"
#include "runtime.h"
#include "session.h"
#include "transport.h"
#include "tftpgw/json.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/neigh.h"
#include "tftpgw/path.h"
#include "tftpgw/remap.h"
#include "tftpgw/route.h"
#include "tftpgw/sockaddr.h"

#define BURST 64       /* datagrams taken per wakeup, so one busy client cannot starve the loop */
#define SEND_BATCH 64  /* datagrams handed to the transport at once */
#define CTL_MAX 512    /* OACK, ACK or ERROR */
#define READ_IOV_MAX 64 /* window slots offered to one read */

struct tg_session {
    struct tg_reg_entry reg; /* the server's registry: peer, request, ops */
    struct tg_runtime *rt;
    struct tg_eng eng;
    struct tg_transport tp;
    uv_poll_t poll;          /* own socket only */
    uv_timer_t timer;
    int open_handles;        /* freed when the last uv_close callback ran */
    bool reading;            /* the engine takes datagrams (READ_ON / READ_OFF) */
    bool done;               /* FINISH ran: nothing more goes to the engine */
    unsigned sends;          /* datagrams handed to the transport (on_readable) */
    bool proven_noted;       /* the registry heard that its client proved itself */
    uint64_t deadline;       /* the engine's timer; 0: disarmed */
    uint64_t timer_due;      /* when the uv timer will actually fire */
    char *reqname;           /* the filename as the client sent it (dedupe) */
    bool remapped;           /* the route's remap rules changed it: path is theirs */
    char path[TG_PATH_MAX];
    struct tg_route_match match;
    char mac[TG_MAC_STRLEN]; /* the client's, when its route asked; "" otherwise */
    struct tg_stream *stream;
    struct tg_backend *served; /* the backend asked last: the one that serves */
    size_t layer;            /* its index in the route's backend list */
    char *asked;             /* debug only: the options as the client sent them */
    bool opts_logged;
    uint64_t be_t0;          /* uv_hrtime() when the backend was asked to open or commit */
    bool held;               /* the stream continues a held probe's (probe_hold) */
    uint64_t probe_note;     /* its note in rt->heldmap while it may be a probe, or 0 */
    struct tg_live_probe live; /* the live view's samples (gateway/liveview.h) */

    /* netascii's fill */
    bool netascii;
    struct tg_na_enc na_enc;
    uint8_t *na_raw;         /* netascii: source bytes not yet encoded */
    size_t na_len, na_off;
    bool src_eof;
};

static void run(struct tg_session *s, const struct tg_eng_ev *ev);

static void run_kind(struct tg_session *s, enum tg_eng_ev_kind kind)
{
    struct tg_eng_ev ev = {.kind = kind};

    run(s, &ev);
}

/* The stream's error as an event: FAILED, or fill's or push's error. */
static void stream_error(struct tg_session *s, struct tg_eng_ev *ev, const char *fallback)
{
    ev->code = s->stream->err.code ? s->stream->err.code : TG_TFTP_EUNDEF;
    ev->msg = s->stream->err.msg[0] ? s->stream->err.msg : fallback;
}

/* ---- the sender's fills (FILL -> FILLED) ---- */

/* The window's free room as a read's buffers: the rest of the slot being
 * filled, then whole slots, in order. */
static unsigned window_iov(struct tg_win *w, struct iovec *iov)
{
    uint64_t seq;
    unsigned n = 0;
    size_t room;
    uint8_t *p = tg_win_fill_ptr(w, &room);

    if (!p)
        return 0;
    iov[n].iov_base = p;
    iov[n++].iov_len = room;
    for (seq = w->filled + 2; seq <= w->acked + w->size && n < READ_IOV_MAX; seq++) {
        iov[n].iov_base = tg_win_payload(w, seq);
        iov[n++].iov_len = w->blksize;
    }
    return n;
}

/* Octet: the stream reads straight into the slots, which then go out as
 * they are; no copy where the stream has the bytes at rest. */
static void fill_octet(struct tg_session *s, struct tg_eng_ev *ev)
{
    struct tg_win *w = &s->eng.tx.win;
    struct iovec iov[READ_IOV_MAX];
    unsigned n;

    while ((n = window_iov(w, iov)) > 0) {
        ssize_t got = tg_stream_read(s->stream, iov, n);

        if (got == TG_EAGAIN) {
            ev->rc = TG_FILL_WAIT;
            return;
        }
        if (got < 0) {
            ev->rc = TG_FILL_ERROR;
            stream_error(s, ev, "read failed");
            return;
        }
        if (got == 0) {
            tg_win_fill_eof(w);
            return;
        }
        ev->n += (uint64_t)got;
        for (size_t left = (size_t)got; left > 0;) {
            size_t room, take;

            tg_win_fill_ptr(w, &room);
            take = left < room ? left : room;
            tg_win_fill_commit(w, take);
            left -= take;
        }
    }
}

/* netascii grows the data, so source bytes go through a staging buffer and
 * the encoder carries a split CR LF / CR NUL pair across blocks. */
static void fill_netascii(struct tg_session *s, struct tg_eng_ev *ev)
{
    struct tg_win *w = &s->eng.tx.win;
    uint8_t *p;
    size_t room;

    if (!s->na_raw && !(s->na_raw = tg_malloc(w->blksize))) {
        ev->rc = TG_FILL_ERROR;
        ev->code = TG_TFTP_EUNDEF;
        ev->msg = "out of memory";
        return;
    }
    while ((p = tg_win_fill_ptr(w, &room)) != NULL) {
        size_t used = 0, wrote;

        if (s->na_off == s->na_len && !s->src_eof) {
            ssize_t n = tg_stream_read1(s->stream, s->na_raw, w->blksize);

            if (n == TG_EAGAIN || n < 0) {
                ev->rc = n == TG_EAGAIN ? TG_FILL_WAIT : TG_FILL_ERROR;
                if (n != TG_EAGAIN)
                    stream_error(s, ev, "read failed");
                return;
            }
            s->na_off = 0;
            s->na_len = (size_t)n;
            s->src_eof = n == 0;
            ev->n += (uint64_t)n;
        }
        wrote = tg_na_encode(&s->na_enc, s->na_raw + s->na_off, s->na_len - s->na_off, &used,
                             p, room);
        s->na_off += used;
        tg_win_fill_commit(w, wrote);
        if (s->src_eof && s->na_off == s->na_len && !tg_na_enc_pending(&s->na_enc)) {
            tg_win_fill_eof(w);
            return;
        }
    }
}

static void do_fill(struct tg_session *s)
{
    struct tg_eng_ev ev = {.kind = TG_EV_FILLED, .rc = TG_FILL_OK};

    if (s->netascii)
        fill_netascii(s, &ev);
    else
        fill_octet(s, &ev);
    run(s, &ev);
}

/* ---- carrying out the engine's actions ---- */

/* Window blocks first..last; client_rate may hold back the rest (SENT). */
static void send_data(struct tg_session *s, uint64_t first, uint64_t last)
{
    struct tg_eng_ev ev = {.kind = TG_EV_SENT};
    struct tg_win *w = &s->eng.tx.win;
    uint8_t *d[SEND_BATCH];
    size_t len[SEND_BATCH];
    uint64_t now = uv_now(s->rt->loop), seq;
    unsigned n = 0;

    for (seq = first; seq <= last; seq++) {
        d[n] = (uint8_t *)tg_win_datagram(w, seq, &len[n]);
        if (!tg_tp_pace(&s->tp, len[n], now, &ev.wait_ms))
            break;
        tg_metrics_bytes_sent(len[n] - TG_HDR);
        ev.n++;
        if (++n == SEND_BATCH) {
            tg_tp_send_many(&s->tp, d, len, n, TG_HDR + w->blksize);
            n = 0;
        }
    }
    if (n)
        tg_tp_send_many(&s->tp, d, len, n, TG_HDR + w->blksize);
    s->sends += ev.n;
    run(s, &ev);
}

static void send_ctl(struct tg_session *s, const struct tg_eng_act *a)
{
    uint8_t pkt[CTL_MAX];
    size_t n = 0;

    if (a->kind == TG_ACT_SEND_OACK)
        n = tg_opt_build_oack(&s->eng.neg, pkt, sizeof(pkt));
    else if (a->kind == TG_ACT_SEND_ACK)
        n = tg_pkt_build_ack(pkt, sizeof(pkt), a->block);
    else
        n = tg_pkt_build_error(pkt, sizeof(pkt), a->code, a->msg);
    if (n) {
        tg_tp_send(&s->tp, pkt, n);
        s->sends++;
    }
}

static void push(struct tg_session *s, const struct tg_eng_act *a)
{
    struct tg_eng_ev ev = {.kind = TG_EV_PUSHED};

    tg_metrics_bytes_received(a->wire);
    if (a->len > 0)
        ev.rc = tg_stream_push(s->stream, a->data, a->len);
    if (ev.rc < 0 && ev.rc != TG_EAGAIN)
        stream_error(s, &ev, "write failed");
    run(s, &ev);
}

static void commit(struct tg_session *s)
{
    struct tg_eng_ev ev = {.kind = TG_EV_FAILED};

    s->be_t0 = uv_hrtime();
    if (tg_stream_commit(s->stream) < 0) {
        stream_error(s, &ev, "storage commit failed");
        run(s, &ev);
    }
}

static void on_timer(uv_timer_t *t);

/* The one timer is re-armed lazily: arming only moves a deadline, and the
 * uv timer, when it fires early, waits for the rest. An ACK per block would
 * otherwise cost two timer-heap updates on the hot path. */
static void set_deadline(struct tg_session *s, unsigned ms)
{
    s->deadline = uv_now(s->rt->loop) + ms;
    if (!uv_is_active((uv_handle_t *)&s->timer) || s->timer_due > s->deadline) {
        uv_timer_start(&s->timer, on_timer, ms, 0);
        s->timer_due = s->deadline;
    }
}

static void set_reading(struct tg_session *s, bool on);
static void finish(struct tg_session *s, const char *result);
static void drop_note(struct tg_session *s);

static void execute(struct tg_session *s, const struct tg_eng_act *a)
{
    if (a->retx)
        tg_metrics_retransmits(1);
    switch (a->kind) {
    case TG_ACT_SEND_OACK:
    case TG_ACT_SEND_ACK:
    case TG_ACT_SEND_ERROR:
        send_ctl(s, a);
        return;
    case TG_ACT_SEND_DATA:
        send_data(s, a->first, a->last);
        return;
    case TG_ACT_FILL:
        do_fill(s);
        return;
    case TG_ACT_PUSH:
        push(s, a);
        return;
    case TG_ACT_COMMIT:
        commit(s);
        return;
    case TG_ACT_CLOSE:
        tg_stream_close(s->stream);
        s->stream = NULL;
        return;
    case TG_ACT_ARM:
        set_deadline(s, a->ms);
        return;
    case TG_ACT_DISARM:
        s->deadline = 0;
        return;
    case TG_ACT_READ_ON:
    case TG_ACT_READ_OFF:
        set_reading(s, a->kind == TG_ACT_READ_ON);
        return;
    case TG_ACT_LOG:
        tg_log(a->level == TG_NOTE_INFO ? TG_LOG_INFO : TG_LOG_DEBUG, "session %s: %s",
               s->tp.peer_str, a->msg);
        return;
    case TG_ACT_FINISH:
        finish(s, a->result);
        return;
    }
}

/* One event into the engine, its actions out, in order; a chain of
 * results runs nested (depth 3 at most: FILLED, SENT). */
static void run(struct tg_session *s, const struct tg_eng_ev *ev)
{
    enum tg_eng_state was = s->eng.state;
    struct tg_eng_out out;

    if (s->done)
        return;
    tg_eng_run(&s->eng, ev, uv_now(s->rt->loop), &out);
    if (s->probe_note && s->eng.tx.src_bytes != 0)
        drop_note(s); /* data flows: the OACK was acknowledged, no probe */
    if (!s->proven_noted && tg_eng_proven(&s->eng)) {
        s->proven_noted = true;
        tg_registry_proven(&s->rt->reg);
    }
    if (was != s->eng.state && tg_log_enabled(TG_LOG_DEBUG))
        tg_log(TG_LOG_DEBUG, "session %s: %s -> %s", s->tp.peer_str, tg_eng_state_name(was),
               tg_eng_state_name(s->eng.state));
    for (unsigned i = 0; i < out.n && !s->done; i++)
        execute(s, &out.a[i]);
}

/* ---- events ---- */

static void on_timer(uv_timer_t *t)
{
    struct tg_session *s = t->data;
    uint64_t now = uv_now(s->rt->loop);

    if (!s->deadline)
        return;
    if (now < s->deadline) {
        /* Fired at an older deadline: wait for the current one. */
        uv_timer_start(&s->timer, on_timer, s->deadline - now, 0);
        s->timer_due = s->deadline;
        return;
    }
    s->deadline = 0;
    run_kind(s, TG_EV_TIMEOUT);
}

static void open_stream(struct tg_session *s, struct tg_backend *be);
static struct tg_backend *find_backend(const struct tg_runtime *rt, const char *name);

/* Layers (`backend = local, edge`): a read that the backend answers with
 * "not found" (ERROR 1) while opening goes on to the route's next backend;
 * any other failure is the answer, so a broken upstream is never hidden
 * behind a local miss. True when the next backend was asked. */
static bool next_layer(struct tg_session *s, struct tg_stream *st)
{
    const struct tg_route *r = s->match.route;
    struct tg_backend *be;

    if (s->eng.op != TG_OP_RRQ || s->eng.state != TG_ES_OPENING || st != s->stream ||
        st->err.code != TG_TFTP_ENOTFOUND || s->layer + 1 >= tg_route_nbackends(r))
        return false;
    be = find_backend(s->rt, tg_route_backend_at(r, s->layer + 1));
    if (!be)
        return false;
    tg_log(TG_LOG_DEBUG, "session %s: not in backend %s, asking %s", s->tp.peer_str,
           s->served->name, be->name);
    s->layer++;
    tg_stream_close(st); /* allowed from inside its own callback (backend.h) */
    s->stream = NULL;
    open_stream(s, be);
    return true;
}

/* Debug: the options as the client sent them, values made safe for the
 * log; "none" when it sent none. NULL when out of memory. */
static char *options_asked(const struct tg_request *req)
{
    char buf[512], name[40], val[40];
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < req->nopts && n < sizeof(buf); i++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s=%s", i ? " " : "",
                              tg_log_sanitize(req->opts[i].name, name, sizeof(name)),
                              tg_log_sanitize(req->opts[i].value, val, sizeof(val)));
    return tg_strdup(req->nopts ? buf : "none");
}

/* Debug, once the backend answered (tsize is known): asked and granted. */
static void log_options(struct tg_session *s)
{
    const struct tg_negotiated *n = &s->eng.neg;
    char got[160];
    size_t k = 0;

    if (!s->asked || s->opts_logged)
        return;
    s->opts_logged = true;
    got[0] = '\0';
    if (n->accepted & TG_OPT_BLKSIZE)
        k += (size_t)snprintf(got + k, sizeof(got) - k, " blksize=%u", n->blksize);
    if (n->accepted & TG_OPT_TIMEOUT)
        k += (size_t)snprintf(got + k, sizeof(got) - k, " timeout=%u", n->timeout_s);
    if ((n->accepted & TG_OPT_TSIZE) && n->tsize >= 0)
        k += (size_t)snprintf(got + k, sizeof(got) - k, " tsize=%lld", (long long)n->tsize);
    if (n->accepted & TG_OPT_WINDOWSIZE)
        snprintf(got + k, sizeof(got) - k, " windowsize=%u", n->windowsize);
    tg_log(TG_LOG_DEBUG, "session %s: options asked: %s; granted:%s", s->tp.peer_str, s->asked,
           got[0] ? got : " none");
}

static void on_stream(struct tg_stream *st, enum tg_stream_ev sev, void *arg)
{
    struct tg_session *s = arg;
    struct tg_eng_ev ev = {.kind = TG_EV_FAILED};

    if (s->done)
        return;
    switch (sev) {
    case TG_STREAM_OPENED:
    case TG_STREAM_COMMITTED:
        /* Only an answer to our open() or commit() counts. */
        if (s->eng.state == (sev == TG_STREAM_OPENED ? TG_ES_OPENING : TG_ES_COMMITTING))
            tg_metrics_backend_latency(s->served->name,
                                       (double)(uv_hrtime() - s->be_t0) / 1e9);
        ev.kind = sev == TG_STREAM_OPENED ? TG_EV_OPENED : TG_EV_COMMITTED;
        ev.size = st->size;
        break;
    case TG_STREAM_READABLE:
        ev.kind = TG_EV_READABLE;
        break;
    case TG_STREAM_WRITABLE:
        ev.kind = TG_EV_WRITABLE;
        break;
    case TG_STREAM_FAILED:
        if (next_layer(s, st))
            return;
        stream_error(s, &ev, "storage failed");
        break;
    }
    run(s, &ev);
    if (sev == TG_STREAM_OPENED)
        log_options(s);
}

/* A datagram from the client's address:port, as the engine's event. */
static void input(struct tg_session *s, const uint8_t *buf, size_t len)
{
    struct tg_eng_ev ev = {.kind = TG_EV_JUNK};
    struct tg_packet pkt;
    char m[96];

    if (tg_pkt_parse(buf, len, &pkt) != 0) {
        /* From the right TID but unreadable: ignore it rather than let a
         * stray datagram end a good transfer. */
        tg_log(TG_LOG_DEBUG, "session %s: malformed packet ignored", s->tp.peer_str);
    } else if (pkt.op == TG_OP_ERROR) {
        ev.kind = TG_EV_ERROR;
        ev.code = pkt.u.error.code;
        ev.msg = tg_log_sanitize(pkt.u.error.msg, m, sizeof(m));
    } else if (pkt.op == TG_OP_ACK) {
        ev.kind = TG_EV_ACK;
        ev.block = pkt.u.ack.block;
    } else if (pkt.op == TG_OP_DATA) {
        ev.kind = TG_EV_DATA;
        ev.block = pkt.u.data.block;
        ev.data = pkt.u.data.data;
        ev.len = pkt.u.data.len;
    } else {
        tg_log(TG_LOG_DEBUG, "session %s: unexpected %s ignored", s->tp.peer_str,
               tg_pkt_opname(pkt.op));
    }
    run(s, &ev);
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct tg_session *s = h->data;
    int i;

    if (status < 0) {
        /* libuv has stopped watching this socket: the session is deaf. */
        tg_log(TG_LOG_WARN, "session %s: socket error: %s", s->tp.peer_str, uv_strerror(status));
        run_kind(s, TG_EV_DEAF);
        return;
    }
    if (!(events & UV_READABLE))
        return;
    for (i = 0; i < BURST && s->reading && !s->done; i++) {
        unsigned sends = s->sends;
        ssize_t n = tg_tp_recv(&s->tp, s->rt->rxbuf, sizeof(s->rt->rxbuf));

        if (n == TG_TP_AGAIN)
            break;
        if (n != TG_TP_FOREIGN)
            input(s, s->rt->rxbuf, (size_t)n);
        /* A reply just left: the client's next datagram answers it, so
         * none can be waiting but a duplicate, and asking again would be a
         * recv that finds nothing, once per block in lock-step. The poll
         * is level-triggered: a datagram that is there wakes us at once. */
        if (s->sends != sends)
            break;
    }
}

/* READ_OFF leaves datagrams where they are: in the socket's buffer, or
 * (shared socket) in the transport's. READ_ON takes them again; what the
 * shared socket kept comes first, in order, until the engine stops reading
 * again, and a datagram dropped meanwhile is reported (LOST). */
static void set_reading(struct tg_session *s, bool on)
{
    const uint8_t *buf;
    size_t len;

    if (on == s->reading)
        return;
    s->reading = on;
    if (s->tp.kind == TG_TP_OWN) {
        if (on)
            uv_poll_start(&s->poll, UV_READABLE, on_readable);
        else
            uv_poll_stop(&s->poll);
        return;
    }
    while (s->reading && !s->done && tg_tp_next_held(&s->tp, &buf, &len))
        input(s, buf, len);
    if (s->reading && !s->done && tg_tp_take_dropped(&s->tp))
        run_kind(s, TG_EV_LOST);
}

void tg_session_input(struct tg_session *s, const uint8_t *buf, size_t len)
{
    if (s->done)
        return;
    if (!s->reading) {
        /* The listener's socket cannot stop for one session: up to a
         * window of datagrams waits in the transport (invariant 2). */
        tg_tp_hold(&s->tp, buf, len);
        return;
    }
    input(s, buf, len);
}

void tg_session_retransmit(struct tg_session *s)
{
    run_kind(s, TG_EV_REQUEST);
}

void tg_session_supersede(struct tg_session *s)
{
    run_kind(s, TG_EV_SUPERSEDE);
}

/* ---- what the registry asks (gateway/registry.h) ---- */

static bool op_heard(const struct tg_session *s)
{
    return tg_eng_heard(&s->eng);
}

static bool op_proven(const struct tg_session *s)
{
    return tg_eng_proven(&s->eng);
}

static bool op_lingering(const struct tg_session *s)
{
    return s->eng.state == TG_ES_DALLY;
}

static void op_end(struct tg_session *s, enum tg_reg_end how, const char *msg)
{
    struct tg_eng_ev ev = {.kind = TG_EV_ABORT, .code = TG_TFTP_EUNDEF, .msg = msg};

    if (how == TG_END_EVICT)
        ev.kind = TG_EV_EVICT;
    else if (how == TG_END_SHUTDOWN)
        ev.kind = TG_EV_SHUTDOWN;
    run(s, &ev);
}

static const struct tg_reg_ops reg_ops = {op_heard, op_proven, op_lingering, op_end};

/* ---- lifetime ---- */

static void session_free(struct tg_session *s)
{
    tg_tp_close(&s->tp);
    tg_eng_free(&s->eng);
    tg_free(s->na_raw);
    tg_free(s->asked);
    tg_free(s->reqname);
    tg_free(s);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct tg_session *s = h->data;

    /* The descriptor and memory outlive both handles (libuv poll.rst). */
    if (--s->open_handles == 0)
        session_free(s);
}

static void log_transfer(struct tg_session *s, const char *result)
{
    const struct tg_eng *e = &s->eng;
    const struct tg_negotiated *n = &e->neg;
    char fn[160], key[160], opts[384] = "", mac[8 + TG_MAC_STRLEN] = "";
    int lvl;

    if ((n->accepted & TG_OPT_TSIZE) && n->tsize >= 0)
        snprintf(opts, sizeof(opts), " tsize=%lld", (long long)n->tsize);
    if (s->held)
        snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), " held=1");
    if (n->accepted & TG_OPT_TIMEOUT)
        snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), " timeout=%u", n->timeout_s);
    /* Only a route that asked for the MAC knows it; other lines stay as
     * they were (docs/tftpgw.8, the transfer line). */
    if (s->mac[0])
        snprintf(mac, sizeof(mac), " mac=%s", s->mac);
    if (s->remapped) /* file= is the remapped name, asked= the client's */
        snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), " asked=\"%s\"",
                 tg_log_sanitize(s->reqname, key, sizeof(key)));
    lvl = (!strcmp(result, "ok") || !strcmp(result, "declined")) ? TG_LOG_INFO : TG_LOG_WARN;
    tg_log(lvl,
           "transfer client=%s%s op=%s file=\"%s\" route=%s backend=%s key=\"%s\" mode=%s "
           "blksize=%u windowsize=%u%s bytes=%llu duration_ms=%llu retransmits=%llu "
           "result=%s%s%s%s",
           s->tp.peer_str, mac, tg_pkt_opname(e->op), tg_log_sanitize(s->path, fn, sizeof(fn)),
           s->match.route ? s->match.route->name : "-", s->served ? s->served->name : "-",
           tg_log_sanitize(s->match.key, key, sizeof(key)),
           n->mode == TG_MODE_NETASCII ? "netascii" : "octet", n->blksize, n->windowsize, opts,
           (unsigned long long)tg_eng_bytes(e),
           (unsigned long long)((e->ended_ms ? e->ended_ms : uv_now(s->rt->loop)) -
                                e->started_ms),
           (unsigned long long)e->retransmits, result, e->why.msg[0] ? " error=\"" : "",
           e->why.msg, e->why.msg[0] ? "\"" : "");
}

/* A UEFI tsize probe declined our OACK (RFC 2347) and its download
 * follows from a new port: the backend may keep the stream for it
 * (probe_hold, include/tftpgw/backend.h). True when it took the stream. */
static bool hold_probe(struct tg_session *s, const char *result)
{
    struct tg_backend *be = s->stream->backend;
    struct tg_open_args oa = {
        .key = s->match.key, .client_ip = s->reg.ip, .filename = s->path,
        .size_hint = -1, .blksize = s->eng.neg.blksize,
    };

    if (strcmp(result, "declined") != 0 || s->eng.op != TG_OP_RRQ || s->eng.tx.src_bytes != 0 ||
        !be || !be->ops->hold)
        return false;
    return be->ops->hold(be, s->stream, &oa) == 0;
}

/* ---- the live transfers view (docs/metrics.md, "Live transfers") ---- */

/* What the view's row shows (gateway/liveview.c), taken from the session's
 * insides, which stay in this file. */
static void live_facts(const struct tg_session *s, struct tg_live_facts *f)
{
    *f = (struct tg_live_facts){
        .eng = &s->eng, .ip = s->reg.ip, .peer = (const struct sockaddr *)&s->reg.peer,
        .file = s->reqname, .route = s->match.route ? s->match.route->name : NULL,
        .backend = s->served ? s->served->name : NULL,
        .stream_size = s->stream ? s->stream->size : -1,
    };
}

/* Called from finish(): the transfer joins the ring of finished ones. */
static void live_record(const struct tg_session *s, const char *result)
{
    struct tg_live_facts f;

    live_facts(s, &f);
    tg_liveview_finished(&f, tg_metrics_result(result, s->eng.why.code, s->rt->draining),
                         uv_now(s->rt->loop));
}

void tg_session_json(struct tg_session *s, struct tg_jbuf *b, uint64_t now)
{
    struct tg_live_facts f;

    live_facts(s, &f);
    tg_liveview_running(b, &f, &s->live, now);
}

/* The request was no probe (it reads data, or ended without a hold): its
 * note must not send this client's next request here. */
static void drop_note(struct tg_session *s)
{
    if (!s->probe_note)
        return;
    tg_heldmap_drop(s->rt->heldmap, (const struct sockaddr *)&s->reg.peer, s->reqname,
                    s->probe_note);
    s->probe_note = 0;
}

static void finish(struct tg_session *s, const char *result)
{
    bool held = false;

    if (s->done)
        return;
    s->done = true;
    if (s->stream) {
        /* Closing an uncommitted write stream aborts it (invariant 3). */
        if (!(held = hold_probe(s, result)))
            tg_stream_close(s->stream);
        s->stream = NULL;
    }
    if (held && s->probe_note)
        /* firm now: a download on another worker is handed here */
        tg_heldmap_held(s->rt->heldmap, (const struct sockaddr *)&s->reg.peer, s->reqname,
                        s->probe_note, uv_hrtime() / 1000000 + TG_HELDMAP_SPAN_MS);
    else
        drop_note(s);
    log_transfer(s, result);
    live_record(s, result);
    tg_metrics_transfer_finished(s->eng.op == TG_OP_RRQ ? "rrq" : "wrq", s->match.route->name,
                                 tg_metrics_result(result, s->eng.why.code, s->rt->draining));
    if (!strcmp(result, "ok") || !strcmp(result, "unconfirmed"))
        s->rt->stats.transfers_ok++;
    else if (!strcmp(result, "declined"))
        s->rt->stats.transfers_declined++;
    else
        s->rt->stats.transfers_failed++;
    uv_timer_stop(&s->timer);
    if (s->tp.kind == TG_TP_OWN) {
        if (s->reading)
            uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    }
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    tg_registry_remove(&s->rt->reg, &s->reg);
}

/* ---- start ---- */

static void path_error(int rc, struct tg_error *err)
{
    switch (rc) {
    case TG_ENOENT:
        tg_error_set(err, TG_TFTP_ENOTFOUND, "file not found");
        break;
    case TG_ENAMETOOLONG:
        tg_error_set(err, TG_TFTP_EACCESS, "file name too long");
        break;
    default:
        tg_error_set(err, TG_TFTP_EACCESS, "access violation: illegal file name");
        break;
    }
}

/* Whether the listener's socket carries this transfer: in single-port
 * mode reads always (RFC 1350's per-transfer port cannot cross NAT or a
 * published container port), writes only with single_port_writes (on the
 * shared port a blind sender can complete an upload from any address an
 * allow list trusts). */
static bool on_shared_port(const struct tg_runtime *rt, enum tg_opcode op)
{
    return rt->single_port && (op == TG_OP_RRQ || rt->cfg->server.single_port_writes);
}

/* The route's tftpd-hpa rules (include/tftpgw/remap.h) over the name as
 * the client sent it, as tftpd-hpa applies them; a changed name is then
 * normalised and routed again like any request (invariant 5: the rules
 * can name nothing a client could not), without a second remapping. */
static int remap_request(struct tg_session *s, const struct tg_request_ctx *rc,
                         struct tg_error *err)
{
    char name[TG_PATH_MAX], msg[TG_ERRMSG_MAX];
    int r = tg_remap_apply(s->match.route->remap, rc->req->filename, rc->op, rc->peer,
                           name, sizeof(name), msg, sizeof(msg));

    if (r != 0) {
        tg_error_set(err, TG_TFTP_EACCESS, "%s", msg);
        return r;
    }
    if (!strcmp(name, rc->req->filename))
        return 0;
    s->remapped = true;
    if ((r = tg_path_normalize(name, s->path, sizeof(s->path))) != 0) {
        path_error(r, err);
        return r;
    }
    return tg_route_resolve_mac(s->rt->cfg->routes, s->rt->cfg->nroutes, s->path, rc->peer,
                                rc->client_mac, rc->op, &s->match, err);
}

/* Path, route and options; on a refusal err is filled and < 0 returned. */
static int negotiate(struct tg_session *s, const struct tg_request_ctx *rc,
                     struct tg_negotiated *neg, struct tg_error *err)
{
    const struct tg_server_cfg *sc = &s->rt->cfg->server;
    struct tg_opt_limits lim;
    int r;

    r = tg_path_normalize(rc->req->filename, s->path, sizeof(s->path));
    if (r != 0) {
        path_error(r, err);
        return r;
    }
    r = tg_route_resolve_mac(s->rt->cfg->routes, s->rt->cfg->nroutes, s->path, rc->peer,
                             rc->client_mac, rc->op, &s->match, err);
    if (r == 0 && s->match.route->remap)
        r = remap_request(s, rc, err);
    if (r != 0)
        return r;
    lim.max_blksize = sc->max_blksize;
    lim.max_windowsize = sc->max_windowsize;
    lim.max_window_bytes = sc->max_window_bytes;
    lim.refuse = s->match.route->refuse;
    if (on_shared_port(s->rt, rc->op)) {
        /* A blind sender knows the shared port: what one blind ACK can
         * release is capped (docs/security.md), blksize included. */
        if (lim.max_window_bytes == 0 || lim.max_window_bytes > sc->single_port_window)
            lim.max_window_bytes = sc->single_port_window;
        if (lim.max_blksize > sc->single_port_window)
            lim.max_blksize = (unsigned)sc->single_port_window;
    }
    if ((r = tg_opt_negotiate(rc->op, rc->req, &lim, neg, err)) != 0)
        return r;
    if (tg_log_enabled(TG_LOG_DEBUG))
        s->asked = options_asked(rc->req);
    if (rc->op == TG_OP_WRQ && neg->tsize >= 0 && s->match.route->max_size >= 0 &&
        neg->tsize > s->match.route->max_size) {
        /* RFC 2349: a size the server cannot take is refused with ERROR 3. */
        tg_error_set(err, TG_TFTP_ENOSPACE, "file too large (limit %lld bytes)",
                     (long long)s->match.route->max_size);
        return TG_EINVAL;
    }
    return 0;
}

/* The transfer's socket, and for an upload the windowsize its receive
 * buffer holds (lowered before the OACK offers it). */
static int open_transport(struct tg_session *s, const struct tg_request_ctx *rc,
                          struct tg_negotiated *neg)
{
    const struct tg_server_cfg *sc = &s->rt->cfg->server;
    struct tg_tp_spec spec = {
        .peer = rc->peer, .local = rc->local, .ifindex = rc->ifindex,
        .listen_fd = on_shared_port(s->rt, rc->op) ? rc->listen_fd : -1,
        .port_lo = sc->port_lo, .port_hi = sc->port_hi,
        /* A window's worth, as a socket of its own would buffer it. */
        .hold_cap = (size_t)neg->windowsize * (TG_HDR + neg->blksize + sizeof(uint32_t)),
        .pace = s->rt->sendrate, .rate = sc->client_rate,
        .sendq = on_shared_port(s->rt, rc->op) ? rc->sendq : NULL,
    };
    unsigned fit;
    int r = tg_tp_open(&s->tp, &spec);

    if (r != 0) {
        tg_log(TG_LOG_WARN, "session %s: no socket: %s", s->tp.peer_str, strerror(-r));
        return r;
    }
    if (rc->op != TG_OP_WRQ)
        return 0;
    fit = tg_tp_fit_window(&s->tp, neg->windowsize, neg->blksize);
    if (fit < neg->windowsize) {
        tg_log(TG_LOG_INFO, "session %s: windowsize %u lowered to %u to fit the socket buffer",
               s->tp.peer_str, neg->windowsize, fit);
        neg->windowsize = fit;
    }
    return 0;
}

/* The running generation's backend of that name. */
static struct tg_backend *find_backend(const struct tg_runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->cfg->nbackends; i++)
        if (strcmp(rt->cfg->backends[i].name, name) == 0)
            return rt->backends[i];
    return NULL;
}

/* Ask the backend for the stream; the engine bounds the wait (START). */
static void open_stream(struct tg_session *s, struct tg_backend *be)
{
    const struct tg_negotiated *n = &s->eng.neg;
    struct tg_eng_ev ev = {.kind = TG_EV_FAILED, .code = TG_TFTP_EUNDEF,
                           .msg = "storage unavailable"};
    struct tg_open_args oa = {
        .key = s->match.key, .client_ip = s->reg.ip, .filename = s->path,
        .client_mac = s->mac[0] ? s->mac : NULL,
        .size_hint = s->eng.op == TG_OP_WRQ ? n->tsize : -1,
        .overwrite = s->match.route->write == TG_WRITE_OVERWRITE, .blksize = n->blksize,
        .window = (size_t)n->blksize * n->windowsize,
        /* Reads only: an upload keeps its exact name (docs/security.md). */
        .nocase = s->eng.op == TG_OP_RRQ && s->match.route->name_case == TG_CASE_INSENSITIVE,
    };
    int r;

    s->served = be;
    s->be_t0 = uv_hrtime();
    r = s->eng.op == TG_OP_RRQ ? be->ops->open_read(be, &oa, on_stream, s, &s->stream)
                               : be->ops->open_write(be, &oa, on_stream, s, &s->stream);
    if (r != 0) {
        s->stream = NULL;
        run(s, &ev);
        return;
    }
    s->netascii = n->mode == TG_MODE_NETASCII;
    s->held = s->stream->adopted;
    run_kind(s, TG_EV_START);
}

/* Handles, engine, registry: the session exists from here on. */
static int begin(struct tg_session *s, const struct tg_request_ctx *rc,
                 const struct tg_negotiated *neg, struct tg_error *err)
{
    struct tg_runtime *rt = s->rt;
    struct tg_eng_params p = {
        .op = rc->op, .neg = *neg, .shared = s->tp.kind == TG_TP_SHARED,
        .rollover = rt->cfg->server.rollover, .timeout_ms = rt->cfg->server.timeout_ms,
        .retries = rt->cfg->server.retries, .max_size = s->match.route->max_size,
    };

    if (s->tp.kind == TG_TP_OWN) {
        if (uv_poll_init_socket(rt->loop, &s->poll, s->tp.fd) != 0) {
            tg_error_set(err, TG_TFTP_EUNDEF, "server cannot watch a transfer socket");
            return TG_EINVAL;
        }
        s->poll.data = s;
        s->open_handles++;
    }
    uv_timer_init(rt->loop, &s->timer);
    s->timer.data = s;
    s->open_handles++;
    /* Window and staging buffers wait for the client's first answer: an
     * unanswered request costs this struct, not a window (invariant 2). */
    tg_eng_init(&s->eng, &p, uv_now(rt->loop));
    memcpy(&s->reg.peer, rc->peer, tg_sockaddr_len(rc->peer));
    tg_sockaddr_ip(rc->peer, s->reg.ip, sizeof(s->reg.ip));
    s->reg.s = s;
    s->reg.ops = &reg_ops;
    s->reg.op = rc->op;
    s->reg.reqname = s->reqname;
    s->reg.shared = p.shared;
    tg_registry_add(&rt->reg, &s->reg);
    tg_metrics_transfer_started(rc->op == TG_OP_RRQ ? "rrq" : "wrq", s->match.route->name);
    set_reading(s, true);
    return 0;
}

/* A read that asks tsize from a backend that can hold probes may be a
 * UEFI probe, whose download comes from a new port and may reach another
 * worker: say where it is (gateway/heldmap.h), before the probe could
 * even end. A stale note costs the download a hand-off and no more. */
static void note_probe(struct tg_session *s, const struct tg_request_ctx *rc,
                       const struct tg_negotiated *neg, const struct tg_backend *be)
{
    if (s->rt->heldmap && rc->op == TG_OP_RRQ && (neg->accepted & TG_OPT_TSIZE) && be->ops->hold)
        s->probe_note = tg_heldmap_put(s->rt->heldmap, rc->peer, s->reqname, s->rt->worker,
                                       uv_hrtime() / 1000000 + TG_HELDMAP_SPAN_MS);
}

int tg_session_start(struct tg_runtime *rt, const struct tg_request_ctx *rc,
                     struct tg_error *err)
{
    struct tg_negotiated neg;
    struct tg_backend *be;
    struct tg_session *s = tg_calloc(1, sizeof(*s));

    if (!s) {
        tg_error_set(err, TG_TFTP_EUNDEF, "out of memory");
        return TG_ENOMEM;
    }
    s->tp.fd = -1;
    s->rt = rt;
    if (rc->client_mac)
        snprintf(s->mac, sizeof(s->mac), "%s", rc->client_mac);
    if (negotiate(s, rc, &neg, err) != 0)
        goto refuse;
    be = find_backend(rt, s->match.route->backend);
    s->reqname = tg_strdup(rc->req->filename);
    if (!be || !s->reqname) {
        tg_error_set(err, TG_TFTP_EUNDEF, be ? "out of memory" : "route has no backend");
        goto refuse;
    }
    if (open_transport(s, rc, &neg) != 0) {
        tg_error_set(err, TG_TFTP_EUNDEF, "server cannot open a transfer socket");
        goto refuse;
    }
    if (begin(s, rc, &neg, err) != 0)
        goto refuse;
    note_probe(s, rc, &neg, be);
    open_stream(s, be);
    return 0;

refuse:
    tg_liveview_refused(rc, err);
    session_free(s);
    return TG_EINVAL;
}
