/* gateway/session.c - one transfer: its socket (the server's TID), its timer,
 * its window, and its backend stream. Two roles share one state machine:
 * sender (RRQ) and receiver (WRQ).
 *
 *   OPENING ──▶ NEGOTIATED ──▶ TRANSFER ──▶ DRAINING ──▶ DALLY ──▶ DONE
 *   (backend   (OACK sent,     (window /    (WRQ: commit  (WRQ: final
 *    opening)   wait ACK 0 /    lock-step)   in progress)   ACK sent,
 *               DATA 1)                                     re-ACK dups)
 *
 * The state decides what the one timer means; every transition goes through
 * set_state(). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry.h"
#include "runtime.h"
#include "session.h"
#include "transport.h"
#include "tftpgw/log.h"
#include "tftpgw/metrics.h"
#include "tftpgw/netascii.h"
#include "tftpgw/options.h"
#include "tftpgw/packet.h"
#include "tftpgw/path.h"
#include "tftpgw/route.h"
#include "tftpgw/sockaddr.h"
#include "tftpgw/window.h"

#define BURST 64
#define RTO_CAP_MS 16000u
#define CTL_MAX 512
#define DIRECT_MIN_WINDOW (64 * 1024)

enum tg_sess_state {
    TG_SS_OPENING,
    TG_SS_NEGOTIATED,
    TG_SS_TRANSFER,
    TG_SS_DRAINING,
    TG_SS_DALLY,
    TG_SS_DONE
};

static const char *const state_names[] = {"opening", "negotiated", "transfer",
                                          "draining", "dally", "done"};

struct tg_session {
    struct tg_reg_entry reg; /* the server's registry: peer, request, ops */
    struct tg_runtime *rt;
    enum tg_opcode op;
    enum tg_sess_state state;
    struct tg_transport tp;
    bool shared;         /* single-port: the listener's socket carries it */
    uv_poll_t poll;
    uv_timer_t timer;
    int open_handles;    /* freed when the last uv_close callback ran */
    bool reading;        /* poll started for UV_READABLE */
    char *reqname;       /* the filename as the client sent it (dedupe) */
    char path[TG_PATH_MAX];
    struct tg_route_match match;
    struct tg_negotiated neg;
    struct tg_stream *stream;
    bool heard;          /* a packet came from the client's TID */
    bool proven;         /* the client showed it hears us (docs/security.md) */
    unsigned rto_init, rto, tries;
    uint64_t retransmits;
    uint64_t started_ms, ended_ms;
    uint64_t be_t0;      /* uv_hrtime() when the backend was asked to open or commit */
    bool guard;          /* the timer waits on the backend, not the client */
    bool pacing;         /* the timer waits for client_rate's bucket */
    uint64_t deadline;   /* when the timer's meaning is due; 0: disarmed */
    uint64_t timer_due;  /* when the uv timer will actually fire */
    const char *result;  /* "ok", "error", ... for the log line */
    struct tg_error why;
    uint8_t ctl[CTL_MAX]; /* OACK or ACK: what the timer resends */
    size_t ctl_len;

    /* sender (RRQ) */
    struct tg_win win;
    bool wait_readable;
    bool direct;         /* the stream reads straight into window slots */
    bool direct_busy;    /* such a read is in flight */
    uint64_t direct_asked;
    uint64_t src_bytes;  /* bytes pulled from the stream */
    struct tg_na_enc na_enc;
    uint8_t *na_raw;     /* netascii: source bytes not yet encoded */
    size_t na_len, na_off;
    bool src_eof;

    /* receiver (WRQ) */
    struct tg_rx rx;
    uint8_t *hold;       /* a block the stream could not take yet */
    size_t hold_len;
    bool hold_last, hold_ack, blocked;
    struct tg_na_dec na_dec;
    uint8_t *na_out;
    int64_t stored;      /* bytes pushed to the stream (after decoding) */
};

static void pump(struct tg_session *s);
static void finish(struct tg_session *s, const char *result);

static void set_state(struct tg_session *s, enum tg_sess_state st)
{
    if (tg_log_enabled(TG_LOG_DEBUG))
        tg_log(TG_LOG_DEBUG, "session %s: %s -> %s", s->tp.peer_str,
               state_names[s->state], state_names[st]);
    s->state = st;
}

static void send_ctl(struct tg_session *s)
{
    tg_tp_send(&s->tp, s->ctl, s->ctl_len);
}

static void send_error(struct tg_session *s, uint16_t code, const char *msg)
{
    uint8_t pkt[CTL_MAX];
    size_t n = tg_pkt_build_error(pkt, sizeof(pkt), code, msg);

    if (n)
        tg_tp_send(&s->tp, pkt, n);
}

static void on_timer(uv_timer_t *t);

/* The one timer is re-armed lazily: arming only moves a deadline, and the
 * uv timer, when it fires early, waits for the rest. An ACK per block would
 * otherwise cost two timer-heap updates on the hot path. */
static void set_deadline(struct tg_session *s, uint64_t ms, bool guard)
{
    uint64_t now = uv_now(s->rt->loop);

    s->guard = guard;
    s->pacing = false;
    s->deadline = now + ms;
    if (!uv_is_active((uv_handle_t *)&s->timer) || s->timer_due > s->deadline) {
        uv_timer_start(&s->timer, on_timer, ms, 0);
        s->timer_due = s->deadline;
    }
}

static void arm(struct tg_session *s, unsigned ms)
{
    set_deadline(s, ms, false);
}

static void disarm(struct tg_session *s)
{
    s->guard = false;
    s->pacing = false;
    s->deadline = 0;
}

static bool armed(const struct tg_session *s)
{
    return s->deadline != 0;
}

/* While the session waits on its backend (opening, a read with nothing in
 * flight, a blocked write, a commit), the one timer bounds that wait, so a
 * stalled store cannot pin a session. */
static void arm_guard(struct tg_session *s)
{
    unsigned ms = s->rto_init * (s->rt->cfg->server.retries + 2);

    set_deadline(s, ms > 5000 ? ms : 5000, true);
}

/* Progress from the client: back to the first interval (RFC 1123 4.2.3.2
 * asks for adaptive backoff, which restarts once the path works again).
 * Before the client proved it hears us, what looked like progress may be a
 * blind sender's guess: the budget is not restored. */
static void progress(struct tg_session *s)
{
    if (!s->proven)
        return;
    s->tries = 0;
    s->rto = s->rto_init;
}

enum { GIVE_UP, RESEND, LISTEN };

/* The next timeout's meaning. A session whose client has not proven that
 * it hears us sends its first packet and one retransmission at most (RFC
 * 1350 has no such rule; its absence makes a reflector: docs/security.md),
 * then listens one more, doubled interval: on a lossy path the client's
 * answer may still come, and a spoofed request still ends after 7
 * intervals. Nothing but proof restores the budget (see progress()). */
static int backoff(struct tg_session *s)
{
    unsigned max = s->rt->cfg->server.retries;

    if (!s->proven && max > 2)
        max = 2;
    unsigned cap = s->rto_init > RTO_CAP_MS ? s->rto_init : RTO_CAP_MS;

    if (s->tries >= max)
        return GIVE_UP;
    s->tries++;
    s->rto = s->rto * 2 > cap ? cap : s->rto * 2;
    if (!s->proven && s->tries > 1)
        return LISTEN;
    s->retransmits++;
    tg_metrics_retransmits(1);
    return RESEND;
}

static void fail(struct tg_session *s, uint16_t code, const char *msg, bool tell)
{
    tg_error_set(&s->why, code, "%s", msg);
    if (tell)
        send_error(s, code, msg);
    finish(s, "error");
}

/* ---- sender (RRQ) ---- */

/* The window ring is allocated when the client first answers (or at once
 * for a plain RRQ, whose window is one 516-byte block): a flood of
 * requests nobody answers costs no windows. False when the session ended. */
static bool start_window(struct tg_session *s)
{
    if (s->win.buf)
        return true;
    if (tg_win_init(&s->win, s->neg.windowsize, s->neg.blksize,
                    s->rt->cfg->server.rollover) != 0 ||
        (s->neg.mode == TG_MODE_NETASCII && !(s->na_raw = tg_malloc(s->neg.blksize)))) {
        fail(s, TG_TFTP_EUNDEF, "out of memory", true);
        return false;
    }
    return true;
}

static bool fill_octet(struct tg_session *s)
{
    uint8_t *p;
    size_t room;

    while ((p = tg_win_fill_ptr(&s->win, &room)) != NULL) {
        ssize_t n = tg_stream_pull(s->stream, p, room);

        if (n == TG_EAGAIN) {
            s->wait_readable = true;
            return true;
        }
        if (n < 0) {
            fail(s, s->stream->err.code, s->stream->err.msg, true);
            return false;
        }
        if (n == 0) {
            /* digest G10: the OACK promised a size; a file that changed
             * under us must not be passed off as complete. */
            if ((s->neg.accepted & TG_OPT_TSIZE) && (int64_t)s->src_bytes != s->neg.tsize) {
                fail(s, TG_TFTP_EUNDEF, "file changed during transfer", true);
                return false;
            }
            tg_win_fill_eof(&s->win);
            return true;
        }
        s->src_bytes += (uint64_t)n;
        if ((s->neg.accepted & TG_OPT_TSIZE) && (int64_t)s->src_bytes > s->neg.tsize) {
            fail(s, TG_TFTP_EUNDEF, "file changed during transfer", true);
            return false;
        }
        tg_win_fill_commit(&s->win, (size_t)n);
    }
    return true;
}

/* Octet reads from a file need no copy: one preadv fills every free slot
 * of the window, then the slots go out with sendmmsg. */
static bool apply_direct(struct tg_session *s, ssize_t got);

static bool fill_direct(struct tg_session *s)
{
    uv_buf_t bufs[TG_WINDOW_DIRECT_MAX];
    unsigned n = 0;
    uint64_t seq;
    size_t room;
    uint8_t *p;
    int rc;

    if (s->direct_busy || !(p = tg_win_fill_ptr(&s->win, &room)))
        return true;
    bufs[n++] = uv_buf_init((char *)p, (unsigned)room);
    s->direct_asked = room;
    for (seq = s->win.filled + 2; seq <= s->win.acked + s->win.size && n < TG_WINDOW_DIRECT_MAX;
         seq++) {
        bufs[n++] = uv_buf_init((char *)tg_win_payload(&s->win, seq), (unsigned)s->win.blksize);
        s->direct_asked += s->win.blksize;
    }
    rc = s->stream->backend->ops->read_direct(s->stream, bufs, n);
    if (rc < 0) {
        fail(s, s->stream->err.code, s->stream->err.msg[0] ? s->stream->err.msg : "read failed",
             true);
        return false;
    }
    if (rc == TG_DIRECT_DONE)
        return apply_direct(s, s->stream->direct_result);
    s->direct_busy = true;
    s->wait_readable = true; /* nothing more to fill until it lands */
    return true;
}

static void on_direct(struct tg_session *s, ssize_t got)
{
    s->direct_busy = false;
    s->wait_readable = false;
    if (apply_direct(s, got))
        pump(s);
}

/* Bytes a direct read brought into the window; false when the session
 * ended. */
static bool apply_direct(struct tg_session *s, ssize_t got)
{
    uint64_t left;

    if (got < 0) {
        fail(s, s->stream->err.code, s->stream->err.msg, true);
        return false;
    }
    s->src_bytes += (uint64_t)got;
    for (left = (uint64_t)got; left > 0;) {
        size_t room;
        uint64_t take;

        tg_win_fill_ptr(&s->win, &room);
        take = left < room ? left : room;
        tg_win_fill_commit(&s->win, (size_t)take);
        left -= take;
    }
    if ((uint64_t)got < s->direct_asked) {
        /* Short: the end of the file (the stream never reads past it). */
        if ((s->neg.accepted & TG_OPT_TSIZE) && (int64_t)s->src_bytes != s->neg.tsize) {
            fail(s, TG_TFTP_EUNDEF, "file changed during transfer", true);
            return false;
        }
        tg_win_fill_eof(&s->win);
    }
    return true;
}

/* netascii grows the data, so source bytes go through a staging buffer and
 * the encoder carries a split CR LF / CR NUL pair across blocks (digest J5). */
static bool fill_netascii(struct tg_session *s)
{
    uint8_t *p;
    size_t room;

    while ((p = tg_win_fill_ptr(&s->win, &room)) != NULL) {
        size_t used = 0, wrote;

        if (s->na_off == s->na_len && !s->src_eof) {
            ssize_t n = tg_stream_pull(s->stream, s->na_raw, s->win.blksize);

            if (n == TG_EAGAIN) {
                s->wait_readable = true;
                return true;
            }
            if (n < 0) {
                fail(s, s->stream->err.code, s->stream->err.msg, true);
                return false;
            }
            s->na_off = 0;
            s->na_len = (size_t)n;
            s->src_eof = n == 0;
            s->src_bytes += (uint64_t)n;
        }
        wrote = tg_na_encode(&s->na_enc, s->na_raw + s->na_off, s->na_len - s->na_off,
                             &used, p, room);
        s->na_off += used;
        tg_win_fill_commit(&s->win, wrote);
        if (s->src_eof && s->na_off == s->na_len && !tg_na_enc_pending(&s->na_enc)) {
            tg_win_fill_eof(&s->win);
            return true;
        }
    }
    return true;
}

#define SEND_BATCH 64

static void send_window(struct tg_session *s)
{
    uint8_t *d[SEND_BATCH];
    size_t len[SEND_BATCH];
    uint64_t seq;
    unsigned n = 0, wait_ms = 0;

    /* A window leaves in as few sendmmsg calls as it takes; the slots are
     * ready datagrams, so nothing is copied. */
    for (;;) {
        seq = tg_win_sendable(&s->win);
        if (seq != 0) {
            d[n] = (uint8_t *)tg_win_datagram(&s->win, seq, &len[n]);
            if (!tg_tp_pace(&s->tp, len[n], uv_now(s->rt->loop), &wait_ms))
                seq = 0; /* the rest when the bucket has refilled */
        }
        if (seq != 0) {
            tg_metrics_bytes_sent(len[n] - TG_HDR);
            tg_win_sent(&s->win);
            n++;
        }
        if (n > 0 && (seq == 0 || n == SEND_BATCH)) {
            tg_tp_send_many(&s->tp, d, len, n, TG_HDR + s->win.blksize);
            n = 0;
        }
        if (seq == 0)
            break;
    }
    if (wait_ms) {
        set_deadline(s, wait_ms, false);
        s->pacing = true;
        return;
    }
    if (s->win.next_send > s->win.acked + 1) {
        if (s->guard || !armed(s))
            arm(s, s->rto);
    } else if (s->wait_readable) {
        arm_guard(s); /* nothing in flight: waiting for the backend */
    } else {
        disarm(s);
    }
}

static void pump(struct tg_session *s)
{
    /* Even while the backend is behind, blocks already filled go out and
     * the retransmit timer covers what is in flight. */
    if (!s->wait_readable &&
        !(s->direct ? fill_direct(s)
                    : s->neg.mode == TG_MODE_NETASCII ? fill_netascii(s) : fill_octet(s)))
        return;
    send_window(s);
}

static void prove(struct tg_session *s);
static bool start_window(struct tg_session *s);

/* An ACK for a block we never sent: a real client cannot produce it, a
 * blind sender guessing the transfer's progress does. */
static void unsent_ack(struct tg_session *s, uint16_t wire)
{
    tg_log(TG_LOG_INFO, "session %s: ACK %u for a block not sent yet; ending the transfer",
           s->tp.peer_str, (unsigned)wire);
    fail(s, TG_TFTP_EBADOP, "ACK for a block not sent", true);
}

static void on_ack(struct tg_session *s, uint16_t wire)
{
    int n;

    if (s->state == TG_SS_NEGOTIATED) {
        if (wire != 0) {
            unsent_ack(s, wire); /* only ACK 0 confirms the OACK (RFC 2347) */
            return;
        }
        if (!start_window(s))
            return;
        progress(s);
        disarm(s);
        set_state(s, TG_SS_TRANSFER);
        pump(s);
        return;
    }
    if (s->state != TG_SS_TRANSFER)
        return;
    n = tg_win_ack(&s->win, wire);
    if (n == TG_WIN_UNSENT) {
        unsent_ack(s, wire);
        return;
    }
    if (n == 0)
        return; /* duplicate or stale: never resend on it (RFC 1123 4.2.3.1) */
    prove(s);
    progress(s);
    if (tg_win_done(&s->win)) {
        finish(s, "ok");
        return;
    }
    disarm(s);
    pump(s);
}

/* ---- receiver (WRQ) ---- */

static void send_ack(struct tg_session *s)
{
    s->ctl_len = tg_pkt_build_ack(s->ctl, sizeof(s->ctl), tg_rx_ack_wire(&s->rx));
    send_ctl(s);
}

static void set_reading(struct tg_session *s, bool on);
static void queue_replay(struct tg_session *s);

static void after_push(struct tg_session *s, bool last, bool ack)
{
    if (last) {
        int rc;

        /* Invariant 3: the final ACK waits for the commit. */
        arm_guard(s);
        set_state(s, TG_SS_DRAINING);
        s->be_t0 = uv_hrtime();
        rc = tg_stream_commit(s->stream);
        if (rc < 0)
            fail(s, s->stream->err.code ? s->stream->err.code : TG_TFTP_EUNDEF,
                 s->stream->err.msg[0] ? s->stream->err.msg : "storage commit failed", true);
        return;
    }
    if (ack)
        send_ack(s);
    arm(s, s->rto);
}

static void deliver(struct tg_session *s, const uint8_t *data, size_t len,
                    bool last, bool ack)
{
    const uint8_t *p = data;
    size_t n = len;
    int64_t max = s->match.route->max_size;
    int rc = 0;

    if ((s->neg.mode == TG_MODE_NETASCII && !s->na_out &&
         !(s->na_out = tg_malloc(s->neg.blksize + 1))) ||
        (!s->hold && !(s->hold = tg_malloc(s->neg.blksize + 1)))) {
        fail(s, TG_TFTP_EUNDEF, "out of memory", true);
        return;
    }
    if (s->neg.mode == TG_MODE_NETASCII) {
        n = tg_na_decode(&s->na_dec, data, len, s->na_out);
        if (last)
            n += tg_na_decode_finish(&s->na_dec, s->na_out + n);
        p = s->na_out;
    }
    if ((s->neg.accepted & TG_OPT_TSIZE) &&
        (s->stored + (int64_t)n > s->neg.tsize || (last && s->stored + (int64_t)n != s->neg.tsize))) {
        /* digest G10: the client's tsize sized the store (free-space check,
         * Content-Length upstream); data that disagrees is not stored. */
        fail(s, s->stored + (int64_t)n > s->neg.tsize ? TG_TFTP_ENOSPACE : TG_TFTP_EUNDEF,
             "data does not match the announced tsize", true);
        return;
    }
    if (max >= 0 && s->stored + (int64_t)n > max) {
        char msg[96];

        snprintf(msg, sizeof(msg), "file too large (limit %lld bytes)", (long long)max);
        fail(s, TG_TFTP_ENOSPACE, msg, true);
        return;
    }
    s->stored += (int64_t)n;
    tg_metrics_bytes_received(len);
    if (n > 0)
        rc = tg_stream_push(s->stream, p, n);
    if (rc == TG_EAGAIN) {
        /* Backpressure: keep this block, stop reading; the kernel's socket
         * buffer holds the rest of the window until WRITABLE. */
        memcpy(s->hold, p, n);
        s->hold_len = n;
        s->hold_last = last;
        s->hold_ack = ack;
        s->blocked = true;
        set_reading(s, false);
        /* The client is not at fault: bound the wait on the store instead
         * of spending the client's retries. */
        arm_guard(s);
        return;
    }
    if (rc < 0) {
        fail(s, s->stream->err.code, s->stream->err.msg, true);
        return;
    }
    after_push(s, last, ack);
}

static void on_data(struct tg_session *s, uint16_t wire, const uint8_t *data, size_t len)
{
    bool ack, last;
    enum tg_rx_action act;

    if (s->state == TG_SS_DALLY) {
        /* Our final ACK was lost: say it again (digest D9). */
        if (wire == tg_rx_ack_wire(&s->rx))
            send_ctl(s);
        return;
    }
    if (s->state != TG_SS_NEGOTIATED && s->state != TG_SS_TRANSFER)
        return; /* DRAINING: no ACK before the commit */
    if (len > s->neg.blksize) {
        fail(s, TG_TFTP_EBADOP, "DATA larger than the negotiated blksize", true);
        return;
    }
    last = len < s->neg.blksize;
    act = tg_rx_on_data(&s->rx, wire, last, &ack);
    if (act != TG_RX_ACCEPT) {
        /* Before DATA 1 an ACK would be ACK 0, which this client never
         * expects after an OACK (RFC 2347): let the OACK timer work. */
        if (ack && s->state == TG_SS_TRANSFER)
            send_ack(s);
        return;
    }
    if (s->state == TG_SS_NEGOTIATED)
        set_state(s, TG_SS_TRANSFER);
    progress(s);
    deliver(s, data, len, last, ack);
}

static void on_writable(struct tg_session *s)
{
    int rc;

    if (!s->blocked)
        return;
    rc = s->hold_len ? tg_stream_push(s->stream, s->hold, s->hold_len) : 0;
    if (rc == TG_EAGAIN)
        return;
    if (rc < 0) {
        fail(s, s->stream->err.code, s->stream->err.msg, true);
        return;
    }
    s->blocked = false;
    set_reading(s, true);
    progress(s);
    after_push(s, s->hold_last, s->hold_ack);
    if (s->shared)
        queue_replay(s);
}

static void on_committed(struct tg_session *s)
{
    unsigned dally;

    tg_stream_close(s->stream);
    s->stream = NULL;
    send_ack(s);
    s->ended_ms = uv_now(s->rt->loop);
    set_state(s, TG_SS_DALLY);
    /* Linger long enough for the client's own retransmission of its last
     * DATA, in case this ACK is lost (RFC 1350 6). */
    dally = s->rto_init * 2;
    if (dally < 3000)
        dally = 3000;
    arm(s, dally);
}

/* ---- events ---- */

static void on_opened(struct tg_session *s)
{
    if (s->op == TG_OP_RRQ && (s->neg.accepted & TG_OPT_TSIZE)) {
        /* digest G8: tsize only when the size is really known. */
        /* An empty file's size is left out too: curl rejects "tsize 0"
         * in an OACK as invalid and abandons the transfer. */
        if (s->stream->size > 0 && s->neg.mode == TG_MODE_OCTET)
            s->neg.tsize = s->stream->size;
        else
            s->neg.accepted &= ~TG_OPT_TSIZE;
    }
    if (s->neg.accepted) {
        s->ctl_len = tg_opt_build_oack(&s->neg, s->ctl, sizeof(s->ctl));
        set_state(s, TG_SS_NEGOTIATED);
        send_ctl(s);
        arm(s, s->rto);
        return;
    }
    if (s->op == TG_OP_RRQ && !start_window(s))
        return;
    set_state(s, TG_SS_TRANSFER);
    if (s->op == TG_OP_RRQ) {
        pump(s);
    } else {
        send_ack(s); /* ACK 0 (RFC 1350 4) */
        arm(s, s->rto);
    }
}

static void on_stream(struct tg_stream *st, enum tg_stream_ev ev, void *arg)
{
    struct tg_session *s = arg;

    (void)st;
    if (s->state == TG_SS_DONE)
        return;
    switch (ev) {
    case TG_STREAM_OPENED:
        if (s->state == TG_SS_OPENING) {
            tg_metrics_backend_latency(s->match.route->backend,
                                       (double)(uv_hrtime() - s->be_t0) / 1e9);
            disarm(s);
            on_opened(s);
        }
        break;
    case TG_STREAM_READABLE:
        s->wait_readable = false;
        if (s->state == TG_SS_TRANSFER)
            pump(s);
        break;
    case TG_STREAM_WRITABLE:
        on_writable(s);
        break;
    case TG_STREAM_COMMITTED:
        if (s->state == TG_SS_DRAINING) { /* only an answer to our commit() */
            tg_metrics_backend_latency(s->match.route->backend,
                                       (double)(uv_hrtime() - s->be_t0) / 1e9);
            on_committed(s);
        }
        break;
    case TG_STREAM_FAILED:
        fail(s, s->stream->err.code, s->stream->err.msg, true);
        break;
    case TG_STREAM_DIRECT:
        if (s->state == TG_SS_TRANSFER || s->state == TG_SS_NEGOTIATED)
            on_direct(s, st->direct_result);
        else
            s->direct_busy = false;
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    struct tg_session *s = t->data;
    uint64_t now = uv_now(s->rt->loop);

    if (!armed(s))
        return;
    if (now < s->deadline) {
        /* Fired at an older deadline: wait for the current one. */
        uv_timer_start(&s->timer, on_timer, s->deadline - now, 0);
        s->timer_due = s->deadline;
        return;
    }
    s->deadline = 0;
    if (s->pacing) {
        s->pacing = false;
        if (s->state == TG_SS_TRANSFER && s->op == TG_OP_RRQ)
            send_window(s);
        return;
    }
    if (s->guard || s->state == TG_SS_OPENING) {
        fail(s, TG_TFTP_EUNDEF, "storage did not answer in time", true);
        return;
    }
    switch (s->state) {
    case TG_SS_OPENING:
        return;
    case TG_SS_NEGOTIATED:
        switch (backoff(s)) {
        case GIVE_UP:
            finish(s, "timeout");
            return;
        case RESEND:
            send_ctl(s);
            break;
        }
        arm(s, s->rto);
        return;
    case TG_SS_TRANSFER:
        switch (backoff(s)) {
        case GIVE_UP:
            /* digest D8: with only the last block unconfirmed the client
             * may well have it all. */
            /* With a window, the final ACK covers the whole last window:
             * everything sent and only that ACK missing is the same case. */
            if (s->op == TG_OP_RRQ && s->heard && s->win.last &&
                (s->win.acked + 1 == s->win.last || s->win.next_send > s->win.last))
                finish(s, "unconfirmed");
            else
                finish(s, "timeout");
            return;
        case LISTEN:
            arm(s, s->rto);
            return;
        }
        if (s->op == TG_OP_RRQ) {
            tg_win_rewind(&s->win); /* RFC 7440 4: resend after the last ACK */
            disarm(s);
            send_window(s);
        } else {
            /* From the receive state: with a window, blocks are accepted
             * without an ACK, and ctl may still hold the OACK. */
            send_ack(s);
            arm(s, s->rto);
        }
        return;
    case TG_SS_DALLY:
        finish(s, "ok");
        return;
    case TG_SS_DRAINING:
    case TG_SS_DONE:
        return;
    }
}

/* The client hears us: the address is real, the full retry budget and
 * the interval it asked for (RFC 2349) apply from now on. */
static void prove(struct tg_session *s)
{
    if (s->proven)
        return;
    s->proven = true;
    if (s->neg.accepted & TG_OPT_TIMEOUT) {
        s->rto_init = s->neg.timeout_s * 1000u;
        s->rto = s->rto_init;
    }
}

/* The first packet from the client's address:port. On a transfer's own
 * port that is proof: only a client that received our first packet knows
 * the port (RFC 1350 4's TID is the one secret of the exchange). On the
 * shared port a blind sender can say as much, so a read must first
 * acknowledge data it was sent (on_ack); a write makes us send only ACKs,
 * no more than it sends us. */
static void heard(struct tg_session *s)
{
    if (s->heard)
        return;
    s->heard = true;
    if (!s->shared || s->op == TG_OP_WRQ)
        prove(s);
}

static void on_packet(struct tg_session *s, const uint8_t *buf, size_t len)
{
    struct tg_packet pkt;

    if (tg_pkt_parse(buf, len, &pkt) != 0) {
        /* From the right TID but unreadable: ignore it rather than let a
         * stray datagram end a good transfer. */
        tg_log(TG_LOG_DEBUG, "session %s: malformed packet ignored", s->tp.peer_str);
        return;
    }
    switch (pkt.op) {
    case TG_OP_ERROR: {
        char m[96];

        /* Never answered (digest A12). ERROR 8 is a client declining our
         * OACK, normal for UEFI tsize probes (digest E10). */
        tg_log_sanitize(pkt.u.error.msg, m, sizeof(m));
        tg_error_set(&s->why, pkt.u.error.code, "client: %s", m);
        if (s->state == TG_SS_DALLY)
            finish(s, "ok");
        else
            finish(s, pkt.u.error.code == TG_TFTP_EOPTNEG ? "declined" : "aborted");
        return;
    }
    case TG_OP_ACK:
        if (s->op == TG_OP_RRQ)
            on_ack(s, pkt.u.ack.block);
        return;
    case TG_OP_DATA:
        if (s->op == TG_OP_WRQ)
            on_data(s, pkt.u.data.block, pkt.u.data.data, pkt.u.data.len);
        return;
    default:
        tg_log(TG_LOG_DEBUG, "session %s: unexpected %s ignored", s->tp.peer_str,
               tg_pkt_opname(pkt.op));
        return;
    }
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    struct tg_session *s = h->data;
    int i;

    if (status < 0) {
        /* libuv has stopped watching this socket: the session is deaf. */
        tg_log(TG_LOG_WARN, "session %s: socket error: %s", s->tp.peer_str, uv_strerror(status));
        fail(s, TG_TFTP_EUNDEF, "server socket error", false);
        return;
    }
    if (!(events & UV_READABLE))
        return;
    for (i = 0; i < BURST && s->state != TG_SS_DONE && !s->blocked; i++) {
        ssize_t n = tg_tp_recv(&s->tp, s->rt->rxbuf, sizeof(s->rt->rxbuf));

        if (n == TG_TP_AGAIN)
            break;
        if (n == TG_TP_FOREIGN)
            continue;
        heard(s);
        on_packet(s, s->rt->rxbuf, (size_t)n);
    }
}

static void set_reading(struct tg_session *s, bool on)
{
    if (on == s->reading || s->shared)
        return;
    s->reading = on;
    if (on)
        uv_poll_start(&s->poll, UV_READABLE, on_readable);
    else
        uv_poll_stop(&s->poll);
}

/* ---- lifetime ---- */

static void session_free(struct tg_session *s)
{
    tg_tp_close(&s->tp);
    tg_win_free(&s->win);
    tg_free(s->na_raw);
    tg_free(s->hold);
    tg_free(s->na_out);
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

/* ---- what the registry asks (gateway/registry.h) ---- */

static bool op_heard(const struct tg_session *s)
{
    return s->heard;
}

static bool op_proven(const struct tg_session *s)
{
    return s->proven;
}

static bool op_lingering(const struct tg_session *s)
{
    return s->state == TG_SS_DALLY;
}

static void op_end(struct tg_session *s, enum tg_reg_end how, const char *msg)
{
    switch (how) {
    case TG_END_EVICT:
        tg_error_set(&s->why, TG_TFTP_EUNDEF,
                     "evicted: server full and the client never answered");
        finish(s, "evicted");
        return;
    case TG_END_ABORT:
        if (s->state == TG_SS_DALLY)
            finish(s, "ok");
        else
            fail(s, TG_TFTP_EUNDEF, msg, true);
        return;
    case TG_END_SHUTDOWN:
        if (s->state == TG_SS_DALLY)
            finish(s, "ok");
        else if (!s->heard && s->state != TG_SS_OPENING)
            /* Not a running transfer yet: the client never answered. */
            fail(s, TG_TFTP_EUNDEF, "server is shutting down", true);
        return;
    }
}

static const struct tg_reg_ops reg_ops = {op_heard, op_proven, op_lingering, op_end};

/* What the shared socket kept while blocked, in arrival order, until it
 * blocks again. Blocks dropped meanwhile: an ACK now says where to resume
 * (RFC 7440 4), instead of the client's timeout. */
static void queue_replay(struct tg_session *s)
{
    const uint8_t *buf;
    size_t len;

    while (!s->blocked && s->state != TG_SS_DONE && tg_tp_next_held(&s->tp, &buf, &len))
        on_packet(s, buf, len);
    if (!s->blocked && s->state == TG_SS_TRANSFER && tg_tp_take_dropped(&s->tp))
        send_ack(s);
}

void tg_session_input(struct tg_session *s, const uint8_t *buf, size_t len)
{
    if (s->state == TG_SS_DONE)
        return;
    if (s->blocked) {
        /* The listener's socket cannot stop for one session: up to a
         * window of datagrams waits here, as a per-transfer socket's
         * buffer would hold it (invariant 2: a window's worth); beyond
         * that a block is dropped, and the ACK on unblocking says where
         * the client resumes. */
        tg_tp_hold(&s->tp, buf, len);
        return;
    }
    heard(s);
    on_packet(s, buf, len);
}

void tg_session_supersede(struct tg_session *s)
{
    /* The client's port starts a new transfer: the old one is over for
     * it, and both cannot share one address:port on our single port. */
    if (s->state == TG_SS_DALLY) {
        finish(s, "ok");
        return;
    }
    tg_error_set(&s->why, TG_TFTP_EUNDEF, "superseded by a new request from the same port");
    finish(s, "superseded");
}

static void log_transfer(struct tg_session *s, const char *result)
{
    char fn[160], key[160], opts[128] = "";
    uint64_t bytes;
    int lvl;

    if (s->op == TG_OP_RRQ) {
        /* File bytes ACKed by the client (netascii: as sent on the wire). */
        if (tg_win_done(&s->win))
            bytes = (s->win.last - 1) * s->win.blksize + s->win.len[s->win.last % s->win.size];
        else
            bytes = s->win.acked * s->win.blksize;
    } else {
        bytes = (uint64_t)s->stored;
    }
    if ((s->neg.accepted & TG_OPT_TSIZE) && s->neg.tsize >= 0)
        snprintf(opts, sizeof(opts), " tsize=%lld", (long long)s->neg.tsize);
    if (s->neg.accepted & TG_OPT_TIMEOUT)
        snprintf(opts + strlen(opts), sizeof(opts) - strlen(opts), " timeout=%u",
                 s->neg.timeout_s);
    lvl = (!strcmp(result, "ok") || !strcmp(result, "declined")) ? TG_LOG_INFO : TG_LOG_WARN;
    tg_log(lvl,
           "transfer client=%s op=%s file=\"%s\" route=%s key=\"%s\" mode=%s "
           "blksize=%u windowsize=%u%s bytes=%llu duration_ms=%llu retransmits=%llu "
           "result=%s%s%s%s",
           s->tp.peer_str, tg_pkt_opname(s->op), tg_log_sanitize(s->path, fn, sizeof(fn)),
           s->match.route ? s->match.route->name : "-",
           tg_log_sanitize(s->match.key, key, sizeof(key)),
           s->neg.mode == TG_MODE_NETASCII ? "netascii" : "octet", s->neg.blksize,
           s->neg.windowsize, opts, (unsigned long long)bytes,
           (unsigned long long)((s->ended_ms ? s->ended_ms : uv_now(s->rt->loop)) -
                                s->started_ms),
           (unsigned long long)s->retransmits, result, s->why.msg[0] ? " error=\"" : "",
           s->why.msg, s->why.msg[0] ? "\"" : "");
}

static void finish(struct tg_session *s, const char *result)
{
    if (s->state == TG_SS_DONE)
        return;
    set_state(s, TG_SS_DONE);
    s->result = result;
    if (s->stream) {
        /* Closing an uncommitted write stream aborts it (invariant 3). */
        tg_stream_close(s->stream);
        s->stream = NULL;
    }
    log_transfer(s, result);
    tg_metrics_transfer_finished(s->op == TG_OP_RRQ ? "rrq" : "wrq", s->match.route->name,
                                 tg_metrics_result(result, s->why.code, s->rt->draining));
    if (!strcmp(result, "ok") || !strcmp(result, "unconfirmed"))
        s->rt->stats.transfers_ok++;
    else
        s->rt->stats.transfers_failed++;
    uv_timer_stop(&s->timer);
    if (!s->shared) {
        if (s->reading)
            uv_poll_stop(&s->poll);
        uv_close((uv_handle_t *)&s->poll, on_handle_closed);
    }
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
    tg_registry_remove(&s->rt->reg, &s->reg);
}

/* The transfer's socket: the listener's in single-port mode (RFC 1350's
 * per-transfer port cannot cross NAT or a published container port) for
 * reads, and for writes only with single_port_writes (on the shared port a
 * blind sender can complete an upload from any address an allow list
 * trusts); else one of its own bound to the address the request came to,
 * its port the transfer's TID. */
static int open_transport(struct tg_session *s, const struct tg_request_ctx *rc)
{
    const struct tg_server_cfg *sc = &s->rt->cfg->server;
    struct tg_tp_spec spec;
    unsigned fit;
    int r;

    memset(&spec, 0, sizeof(spec));
    spec.peer = rc->peer;
    spec.local = rc->local;
    spec.ifindex = rc->ifindex;
    spec.listen_fd = s->shared ? rc->listen_fd : -1;
    spec.port_lo = sc->port_lo;
    spec.port_hi = sc->port_hi;
    /* A window's worth, as a socket of its own would buffer it. */
    spec.hold_cap = (size_t)s->neg.windowsize * (TG_HDR + s->neg.blksize + sizeof(uint32_t));
    spec.pace = s->rt->sendrate;
    spec.rate = sc->client_rate;
    r = tg_tp_open(&s->tp, &spec);
    if (r != 0 || s->op != TG_OP_WRQ)
        return r;
    /* An upload's whole window arrives at once: the socket must hold it,
     * or its tail is dropped and every window costs a timeout. */
    fit = tg_tp_fit_window(&s->tp, s->neg.windowsize, s->neg.blksize);
    if (fit < s->neg.windowsize) {
        tg_log(TG_LOG_INFO, "session %s: windowsize %u lowered to %u to fit the socket buffer",
               s->tp.peer_str, s->neg.windowsize, fit);
        s->neg.windowsize = fit;
        tg_rx_init(&s->rx, fit, s->rx.rollover);
    }
    return 0;
}

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

/* The running generation's backend of that name. */
static struct tg_backend *find_backend(const struct tg_runtime *rt, const char *name)
{
    for (size_t i = 0; i < rt->cfg->nbackends; i++)
        if (strcmp(rt->cfg->backends[i].name, name) == 0)
            return rt->backends[i];
    return NULL;
}

int tg_session_start(struct tg_runtime *rt, const struct tg_request_ctx *rc,
                     struct tg_error *err)
{
    const struct tg_server_cfg *sc = &rt->cfg->server;
    struct tg_opt_limits lim;
    struct tg_open_args oa;
    struct tg_backend *be;
    struct tg_session *s;
    int r;

    s = tg_calloc(1, sizeof(*s));
    if (!s) {
        tg_error_set(err, TG_TFTP_EUNDEF, "out of memory");
        return TG_ENOMEM;
    }
    s->tp.fd = -1;
    s->rt = rt;
    s->op = rc->op;
    tg_sockaddr_str(rc->peer, s->tp.peer_str, sizeof(s->tp.peer_str));

    r = tg_path_normalize(rc->req->filename, s->path, sizeof(s->path));
    if (r != 0) {
        path_error(r, err);
        goto refuse;
    }
    r = tg_route_resolve(rt->cfg->routes, rt->cfg->nroutes, s->path, rc->peer,
                         rc->op, &s->match, err);
    if (r != 0)
        goto refuse;
    lim.max_blksize = sc->max_blksize;
    lim.max_windowsize = sc->max_windowsize;
    lim.max_window_bytes = sc->max_window_bytes;
    lim.refuse = s->match.route->refuse;
    s->shared = rt->single_port && (rc->op == TG_OP_RRQ || sc->single_port_writes);
    if (s->shared) {
        /* A blind sender knows the shared port: what one blind ACK can
         * release is capped (docs/security.md), blksize included. */
        if (lim.max_window_bytes == 0 || lim.max_window_bytes > sc->single_port_window)
            lim.max_window_bytes = sc->single_port_window;
        if (lim.max_blksize > sc->single_port_window)
            lim.max_blksize = (unsigned)sc->single_port_window;
    }
    if (tg_opt_negotiate(rc->op, rc->req, &lim, &s->neg, err) != 0)
        goto refuse;
    if (rc->op == TG_OP_WRQ && s->neg.tsize >= 0 && s->match.route->max_size >= 0 &&
        s->neg.tsize > s->match.route->max_size) {
        /* RFC 2349: a size the server cannot take is refused with ERROR 3. */
        tg_error_set(err, TG_TFTP_ENOSPACE, "file too large (limit %lld bytes)",
                     (long long)s->match.route->max_size);
        goto refuse;
    }
    be = find_backend(rt, s->match.route->backend);
    s->reqname = tg_strdup(rc->req->filename);
    if (!be || !s->reqname) {
        tg_error_set(err, TG_TFTP_EUNDEF, be ? "out of memory" : "route has no backend");
        goto refuse;
    }
    /* Window and staging buffers wait for the client's first answer
     * (start_window, deliver): an unanswered request costs this struct,
     * not a window (invariant 2). */
    if (rc->op == TG_OP_WRQ)
        tg_rx_init(&s->rx, s->neg.windowsize, sc->rollover);
    r = open_transport(s, rc);
    if (r != 0) {
        tg_log(TG_LOG_WARN, "session %s: no socket: %s", s->tp.peer_str, strerror(-r));
        tg_error_set(err, TG_TFTP_EUNDEF, "server cannot open a transfer socket");
        goto refuse;
    }
    if (!s->shared) {
        r = uv_poll_init_socket(rt->loop, &s->poll, s->tp.fd);
        if (r != 0) {
            tg_error_set(err, TG_TFTP_EUNDEF, "server cannot watch a transfer socket");
            goto refuse;
        }
        s->poll.data = s;
        s->open_handles++;
    }
    uv_timer_init(rt->loop, &s->timer);
    s->timer.data = s;
    s->open_handles++;
    set_reading(s, true);
    /* Until the client is heard from, the server's own interval: a spoofed
     * request asking timeout=255 must not hold a session for minutes. */
    s->rto_init = sc->timeout_ms;
    s->rto = s->rto_init;
    s->started_ms = uv_now(rt->loop);
    s->state = TG_SS_OPENING;
    memcpy(&s->reg.peer, rc->peer, tg_sockaddr_len(rc->peer));
    tg_sockaddr_ip(rc->peer, s->reg.ip, sizeof(s->reg.ip));
    s->reg.s = s;
    s->reg.ops = &reg_ops;
    s->reg.op = s->op;
    s->reg.reqname = s->reqname;
    s->reg.shared = s->shared;
    tg_registry_add(&rt->reg, &s->reg);
    tg_metrics_transfer_started(rc->op == TG_OP_RRQ ? "rrq" : "wrq", s->match.route->name);

    memset(&oa, 0, sizeof(oa));
    oa.key = s->match.key;
    oa.client_ip = s->reg.ip;
    oa.filename = s->path;
    oa.size_hint = rc->op == TG_OP_WRQ ? s->neg.tsize : -1;
    oa.overwrite = s->match.route->write == TG_WRITE_OVERWRITE;
    oa.blksize = s->neg.blksize;
    s->be_t0 = uv_hrtime();
    r = rc->op == TG_OP_RRQ
            ? be->ops->open_read(be, &oa, on_stream, s, &s->stream)
            : be->ops->open_write(be, &oa, on_stream, s, &s->stream);
    /* Straight into the window only when the window is the bigger buffer:
     * with a small one each block would wait for its own disk read, where
     * the stream's staging reads ahead (measured: lock-step got slower). */
    if (r == 0 && rc->op == TG_OP_RRQ && s->neg.mode == TG_MODE_OCTET &&
        s->stream->backend->ops->read_direct &&
        (size_t)s->neg.windowsize * s->neg.blksize >= DIRECT_MIN_WINDOW)
        s->direct = true;
    if (r != 0) {
        s->stream = NULL;
        fail(s, TG_TFTP_EUNDEF, "storage unavailable", true);
        return 0;
    }
    /* A storage that never answers must not pin the session. */
    arm(s, s->rto_init * (sc->retries + 2) > 5000 ? s->rto_init * (sc->retries + 2) : 5000);
    return 0;

refuse:
    session_free(s);
    return TG_EINVAL;
}

void tg_session_retransmit(struct tg_session *s)
{
    /* Client-driven, one answer per request: no amplification, no tries. */
    switch (s->state) {
    case TG_SS_NEGOTIATED:
        send_ctl(s);
        break;
    case TG_SS_TRANSFER:
        if (s->op == TG_OP_RRQ) {
            tg_win_rewind(&s->win);
            send_window(s);
        } else {
            send_ack(s);
        }
        break;
    default:
        break;
    }
}
