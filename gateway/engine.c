/* gateway/engine.c - one transfer's protocol, free of I/O (engine.h has the
 * contract). tg_eng_run() switches on the state, then on the event; the
 * handlers below are grouped by state, the rules they share come first. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine.h"

#define RTO_CAP_MS 16000u
#define STORAGE_MIN_MS 5000u
#define DALLY_MIN_MS 3000u

static const char *const state_names[] = {
    "opening", "oack", "sending", "source_wait", "receiving",
    "store_wait", "committing", "dally", "done",
};

const char *tg_eng_state_name(enum tg_eng_state st)
{
    return (unsigned)st < TG_ARRAY_LEN(state_names) ? state_names[st] : "?";
}

void tg_eng_init(struct tg_eng *e, const struct tg_eng_params *p, uint64_t now_ms)
{
    memset(e, 0, sizeof(*e));
    e->op = p->op;
    e->state = TG_ES_OPENING;
    e->neg = p->neg;
    e->shared = p->shared;
    e->rollover = p->rollover;
    e->retries = p->retries;
    e->max_size = p->max_size;
    /* Until the client proves it hears us, the server's own interval: a
     * spoofed request asking timeout=255 must not hold a session for
     * minutes (see prove()). */
    e->rto_init = p->timeout_ms;
    e->rto = e->rto_init;
    e->started_ms = now_ms;
    if (p->op == TG_OP_WRQ)
        tg_rx_init(&e->rx.rx, p->neg.windowsize, p->rollover);
}

void tg_eng_free(struct tg_eng *e)
{
    tg_win_free(&e->tx.win);
    tg_free(e->rx.na_out);
    tg_free(e->rx.hold);
    e->rx.na_out = e->rx.hold = NULL;
}

bool tg_eng_heard(const struct tg_eng *e)
{
    return e->peer != TG_PEER_SILENT;
}

bool tg_eng_proven(const struct tg_eng *e)
{
    return e->peer == TG_PEER_PROVEN;
}

uint64_t tg_eng_bytes(const struct tg_eng *e)
{
    const struct tg_win *w = &e->tx.win;

    if (e->op == TG_OP_WRQ)
        return (uint64_t)e->rx.stored;
    /* Netascii counts as sent on the wire. */
    if (tg_win_done(w))
        return (w->last - 1) * w->blksize + w->len[w->last % w->size];
    return w->acked * w->blksize;
}

/* ---- actions ---- */

static struct tg_eng_act *act(struct tg_eng_out *o, enum tg_eng_act_kind kind)
{
    /* A handler emits three actions at most: the array has room to spare. */
    struct tg_eng_act *a = &o->a[o->n < TG_ENG_ACTS ? o->n++ : TG_ENG_ACTS - 1];

    memset(a, 0, sizeof(*a));
    a->kind = kind;
    return a;
}

static void arm(struct tg_eng *e, struct tg_eng_out *o, uint64_t now, unsigned ms,
                enum tg_eng_timer why)
{
    struct tg_eng_act *a = act(o, TG_ACT_ARM);

    e->timer = why;
    e->deadline = now + ms;
    a->ms = ms;
    a->timer = why;
}

static void disarm(struct tg_eng *e, struct tg_eng_out *o)
{
    e->timer = TG_TM_NONE;
    e->deadline = 0;
    act(o, TG_ACT_DISARM);
}

/* The timer's old meaning is void; what follows always ends in ARM or
 * DISARM (the sender's send_tail), so nothing is emitted here. */
static void forget_timer(struct tg_eng *e)
{
    e->timer = TG_TM_NONE;
    e->deadline = 0;
}

/* While the transfer waits on its backend (opening, a read with nothing in
 * flight, a blocked write, a commit), the timer bounds that wait, so a
 * stalled store cannot pin a session. */
static void arm_storage(struct tg_eng *e, struct tg_eng_out *o, uint64_t now)
{
    unsigned ms = e->rto_init * (e->retries + 2);

    arm(e, o, now, ms > STORAGE_MIN_MS ? ms : STORAGE_MIN_MS, TG_TM_STORAGE);
}

static void send_ack(struct tg_eng *e, struct tg_eng_out *o, bool retx)
{
    struct tg_eng_act *a = act(o, TG_ACT_SEND_ACK);

    a->block = tg_rx_ack_wire(&e->rx.rx);
    a->retx = retx;
}

static void finish(struct tg_eng *e, struct tg_eng_out *o, const char *result)
{
    e->state = TG_ES_DONE;
    e->result = result;
    e->timer = TG_TM_NONE;
    e->deadline = 0;
    act(o, TG_ACT_FINISH)->result = result;
}

/* tell: the client gets ERROR code msg (not when our socket is gone). */
static void fail(struct tg_eng *e, struct tg_eng_out *o, uint16_t code, const char *msg,
                 bool tell)
{
    tg_error_set(&e->why, code, "%s", msg);
    if (tell) {
        struct tg_eng_act *a = act(o, TG_ACT_SEND_ERROR);

        a->code = code;
        a->msg = e->why.msg;
    }
    finish(e, o, "error");
}

static void note(struct tg_eng *e, struct tg_eng_out *o, int level, const char *fmt, ...)
    TG_PRINTF(4, 5);

static void note(struct tg_eng *e, struct tg_eng_out *o, int level, const char *fmt, ...)
{
    struct tg_eng_act *a = act(o, TG_ACT_LOG);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(e->note, sizeof(e->note), fmt, ap);
    va_end(ap);
    a->level = level;
    a->msg = e->note;
}

/* ---- trust and retries (docs/security.md) ---- */

/* The client hears us: the address is real, the full retry budget and the
 * interval it asked for (RFC 2349) apply from now on. */
static void prove(struct tg_eng *e)
{
    if (e->peer == TG_PEER_PROVEN)
        return;
    e->peer = TG_PEER_PROVEN;
    if (e->neg.accepted & TG_OPT_TIMEOUT) {
        e->rto_init = e->neg.timeout_s * 1000u;
        e->rto = e->rto_init;
    }
}

/* The first packet from the client's address:port. On a transfer's own
 * port that is proof: only a client that received our first packet knows
 * the port (RFC 1350 4's TID is the one secret of the exchange). On the
 * shared port a blind sender can say as much, so a read must first
 * acknowledge data it was sent (sender_ack); a write makes us send only
 * ACKs, no more than it sends us. */
static void hear(struct tg_eng *e)
{
    if (e->peer != TG_PEER_SILENT)
        return;
    e->peer = TG_PEER_HEARD;
    if (!e->shared || e->op == TG_OP_WRQ)
        prove(e);
}

/* Progress from the client: back to the first interval (RFC 1123 4.2.3.2
 * asks for adaptive backoff, which restarts once the path works again).
 * Before the client proved it hears us, what looked like progress may be a
 * blind sender's guess: the budget is not restored. */
static void progress(struct tg_eng *e)
{
    if (e->peer != TG_PEER_PROVEN)
        return;
    e->tries = 0;
    e->rto = e->rto_init;
}

enum { GIVE_UP, RESEND, LISTEN };

/* What the client's timeout means now. A session whose client has not
 * proven that it hears us sends its first packet and one retransmission at
 * most (RFC 1350 has no such rule; its absence makes a reflector), then
 * listens one more, doubled interval: on a lossy path the answer may still
 * come, and a spoofed request still ends after 7 intervals. */
static int backoff(struct tg_eng *e)
{
    unsigned max = e->retries;
    unsigned cap = e->rto_init > RTO_CAP_MS ? e->rto_init : RTO_CAP_MS;

    if (e->peer != TG_PEER_PROVEN && max > 2)
        max = 2;
    if (e->tries >= max)
        return GIVE_UP;
    e->tries++;
    e->rto = e->rto * 2 > cap ? cap : e->rto * 2;
    if (e->peer != TG_PEER_PROVEN && e->tries > 1)
        return LISTEN;
    e->retransmits++;
    return RESEND;
}

/* The timer fired: its meaning, which is spent now. */
static enum tg_eng_timer fire(struct tg_eng *e)
{
    enum tg_eng_timer t = e->timer;

    e->timer = TG_TM_NONE;
    e->deadline = 0;
    return t;
}

/* ---- events any state takes the same way ---- */

static void client_error(struct tg_eng *e, const struct tg_eng_ev *ev, struct tg_eng_out *o)
{
    /* Never answered (RFC 1350 7). ERROR 8 is a client declining our OACK
     * (RFC 2347), normal for UEFI tsize probes. */
    tg_error_set(&e->why, ev->code, "client: %s", ev->msg ? ev->msg : "");
    finish(e, o, ev->code == TG_TFTP_EOPTNEG ? "declined" : "aborted");
}

static void any_state(struct tg_eng *e, const struct tg_eng_ev *ev, struct tg_eng_out *o)
{
    switch (ev->kind) {
    case TG_EV_ERROR:
        client_error(e, ev, o);
        return;
    case TG_EV_FAILED:
        fail(e, o, ev->code, ev->msg ? ev->msg : "storage failed", true);
        return;
    case TG_EV_ABORT:
        fail(e, o, TG_TFTP_EUNDEF, ev->msg ? ev->msg : "aborted", true);
        return;
    case TG_EV_SUPERSEDE:
        /* The client's port starts a new transfer: this one is over for it. */
        tg_error_set(&e->why, TG_TFTP_EUNDEF, "superseded by a new request from the same port");
        finish(e, o, "superseded");
        return;
    case TG_EV_EVICT:
        tg_error_set(&e->why, TG_TFTP_EUNDEF,
                     "evicted: server full and the client never answered");
        finish(e, o, "evicted");
        return;
    case TG_EV_SHUTDOWN:
        /* Not a running transfer yet: the client never answered. */
        if (e->peer == TG_PEER_SILENT && e->state != TG_ES_OPENING)
            fail(e, o, TG_TFTP_EUNDEF, "server is shutting down", true);
        return;
    case TG_EV_DEAF:
        fail(e, o, TG_TFTP_EUNDEF, "server socket error", false);
        return;
    case TG_EV_TIMEOUT:
        if (fire(e) == TG_TM_STORAGE)
            fail(e, o, TG_TFTP_EUNDEF, "storage did not answer in time", true);
        return;
    default:
        return; /* nothing to do with it in this state */
    }
}

/* ---- OPENING ---- */

/* The window ring is allocated when the client first answers (or at once
 * for a plain RRQ, whose window is one block): a flood of requests nobody
 * answers costs no windows. False when the transfer ended. */
static bool start_window(struct tg_eng *e, struct tg_eng_out *o)
{
    if (e->tx.win.buf)
        return true;
    if (tg_win_init(&e->tx.win, e->neg.windowsize, e->neg.blksize, e->rollover) != 0) {
        fail(e, o, TG_TFTP_EUNDEF, "out of memory", true);
        return false;
    }
    return true;
}

static void opened(struct tg_eng *e, int64_t size, uint64_t now, struct tg_eng_out *o)
{
    if (e->op == TG_OP_RRQ && (e->neg.accepted & TG_OPT_TSIZE)) {
        /* tsize only when the size is really known (RFC 2349). An empty
         * file's size is left out too: curl rejects "tsize 0" in an OACK
         * as invalid and abandons the transfer. */
        if (size > 0 && e->neg.mode == TG_MODE_OCTET)
            e->neg.tsize = size;
        else
            e->neg.accepted &= ~TG_OPT_TSIZE;
    }
    if (e->neg.accepted) {
        e->state = TG_ES_OACK;
        act(o, TG_ACT_SEND_OACK);
        arm(e, o, now, e->rto, TG_TM_CLIENT);
        return;
    }
    if (e->op == TG_OP_RRQ) {
        if (!start_window(e, o))
            return;
        e->state = TG_ES_SENDING;
        act(o, TG_ACT_FILL);
        return;
    }
    e->state = TG_ES_RECEIVING;
    send_ack(e, o, false); /* ACK 0 (RFC 1350 4) */
    arm(e, o, now, e->rto, TG_TM_CLIENT);
}

static void st_opening(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                       struct tg_eng_out *o)
{
    switch (ev->kind) {
    case TG_EV_START:
        /* A storage that never answers must not pin the session. */
        arm_storage(e, o, now);
        return;
    case TG_EV_OPENED:
        forget_timer(e);
        opened(e, ev->size, now, o);
        return;
    default:
        any_state(e, ev, o);
        return;
    }
}

/* ---- sender (RRQ): SENDING, SOURCE_WAIT ---- */

/* The OACK promised a size (RFC 2349): a file that changed under us must
 * not be passed off as complete. */
static bool source_ok(struct tg_eng *e, struct tg_eng_out *o)
{
    const struct tg_win *w = &e->tx.win;
    int64_t got = (int64_t)e->tx.src_bytes;

    if (!(e->neg.accepted & TG_OPT_TSIZE) ||
        (got <= e->neg.tsize && (w->last == 0 || got == e->neg.tsize)))
        return true;
    fail(e, o, TG_TFTP_EUNDEF, "file changed during transfer", true);
    return false;
}

/* After sending: what the one timer waits for. */
static void send_tail(struct tg_eng *e, struct tg_eng_out *o, uint64_t now, unsigned wait_ms)
{
    const struct tg_win *w = &e->tx.win;

    if (wait_ms) {
        arm(e, o, now, wait_ms, TG_TM_PACING); /* the rest when the bucket refilled */
        return;
    }
    if (w->next_send > w->acked + 1) {
        /* Blocks in flight: the client's answer is due. A running client
         * timer keeps its deadline (re-arming on every send would push it
         * out forever). */
        if (e->timer == TG_TM_NONE || e->timer == TG_TM_STORAGE)
            arm(e, o, now, e->rto, TG_TM_CLIENT);
    } else if (e->state == TG_ES_SOURCE_WAIT) {
        arm_storage(e, o, now); /* nothing in flight: waiting for the backend */
    } else {
        disarm(e, o);
    }
}

/* Whatever of the window may go now: next_send up to what is filled and
 * inside the window. */
static void send_step(struct tg_eng *e, struct tg_eng_out *o, uint64_t now, bool retx)
{
    const struct tg_win *w = &e->tx.win;
    uint64_t first = tg_win_sendable(w), end = w->acked + w->size;
    struct tg_eng_act *a;

    if (first == 0) {
        send_tail(e, o, now, 0);
        return;
    }
    a = act(o, TG_ACT_SEND_DATA);
    a->first = first;
    a->last = w->filled < end ? w->filled : end;
    a->retx = retx;
}

/* Fill then send, or, while the stream owes READABLE, send what is filled
 * already: blocks in hand go out even while the backend is behind. */
static void pump(struct tg_eng *e, struct tg_eng_out *o, uint64_t now)
{
    if (e->state == TG_ES_SENDING)
        act(o, TG_ACT_FILL);
    else
        send_step(e, o, now, false);
}

/* An ACK for a block we never sent: a real client cannot produce it, a
 * blind sender guessing the transfer's progress does. */
static void unsent_ack(struct tg_eng *e, struct tg_eng_out *o, uint16_t wire)
{
    note(e, o, TG_NOTE_INFO, "ACK %u for a block not sent yet; ending the transfer",
         (unsigned)wire);
    fail(e, o, TG_TFTP_EBADOP, "ACK for a block not sent", true);
}

static void sender_ack(struct tg_eng *e, uint16_t wire, uint64_t now, struct tg_eng_out *o)
{
    int n = tg_win_ack(&e->tx.win, wire);

    if (n == TG_WIN_UNSENT) {
        unsent_ack(e, o, wire);
        return;
    }
    if (n == 0)
        return; /* duplicate or stale: never resend on it (RFC 1123 4.2.3.1) */
    prove(e);
    progress(e);
    if (tg_win_done(&e->tx.win)) {
        finish(e, o, "ok");
        return;
    }
    forget_timer(e);
    pump(e, o, now);
}

static void sender_timeout(struct tg_eng *e, uint64_t now, struct tg_eng_out *o)
{
    const struct tg_win *w = &e->tx.win;

    switch (backoff(e)) {
    case GIVE_UP:
        /* With only the last block unconfirmed the client may well have it
         * all; with a window, the final ACK covers the whole last window:
         * everything sent and only that ACK missing is the same case. */
        if (e->peer != TG_PEER_SILENT && w->last &&
            (w->acked + 1 == w->last || w->next_send > w->last))
            finish(e, o, "unconfirmed");
        else
            finish(e, o, "timeout");
        return;
    case LISTEN:
        arm(e, o, now, e->rto, TG_TM_CLIENT);
        return;
    default:
        tg_win_rewind(&e->tx.win); /* RFC 7440 4: resend after the last ACK */
        send_step(e, o, now, true);
        return;
    }
}

static void sender_filled(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                          struct tg_eng_out *o)
{
    e->tx.src_bytes += ev->n;
    if (ev->rc == TG_FILL_ERROR) {
        fail(e, o, ev->code, ev->msg ? ev->msg : "read failed", true);
        return;
    }
    if (!source_ok(e, o))
        return;
    if (ev->rc == TG_FILL_WAIT)
        e->state = TG_ES_SOURCE_WAIT;
    send_step(e, o, now, false);
}

static void st_sending(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                       struct tg_eng_out *o)
{
    switch (ev->kind) {
    case TG_EV_ACK:
        sender_ack(e, ev->block, now, o);
        return;
    case TG_EV_READABLE:
        e->state = TG_ES_SENDING;
        pump(e, o, now);
        return;
    case TG_EV_FILLED:
        sender_filled(e, ev, now, o);
        return;
    case TG_EV_SENT:
        for (uint64_t i = 0; i < ev->n; i++)
            tg_win_sent(&e->tx.win);
        send_tail(e, o, now, ev->wait_ms);
        return;
    case TG_EV_REQUEST:
        /* Client-driven, one answer per request: no amplification, no tries. */
        tg_win_rewind(&e->tx.win);
        send_step(e, o, now, false);
        return;
    case TG_EV_TIMEOUT:
        if (e->timer == TG_TM_CLIENT) {
            fire(e);
            sender_timeout(e, now, o);
        } else if (e->timer == TG_TM_PACING) {
            fire(e);
            send_step(e, o, now, false);
        } else {
            any_state(e, ev, o);
        }
        return;
    default:
        any_state(e, ev, o);
        return;
    }
}

/* ---- receiver (WRQ): RECEIVING, STORE_WAIT, COMMITTING, DALLY ---- */

/* Bytes of the block to store, after netascii decoding; NULL when the
 * transfer ended (no memory). Buffers come with the first block. */
static const uint8_t *decode(struct tg_eng *e, struct tg_eng_out *o, const uint8_t *data,
                             size_t len, bool last, size_t *n)
{
    size_t cap = e->neg.blksize + 1;

    if ((e->neg.mode == TG_MODE_NETASCII && !e->rx.na_out && !(e->rx.na_out = tg_malloc(cap))) ||
        (!e->rx.hold && !(e->rx.hold = tg_malloc(cap)))) {
        fail(e, o, TG_TFTP_EUNDEF, "out of memory", true);
        return NULL;
    }
    *n = len;
    if (e->neg.mode != TG_MODE_NETASCII)
        return data;
    *n = tg_na_decode(&e->rx.na_dec, data, len, e->rx.na_out);
    if (last)
        *n += tg_na_decode_finish(&e->rx.na_dec, e->rx.na_out + *n);
    return e->rx.na_out;
}

/* A block in order: check it against tsize and max_size, then PUSH. */
static void deliver(struct tg_eng *e, struct tg_eng_out *o, const uint8_t *data, size_t len,
                    bool last, bool ack)
{
    int64_t stored = e->rx.stored, tsize = e->neg.tsize;
    const uint8_t *p;
    struct tg_eng_act *a;
    size_t n;

    if (!(p = decode(e, o, data, len, last, &n)))
        return;
    if ((e->neg.accepted & TG_OPT_TSIZE) &&
        (stored + (int64_t)n > tsize || (last && stored + (int64_t)n != tsize))) {
        /* The client's tsize sized the store (free-space check,
         * Content-Length upstream): data that disagrees is not stored. */
        fail(e, o, stored + (int64_t)n > tsize ? TG_TFTP_ENOSPACE : TG_TFTP_EUNDEF,
             "data does not match the announced tsize", true);
        return;
    }
    if (e->max_size >= 0 && stored + (int64_t)n > e->max_size) {
        char msg[96];

        snprintf(msg, sizeof(msg), "file too large (limit %lld bytes)", (long long)e->max_size);
        fail(e, o, TG_TFTP_ENOSPACE, msg, true);
        return;
    }
    e->rx.stored += (int64_t)n;
    e->rx.push = p;
    e->rx.push_len = n;
    e->rx.last = last;
    e->rx.ack = ack;
    a = act(o, TG_ACT_PUSH);
    a->data = p;
    a->len = n;
    a->wire = len;
}

static void receiver_data(struct tg_eng *e, const struct tg_eng_ev *ev, struct tg_eng_out *o)
{
    bool ack, last;
    enum tg_rx_action got;

    if (ev->len > e->neg.blksize) {
        fail(e, o, TG_TFTP_EBADOP, "DATA larger than the negotiated blksize", true);
        return;
    }
    last = ev->len < e->neg.blksize;
    got = tg_rx_on_data(&e->rx.rx, ev->block, last, &ack);
    if (got != TG_RX_ACCEPT) {
        /* Before DATA 1 an ACK would be ACK 0, which this client never
         * expects after an OACK (RFC 2347): let the OACK timer work. */
        if (ack && e->state == TG_ES_RECEIVING)
            send_ack(e, o, false);
        return;
    }
    e->state = TG_ES_RECEIVING;
    progress(e);
    deliver(e, o, ev->data, ev->len, last, ack);
}

/* The stream took the block: the final one is committed before its ACK
 * (an upload is visible only when complete, and the final ACK says so). */
static void after_push(struct tg_eng *e, uint64_t now, struct tg_eng_out *o)
{
    if (e->rx.last) {
        arm_storage(e, o, now);
        e->state = TG_ES_COMMITTING;
        act(o, TG_ACT_COMMIT);
        return;
    }
    if (e->rx.ack)
        send_ack(e, o, false);
    arm(e, o, now, e->rto, TG_TM_CLIENT);
}

static void receiver_pushed(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                            struct tg_eng_out *o)
{
    if (ev->rc == TG_EAGAIN) {
        /* Backpressure: keep this block and stop reading; the socket's
         * buffer holds the rest of the window until WRITABLE. The client
         * is not at fault: the wait is bounded by the storage timer, not
         * the client's retries. */
        if (e->state == TG_ES_RECEIVING) {
            memcpy(e->rx.hold, e->rx.push, e->rx.push_len);
            e->rx.hold_len = e->rx.push_len;
            e->state = TG_ES_STORE_WAIT;
            act(o, TG_ACT_READ_OFF);
            arm_storage(e, o, now);
        }
        return;
    }
    if (ev->rc < 0) {
        fail(e, o, ev->code, ev->msg ? ev->msg : "storage failed", true);
        return;
    }
    if (e->state == TG_ES_STORE_WAIT) {
        e->state = TG_ES_RECEIVING;
        progress(e);
        after_push(e, now, o);
        if (e->state != TG_ES_DONE)
            act(o, TG_ACT_READ_ON); /* last: what waited comes after our ACK */
        return;
    }
    after_push(e, now, o);
}

static void receiver_timeout(struct tg_eng *e, uint64_t now, struct tg_eng_out *o)
{
    switch (backoff(e)) {
    case GIVE_UP:
        finish(e, o, "timeout");
        return;
    case RESEND:
        /* With a window, blocks are accepted without an ACK: say again
         * where we are. */
        send_ack(e, o, true);
        break;
    }
    arm(e, o, now, e->rto, TG_TM_CLIENT);
}

static void st_receiving(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                         struct tg_eng_out *o)
{
    switch (ev->kind) {
    case TG_EV_DATA:
        receiver_data(e, ev, o);
        return;
    case TG_EV_PUSHED:
        receiver_pushed(e, ev, now, o);
        return;
    case TG_EV_LOST:
        /* Blocks were dropped while the store was busy: an ACK says where
         * to resume (RFC 7440 4), instead of the client's timeout. */
    case TG_EV_REQUEST:
        send_ack(e, o, false);
        return;
    case TG_EV_TIMEOUT:
        if (e->timer == TG_TM_CLIENT) {
            fire(e);
            receiver_timeout(e, now, o);
        } else {
            any_state(e, ev, o);
        }
        return;
    default:
        any_state(e, ev, o);
        return;
    }
}

static void st_store_wait(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                          struct tg_eng_out *o)
{
    struct tg_eng_act *a;

    switch (ev->kind) {
    case TG_EV_WRITABLE:
        e->rx.push = e->rx.hold;
        e->rx.push_len = e->rx.hold_len;
        a = act(o, TG_ACT_PUSH);
        a->data = e->rx.hold;
        a->len = e->rx.hold_len;
        return;
    case TG_EV_PUSHED:
        receiver_pushed(e, ev, now, o);
        return;
    case TG_EV_REQUEST:
        send_ack(e, o, false);
        return;
    default:
        any_state(e, ev, o); /* DATA waits in the socket, not here */
        return;
    }
}

static void st_committing(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                          struct tg_eng_out *o)
{
    unsigned dally;

    if (ev->kind != TG_EV_COMMITTED) {
        any_state(e, ev, o); /* DATA: no ACK before the commit */
        return;
    }
    act(o, TG_ACT_CLOSE);
    send_ack(e, o, false);
    e->ended_ms = now;
    e->state = TG_ES_DALLY;
    /* Linger long enough for the client's own retransmission of its last
     * DATA, in case this ACK is lost (RFC 1350 6). */
    dally = e->rto_init * 2;
    arm(e, o, now, dally > DALLY_MIN_MS ? dally : DALLY_MIN_MS, TG_TM_DALLY);
}

static void st_dally(struct tg_eng *e, const struct tg_eng_ev *ev, struct tg_eng_out *o)
{
    switch (ev->kind) {
    case TG_EV_DATA:
        /* Our final ACK was lost: say it again. */
        if (ev->block == tg_rx_ack_wire(&e->rx.rx))
            send_ack(e, o, false);
        return;
    case TG_EV_ERROR:
        tg_error_set(&e->why, ev->code, "client: %s", ev->msg ? ev->msg : "");
        finish(e, o, "ok");
        return;
    case TG_EV_TIMEOUT:
        if (fire(e) == TG_TM_DALLY)
            finish(e, o, "ok");
        return;
    case TG_EV_SUPERSEDE:
    case TG_EV_ABORT:
    case TG_EV_SHUTDOWN:
        finish(e, o, "ok"); /* the upload is complete; nothing is cut short */
        return;
    default:
        any_state(e, ev, o);
        return;
    }
}

/* ---- OACK: RRQ waits for ACK 0, WRQ for DATA 1 (RFC 2347) ---- */

static void st_oack(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now,
                    struct tg_eng_out *o)
{
    switch (ev->kind) {
    case TG_EV_ACK:
        if (e->op != TG_OP_RRQ)
            return;
        if (ev->block != 0) {
            unsent_ack(e, o, ev->block); /* only ACK 0 confirms the OACK */
            return;
        }
        if (!start_window(e, o))
            return;
        progress(e);
        forget_timer(e);
        e->state = TG_ES_SENDING;
        act(o, TG_ACT_FILL);
        return;
    case TG_EV_DATA:
        if (e->op == TG_OP_WRQ)
            receiver_data(e, ev, o);
        return;
    case TG_EV_REQUEST:
        act(o, TG_ACT_SEND_OACK);
        return;
    case TG_EV_TIMEOUT:
        if (e->timer != TG_TM_CLIENT) {
            any_state(e, ev, o);
            return;
        }
        fire(e);
        switch (backoff(e)) {
        case GIVE_UP:
            finish(e, o, "timeout");
            return;
        case RESEND:
            act(o, TG_ACT_SEND_OACK)->retx = true;
            break;
        }
        arm(e, o, now, e->rto, TG_TM_CLIENT);
        return;
    default:
        any_state(e, ev, o);
        return;
    }
}

/* ---- the dispatcher ---- */

void tg_eng_run(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now_ms,
                struct tg_eng_out *out)
{
    out->n = 0;
    if (e->state == TG_ES_DONE)
        return;
    if (ev->kind <= TG_EV_JUNK)
        hear(e);
    switch (e->state) {
    case TG_ES_OPENING:
        st_opening(e, ev, now_ms, out);
        break;
    case TG_ES_OACK:
        st_oack(e, ev, now_ms, out);
        break;
    case TG_ES_SENDING:
    case TG_ES_SOURCE_WAIT:
        st_sending(e, ev, now_ms, out);
        break;
    case TG_ES_RECEIVING:
        st_receiving(e, ev, now_ms, out);
        break;
    case TG_ES_STORE_WAIT:
        st_store_wait(e, ev, now_ms, out);
        break;
    case TG_ES_COMMITTING:
        st_committing(e, ev, now_ms, out);
        break;
    case TG_ES_DALLY:
        st_dally(e, ev, out);
        break;
    case TG_ES_DONE:
        break;
    }
}
