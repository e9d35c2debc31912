/* gateway/window.c - block numbering across rollover, the sender's ring and
 * the receiver's ACK policy. Pure: no I/O, so every rule is unit-tested. */
#include <string.h>

#include "tftpgw/packet.h"
#include "tftpgw/window.h"

#define WIRE_SPAN 65535u /* numbers a rollover-1 sequence cycles through */

uint16_t tg_blk_wire(uint64_t seq, unsigned rollover)
{
    if (rollover == 0)
        return (uint16_t)(seq & 0xffffu);
    /* Wrap to 1: 0 names only the OACK/ACK-0 exchange before block 1. */
    if (seq == 0)
        return 0;
    return (uint16_t)(((seq - 1) % WIRE_SPAN) + 1);
}

int tg_blk_resolve(uint16_t wire, uint64_t lo, uint64_t hi, unsigned rollover,
                   uint64_t *seq)
{
    uint64_t s;

    if (lo > hi)
        return TG_ERANGE;
    if (rollover == 0) {
        /* RFC 1350 numbers are mod 2^16: distance forward from lo. */
        s = lo + (uint16_t)(wire - tg_blk_wire(lo, 0));
    } else {
        uint16_t base;

        if (wire == 0) {
            if (lo != 0)
                return TG_ERANGE;
            *seq = 0;
            return 0;
        }
        if (lo == 0)
            lo = 1;
        if (lo > hi)
            return TG_ERANGE;
        base = tg_blk_wire(lo, 1);
        s = lo + ((uint64_t)wire + WIRE_SPAN - base) % WIRE_SPAN;
    }
    if (s > hi)
        return TG_ERANGE;
    *seq = s;
    return 0;
}

static uint8_t *slot(const struct tg_win *w, uint64_t seq)
{
    return w->buf + (size_t)(seq % w->size) * (TG_HDR + w->blksize);
}

int tg_win_init(struct tg_win *w, unsigned size, size_t blksize, unsigned rollover)
{
    memset(w, 0, sizeof(*w));
    if (size == 0 || size > TG_WINDOW_MAX || blksize == 0)
        return TG_EINVAL;
    w->buf = tg_malloc((size_t)size * (TG_HDR + blksize));
    w->len = tg_calloc(size, sizeof(*w->len));
    if (!w->buf || !w->len) {
        tg_win_free(w);
        return TG_ENOMEM;
    }
    w->size = size;
    w->blksize = blksize;
    w->rollover = rollover;
    w->next_send = 1;
    return 0;
}

void tg_win_free(struct tg_win *w)
{
    tg_free(w->buf);
    tg_free(w->len);
    w->buf = NULL;
    w->len = NULL;
}

uint8_t *tg_win_fill_ptr(struct tg_win *w, size_t *room)
{
    uint64_t seq = w->filled + 1;

    if (w->last != 0 || seq > w->acked + w->size)
        return NULL;
    *room = w->blksize - w->fill_off;
    return slot(w, seq) + TG_HDR + w->fill_off;
}

void tg_win_fill_commit(struct tg_win *w, size_t n)
{
    w->fill_off += n;
    /* A full block is never the last one (RFC 1350 section 6: only a short
     * block ends a transfer), so it can go out now. */
    if (w->fill_off == w->blksize) {
        w->filled++;
        w->len[w->filled % w->size] = w->blksize;
        w->fill_off = 0;
    }
}

void tg_win_fill_eof(struct tg_win *w)
{
    uint64_t seq = w->filled + 1;

    if (w->last != 0)
        return;
    /* The short block, or an empty one when the size is a multiple of
     * blksize (RFC 1350 section 5; docs/protocol.md, The final empty
     * block). */
    w->len[seq % w->size] = w->fill_off;
    w->filled = seq;
    w->last = seq;
    w->fill_off = 0;
}

uint8_t *tg_win_payload(struct tg_win *w, uint64_t seq)
{
    return slot(w, seq) + TG_HDR;
}

const uint8_t *tg_win_datagram(struct tg_win *w, uint64_t seq, size_t *len)
{
    uint8_t *p = slot(w, seq);

    tg_pkt_build_data_hdr(p, TG_HDR, tg_blk_wire(seq, w->rollover));
    *len = TG_HDR + w->len[seq % w->size];
    return p;
}

int tg_win_ack(struct tg_win *w, uint16_t wire)
{
    uint64_t s;
    unsigned n;

    if (tg_blk_resolve(wire, w->acked, w->max_sent, w->rollover, &s) != 0) {
        /* Ahead of everything sent, within half the number space: no real
         * client can acknowledge a block it never received, but a blind
         * ACK stream does. Further off it is an old, stale number. */
        if (w->acked + (WIRE_SPAN / 2) > w->max_sent &&
            tg_blk_resolve(wire, w->max_sent + 1, w->acked + WIRE_SPAN / 2, w->rollover, &s) == 0)
            return TG_WIN_UNSENT;
        return 0;
    }
    if (s == w->acked)
        return 0; /* duplicate: never a reason to resend (RFC 1123 4.2.3.1) */
    n = (unsigned)(s - w->acked);
    w->acked = s;
    /* RFC 7440 4: the next window starts after the ACKed block, so blocks
     * sent after it are sent again. */
    w->next_send = s + 1;
    return (int)n;
}

void tg_win_rewind(struct tg_win *w)
{
    w->next_send = w->acked + 1;
}

uint64_t tg_win_sendable(const struct tg_win *w)
{
    uint64_t s = w->next_send;

    if (s > w->filled || s > w->acked + w->size)
        return 0;
    return s;
}

void tg_win_sent(struct tg_win *w)
{
    if (w->next_send > w->max_sent)
        w->max_sent = w->next_send;
    w->next_send++;
}

bool tg_win_done(const struct tg_win *w)
{
    return w->last != 0 && w->acked >= w->last;
}

void tg_rx_init(struct tg_rx *r, unsigned windowsize, unsigned rollover)
{
    memset(r, 0, sizeof(*r));
    r->windowsize = windowsize ? windowsize : 1;
    r->rollover = rollover;
}

enum tg_rx_action tg_rx_on_data(struct tg_rx *r, uint16_t wire, bool last,
                                bool *ack)
{
    uint64_t lo, s;

    *ack = false;
    if (wire == tg_blk_wire(r->received + 1, r->rollover)) {
        r->received++;
        r->since_ack++;
        r->gap_acked = false;
        r->dups = 0;
        /* RFC 7440 section 4: ACK the last block of each window and the
         * short final block, which RFC 1350 section 6 ACKs like any other. */
        if (last || r->since_ack >= r->windowsize) {
            *ack = true;
            r->since_ack = 0;
        }
        return TG_RX_ACCEPT;
    }
    lo = r->received > 2u * r->windowsize ? r->received - 2u * r->windowsize : 1;
    if (r->received > 0 &&
        tg_blk_resolve(wire, lo, r->received, r->rollover, &s) == 0) {
        /* Our ACK was probably lost: say it again (RFC 1350 section 6; safe
         * because senders ignore duplicate ACKs, RFC 1123 4.2.3.1), once per
         * window's worth of duplicates, i.e. once per retransmission round
         * of the sender. Answering only the first duplicate stalls a
         * transfer whose re-ACK is lost too; answering each one makes
         * windowed senders that restart on every ACK (atftp) storm.
         * Lock-step and the final block: every time (RFC 1350 section 6).
         * docs/protocol.md, Duplicate DATA. */
        r->dups++;
        if (last || (r->dups - 1) % r->windowsize == 0) {
            *ack = true;
            r->since_ack = 0;
        }
        return TG_RX_DUP;
    }
    /* Out of order: report the last in-order block, once (RFC 7440
     * section 4). */
    if (!r->gap_acked) {
        *ack = true;
        r->gap_acked = true;
        r->since_ack = 0;
    }
    return TG_RX_GAP;
}

uint16_t tg_rx_ack_wire(const struct tg_rx *r)
{
    return tg_blk_wire(r->received, r->rollover);
}
