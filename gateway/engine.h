/* gateway/engine.h - the TFTP transfer engine: one transfer's protocol state
 * and every rule of RFC 1350, 2347, 2349 and 7440 the gateway keeps, free
 * of I/O. Owner: gateway/engine.c.
 *
 * The engine is driven by events (a packet from the client, an answer from
 * the backend stream, the timer, the server) through ONE function,
 * tg_eng_run(), and answers with actions for its caller to carry out: send
 * this, push that to the store, arm the timer, finish. It reads no clock
 * (time comes in as milliseconds), opens no socket, calls no backend, and
 * links without libuv, so tests/unit/test_engine.c drives it with packet
 * transcripts.
 *
 * Some actions have a result the caller reports back at once, as the next
 * event: FILL -> FILLED, SEND_DATA -> SENT, PUSH -> PUSHED (and COMMIT, if
 * commit() refuses at once, -> FAILED). The caller runs an action list in
 * order and stops after FINISH.
 *
 * A read (RRQ) fills the window ring e->tx.win: the engine says when
 * (FILL), the caller writes blocks into the ring with tg_win_fill_*() and
 * says how it went (FILLED). Which slots go out is the engine's
 * (SEND_DATA), their bytes the caller's to send. Nothing else of the
 * engine is written from outside.
 *
 *   read:  OPENING -> [OACK] -> SENDING <-> SOURCE_WAIT       -> DONE
 *   write: OPENING -> [OACK] -> RECEIVING <-> STORE_WAIT
 *                              RECEIVING -> COMMITTING -> DALLY -> DONE
 *   ([OACK] only when options were accepted; any state can end in DONE.)
 */
#ifndef TFTPGW_ENGINE_H
#define TFTPGW_ENGINE_H

#include "tftpgw/common.h"
#include "tftpgw/netascii.h"
#include "tftpgw/options.h"
#include "tftpgw/packet.h"
#include "tftpgw/window.h"

enum tg_eng_state {
    TG_ES_OPENING,     /* the backend is opening; the timer bounds the wait */
    TG_ES_OACK,        /* OACK sent: waiting for ACK 0 (read) or DATA 1 (write) */
    TG_ES_SENDING,     /* read: the window is filled and sent as ACKs free it */
    TG_ES_SOURCE_WAIT, /* read: the stream has no bytes yet (READABLE follows) */
    TG_ES_RECEIVING,   /* write: blocks are taken in order and ACKed */
    TG_ES_STORE_WAIT,  /* write: the stream could not take a block; it is held */
    TG_ES_COMMITTING,  /* write: the last block is in; waiting for COMMITTED */
    TG_ES_DALLY,       /* write: final ACK sent; a repeated last DATA is ACKed again */
    TG_ES_DONE
};

/* What the one timer means while it runs. */
enum tg_eng_timer {
    TG_TM_NONE,
    TG_TM_CLIENT,  /* the client's answer is due: retransmit or give up */
    TG_TM_STORAGE, /* the backend's answer is due: fail the transfer */
    TG_TM_PACING,  /* client_rate: the rest of the window may go */
    TG_TM_DALLY    /* the upload is done: stop waiting for a repeated last DATA */
};

/* How far the engine trusts the client's address (docs/security.md). */
enum tg_eng_peer {
    TG_PEER_SILENT, /* nothing came from its address:port yet */
    TG_PEER_HEARD,  /* something came, which a blind sender could have sent */
    TG_PEER_PROVEN  /* it showed that it receives what we send */
};

enum tg_eng_ev_kind {
    /* from the client (each also counts as hearing from it) */
    TG_EV_DATA,      /* block, data, len */
    TG_EV_ACK,       /* block */
    TG_EV_ERROR,     /* code, msg (made safe for a log line by the caller) */
    TG_EV_JUNK,      /* malformed, or an opcode this transfer does not take */
    /* from the listener */
    TG_EV_REQUEST,   /* the same request again before we heard from the client */
    /* from the backend stream */
    TG_EV_START,     /* the stream was asked to open */
    TG_EV_OPENED,    /* size: bytes, or -1 when unknown */
    TG_EV_READABLE,  /* the stream has bytes again: FILL follows */
    TG_EV_WRITABLE,
    TG_EV_COMMITTED,
    TG_EV_FAILED,    /* code, msg */
    /* from the timer */
    TG_EV_TIMEOUT,
    /* results of actions, reported at once */
    TG_EV_FILLED,    /* rc TG_FILL_*, n source bytes taken; code, msg on error */
    TG_EV_SENT,      /* n datagrams sent; wait_ms > 0: client_rate held the rest */
    TG_EV_PUSHED,    /* rc 0, TG_EAGAIN, or < 0 with code, msg */
    /* from the transport and the server */
    TG_EV_LOST,      /* single-port: datagrams were dropped while the store was busy */
    TG_EV_SUPERSEDE, /* a new request from the client's address:port */
    TG_EV_EVICT,     /* the server is full and this client never proved itself */
    TG_EV_SHUTDOWN,  /* the server drains */
    TG_EV_ABORT,     /* end now with ERROR 0 msg */
    TG_EV_DEAF       /* the transfer's socket failed: nothing can be sent any more */
};

/* FILLED's rc. */
enum {
    TG_FILL_OK,   /* the window is full, or the source ended (tg_win_fill_eof) */
    TG_FILL_WAIT, /* the stream owes READABLE */
    TG_FILL_ERROR /* code, msg */
};

struct tg_eng_ev {
    enum tg_eng_ev_kind kind;
    uint16_t block;
    const uint8_t *data;
    size_t len;
    uint16_t code;
    const char *msg;
    int64_t size;
    int rc;
    uint64_t n;
    unsigned wait_ms;
};

enum tg_eng_act_kind {
    TG_ACT_SEND_OACK,   /* the OACK for e->neg */
    TG_ACT_SEND_ACK,    /* block */
    TG_ACT_SEND_ERROR,  /* code, msg */
    TG_ACT_SEND_DATA,   /* window sequences first..last, in order; then SENT */
    TG_ACT_FILL,        /* fill e->tx.win from the stream; then FILLED */
    TG_ACT_PUSH,        /* data, len to the stream (len 0: none); wire: DATA bytes
                         * newly accepted, for the counters; then PUSHED */
    TG_ACT_COMMIT,      /* the last block is pushed; COMMITTED or FAILED follows */
    TG_ACT_CLOSE,       /* the stream is done with: close it */
    TG_ACT_ARM,         /* the timer: ms from now, meaning timer */
    TG_ACT_DISARM,
    TG_ACT_READ_ON,     /* take datagrams from the client again */
    TG_ACT_READ_OFF,    /* leave them where they are (the socket's buffer) */
    TG_ACT_LOG,         /* level TG_NOTE_*, msg: a line about the transfer */
    TG_ACT_FINISH       /* result; e->why says which error, if any */
};

enum { TG_NOTE_DEBUG, TG_NOTE_INFO };

struct tg_eng_act {
    enum tg_eng_act_kind kind;
    bool retx;            /* SEND_*: a retransmission the timer asked for */
    uint16_t block;
    uint16_t code;
    const char *msg;      /* SEND_ERROR, LOG: valid until the next tg_eng_run */
    uint64_t first, last;
    const uint8_t *data;
    size_t len, wire;
    unsigned ms;
    enum tg_eng_timer timer;
    int level;
    const char *result;
};

#define TG_ENG_ACTS 8
struct tg_eng_out {
    unsigned n;
    struct tg_eng_act a[TG_ENG_ACTS];
};

struct tg_eng_params {
    enum tg_opcode op;
    struct tg_negotiated neg; /* windowsize already fitted to the socket */
    bool shared;              /* on the single port: proof needs an ACK of data sent */
    unsigned rollover;        /* 0 or 1 */
    unsigned timeout_ms;      /* the server's interval */
    unsigned retries;
    int64_t max_size;         /* write: bytes the route takes; -1: no cap */
};

struct tg_eng {
    enum tg_opcode op;
    enum tg_eng_state state;
    struct tg_negotiated neg;
    bool shared;
    unsigned rollover, retries;
    int64_t max_size;
    enum tg_eng_peer peer;
    unsigned rto_init, rto, tries;
    enum tg_eng_timer timer;
    uint64_t deadline;         /* when the timer is due (ms), 0: not armed */
    uint64_t retransmits;
    uint64_t started_ms, ended_ms;
    const char *result;        /* set when DONE */
    struct tg_error why;
    char note[96];             /* the text of a LOG action */
    struct {                   /* sender (RRQ) */
        struct tg_win win;     /* allocated when the client first answers */
        uint64_t src_bytes;    /* bytes taken from the stream */
    } tx;
    struct {                   /* receiver (WRQ) */
        struct tg_rx rx;
        struct tg_na_dec na_dec;
        uint8_t *na_out;       /* netascii: decoded block (lazy) */
        uint8_t *hold;         /* the block the stream could not take (lazy) */
        size_t hold_len;
        const uint8_t *push;   /* PUSH in progress: the bytes, until PUSHED */
        size_t push_len;
        bool last, ack;        /* of the block being pushed or held */
        int64_t stored;        /* bytes pushed to the stream (after decoding) */
    } rx;
};

/* State OPENING at now_ms; nothing is allocated yet. */
void tg_eng_init(struct tg_eng *e, const struct tg_eng_params *p, uint64_t now_ms);
void tg_eng_free(struct tg_eng *e);
/* The dispatcher: switch on state, then on the event. out is reset. */
void tg_eng_run(struct tg_eng *e, const struct tg_eng_ev *ev, uint64_t now_ms,
                struct tg_eng_out *out);

bool tg_eng_heard(const struct tg_eng *e);
bool tg_eng_proven(const struct tg_eng *e);
/* Bytes of the file the client has: ACKed blocks (read) or stored (write). */
uint64_t tg_eng_bytes(const struct tg_eng *e);
const char *tg_eng_state_name(enum tg_eng_state st);

#endif
