/* include/tftpgw/window.h - pure block arithmetic and the sender's window ring.
 * Inside a session blocks are numbered by a 64-bit sequence (1, 2, ...); only
 * the wire carries 16 bits, wrapping after 65535 to 0 (rollover 0, the de
 * facto rule) or to 1 (rollover 1). */
#ifndef TFTPGW_WINDOW_H
#define TFTPGW_WINDOW_H

#include "tftpgw/common.h"

/* Largest windowsize the arithmetic below stays unambiguous for. */
#define TG_WINDOW_MAX 32768

uint16_t tg_blk_wire(uint64_t seq, unsigned rollover);

/* The sequence number in [lo, hi] whose wire number is `wire`: 0 and *seq
 * set, or TG_ERANGE when none is (hi - lo < 32768 keeps it unique). */
int tg_blk_resolve(uint16_t wire, uint64_t lo, uint64_t hi, unsigned rollover,
                   uint64_t *seq);

/* Sender ring: `size` slots of TG_HDR + blksize bytes, so a slot is a ready
 * DATA datagram. Sequence s lives in slot s % size. */
struct tg_win {
    unsigned size;
    size_t blksize;
    unsigned rollover;
    uint8_t *buf;       /* size * (TG_HDR + blksize) */
    size_t *len;        /* payload bytes per slot */
    uint64_t acked;     /* highest sequence ACKed (0: none yet) */
    uint64_t next_send; /* next sequence to transmit */
    uint64_t max_sent;  /* highest sequence ever transmitted (0: none) */
    uint64_t filled;    /* highest sequence whose slot is complete */
    size_t fill_off;    /* payload bytes in slot filled + 1 */
    uint64_t last;      /* sequence of the final (short) block, 0 until EOF */
};

int tg_win_init(struct tg_win *w, unsigned size, size_t blksize, unsigned rollover);
void tg_win_free(struct tg_win *w);
/* The slot being filled: where the next payload bytes go, and how many fit.
 * Returns NULL when the window is full (filled == acked + size) or at EOF. */
uint8_t *tg_win_fill_ptr(struct tg_win *w, size_t *room);
/* Account n bytes written at tg_win_fill_ptr; completes the slot when full. */
void tg_win_fill_commit(struct tg_win *w, size_t n);
/* End of the source: the partly filled slot (perhaps empty) becomes the last.
 * Only call it while tg_win_fill_ptr() returns a slot. */
void tg_win_fill_eof(struct tg_win *w);
/* Payload of the slot of sequence seq (for reads straight into slots). */
uint8_t *tg_win_payload(struct tg_win *w, uint64_t seq);
/* The datagram for sequence seq (header written), and its length. */
const uint8_t *tg_win_datagram(struct tg_win *w, uint64_t seq, size_t *len);
/* ACK handling (RFC 7440 4, RFC 1123 4.2.3.1): returns the number of blocks
 * newly ACKed; 0 for a duplicate or stale ACK, which must be ignored; and
 * TG_WIN_UNSENT for an ACK of a block never sent, which only a blind sender
 * produces. An ACK inside the sent range moves next_send after it. */
#define TG_WIN_UNSENT (-1)
int tg_win_ack(struct tg_win *w, uint16_t wire);
/* Timeout: resend from the block after the last ACK (RFC 7440 4). */
void tg_win_rewind(struct tg_win *w);
/* A sequence ready to send now, or 0: next_send when it is filled and inside
 * acked + size. The caller sends it and calls tg_win_sent. */
uint64_t tg_win_sendable(const struct tg_win *w);
void tg_win_sent(struct tg_win *w);
bool tg_win_done(const struct tg_win *w); /* the last block is ACKed */

/* Receiver side (WRQ): what to do with an arriving DATA block. */
enum tg_rx_action {
    TG_RX_ACCEPT,  /* in order: store it; `ack` says whether to ACK now */
    TG_RX_DUP,     /* already have it: re-ACK the last in-order block */
    TG_RX_GAP,     /* out of order: ACK the last in-order block if `ack` */
    TG_RX_IGNORE   /* nothing to do */
};
struct tg_rx {
    unsigned windowsize;
    unsigned rollover;
    uint64_t received;  /* last in-order sequence received (0: none) */
    unsigned since_ack; /* in-order blocks since the last ACK we sent */
    bool gap_acked;     /* a gap ACK was sent and nothing in order came since */
    unsigned dups;      /* duplicates since the last in-order block */
};
void tg_rx_init(struct tg_rx *r, unsigned windowsize, unsigned rollover);
/* `last` says the block is shorter than blksize (end of transfer): it is
 * always ACKed. RFC 7440 section 4: the last block of each window is ACKed,
 * and on a gap the last in-order block, once. Duplicates: docs/protocol.md,
 * Duplicate DATA. */
enum tg_rx_action tg_rx_on_data(struct tg_rx *r, uint16_t wire, bool last,
                                bool *ack);
/* Block number to put in an ACK now. */
uint16_t tg_rx_ack_wire(const struct tg_rx *r);

#endif
