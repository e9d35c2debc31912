/* tests/unit/test_engine.c - the transfer engine (gateway/engine.c) driven
 * by packet transcripts: no socket, no loop, no clock. Each step feeds one
 * event and compares every action it caused, in order, as a line such as
 *
 *   "FILL | DATA 1..4 | ARM client 1000"
 *
 * The fixture plays the glue's part (gateway/session.c): it fills the
 * window from a byte array, "sends" window blocks (checking their bytes),
 * takes pushed blocks into a store, and reports each result back at once.
 * This test links without libuv (see the Makefile). It is one file over
 * 900 lines because each case is a transcript read top to bottom. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "../../gateway/engine.h"

#define SRC_MAX (8 * 65560)
#define STORE_MAX 8192

static uint8_t pattern[SRC_MAX];

struct fx {
    struct tg_eng e;
    uint64_t now;
    char line[4096];
    /* read: the stream's bytes; avail of them can be pulled now */
    size_t src_len, avail, off;
    int fill_error;            /* next FILL fails with this TFTP code + 1 */
    unsigned pace_after;       /* SEND_DATA: datagrams before client_rate holds (0: none) */
    uint64_t last_sent;        /* highest sequence sent */
    /* write: what was pushed, and the next push's answer */
    uint8_t store[STORE_MAX];
    size_t stored;
    int push_rc;
};

static void add(struct fx *f, const char *fmt, ...) TG_PRINTF(2, 3);

static void add(struct fx *f, const char *fmt, ...)
{
    size_t n = strlen(f->line);
    va_list ap;

    if (n)
        n += (size_t)snprintf(f->line + n, sizeof(f->line) - n, " | ");
    va_start(ap, fmt);
    vsnprintf(f->line + n, sizeof(f->line) - n, fmt, ap);
    va_end(ap);
}

/* Appends to the last action's text. */
static void more(struct fx *f, const char *fmt, ...) TG_PRINTF(2, 3);

static void more(struct fx *f, const char *fmt, ...)
{
    size_t n = strlen(f->line);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->line + n, sizeof(f->line) - n, fmt, ap);
    va_end(ap);
}

static void feed(struct fx *f, const struct tg_eng_ev *ev);

/* The glue's octet fill: pull what is available into the ring. */
static void do_fill(struct fx *f)
{
    struct tg_eng_ev ev = {.kind = TG_EV_FILLED, .rc = TG_FILL_OK};
    struct tg_win *w = &f->e.tx.win;
    uint8_t *p;
    size_t room;

    if (f->fill_error) {
        ev.rc = TG_FILL_ERROR;
        ev.code = (uint16_t)(f->fill_error - 1);
        ev.msg = "disk read error";
        f->fill_error = 0;
        feed(f, &ev);
        return;
    }
    while ((p = tg_win_fill_ptr(w, &room)) != NULL) {
        size_t n = f->avail - f->off < room ? f->avail - f->off : room;

        if (n == 0) {
            if (f->off == f->src_len)
                tg_win_fill_eof(w);
            else
                ev.rc = TG_FILL_WAIT;
            break;
        }
        memcpy(p, pattern + f->off, n);
        f->off += n;
        ev.n += n;
        tg_win_fill_commit(w, n);
    }
    feed(f, &ev);
}

/* The glue's send: every block's bytes are the file's at its offset. */
static void do_send(struct fx *f, const struct tg_eng_act *a)
{
    struct tg_eng_ev ev = {.kind = TG_EV_SENT};
    struct tg_win *w = &f->e.tx.win;
    size_t len = 0;
    uint64_t seq;

    for (seq = a->first; seq <= a->last; seq++) {
        const uint8_t *d;

        if (f->pace_after && ev.n == f->pace_after) {
            ev.wait_ms = 50;
            break;
        }
        d = tg_win_datagram(w, seq, &len);
        assert_int_equal(d[1], 3);
        assert_int_equal((d[2] << 8) | d[3], tg_blk_wire(seq, w->rollover));
        assert_memory_equal(d + 4, pattern + (seq - 1) * w->blksize, len - 4);
        if (seq > f->last_sent)
            f->last_sent = seq;
        ev.n++;
    }
    seq = a->first + ev.n - 1;
    if (ev.n == 1)
        add(f, "DATA %u", tg_blk_wire(seq, w->rollover));
    else
        add(f, "DATA %u..%u", tg_blk_wire(a->first, w->rollover), tg_blk_wire(seq, w->rollover));
    if (len - 4 < w->blksize)
        more(f, "/%zu", len - 4); /* the short final block and its size */
    if (a->retx)
        more(f, " (retx)");
    feed(f, &ev);
}

static void do_push(struct fx *f, const struct tg_eng_act *a)
{
    struct tg_eng_ev ev = {.kind = TG_EV_PUSHED, .rc = f->push_rc};

    add(f, "PUSH %zu", a->len);
    f->push_rc = 0;
    if (ev.rc == 0 && f->stored + a->len <= STORE_MAX) {
        memcpy(f->store + f->stored, a->data, a->len);
        f->stored += a->len;
    } else if (ev.rc < 0 && ev.rc != TG_EAGAIN) {
        ev.code = 3;
        ev.msg = "disk full";
    }
    feed(f, &ev);
}

static const char *timer_name(enum tg_eng_timer t)
{
    static const char *const names[] = {"none", "client", "storage", "pacing", "dally"};

    return names[t];
}

static void act(struct fx *f, const struct tg_eng_act *a)
{
    const char *retx = a->retx ? " (retx)" : "";

    switch (a->kind) {
    case TG_ACT_SEND_OACK: add(f, "OACK%s", retx); return;
    case TG_ACT_SEND_ACK: add(f, "ACK %u%s", a->block, retx); return;
    case TG_ACT_SEND_ERROR: add(f, "ERROR %u \"%s\"", a->code, a->msg); return;
    case TG_ACT_SEND_DATA: do_send(f, a); return;
    case TG_ACT_FILL: add(f, "FILL"); do_fill(f); return;
    case TG_ACT_PUSH: do_push(f, a); return;
    case TG_ACT_COMMIT: add(f, "COMMIT"); return;
    case TG_ACT_CLOSE: add(f, "CLOSE"); return;
    case TG_ACT_ARM: add(f, "ARM %s %u", timer_name(a->timer), a->ms); return;
    case TG_ACT_DISARM: add(f, "DISARM"); return;
    case TG_ACT_READ_ON: add(f, "READ_ON"); return;
    case TG_ACT_READ_OFF: add(f, "READ_OFF"); return;
    case TG_ACT_LOG: add(f, "LOG \"%s\"", a->msg); return;
    case TG_ACT_FINISH: add(f, "FINISH %s", a->result); return;
    }
}

static void feed(struct fx *f, const struct tg_eng_ev *ev)
{
    struct tg_eng_out out;

    tg_eng_run(&f->e, ev, f->now, &out);
    for (unsigned i = 0; i < out.n; i++) {
        act(f, &out.a[i]);
        if (out.a[i].kind == TG_ACT_FINISH)
            assert_int_equal(i, out.n - 1); /* nothing after FINISH */
    }
}

/* One event; the transcript of everything it caused. */
static const char *step(struct fx *f, struct tg_eng_ev ev)
{
    f->line[0] = '\0';
    feed(f, &ev);
    return f->line;
}

#define STEP(f, ev, want) assert_string_equal(step(f, ev), want)

static struct tg_eng_ev ev_of(enum tg_eng_ev_kind k)
{
    return (struct tg_eng_ev){.kind = k};
}

static struct tg_eng_ev ack(uint16_t block)
{
    return (struct tg_eng_ev){.kind = TG_EV_ACK, .block = block};
}

/* DATA block carrying len bytes of the pattern from offset off. */
static struct tg_eng_ev data_at(uint16_t block, size_t off, size_t len)
{
    return (struct tg_eng_ev){.kind = TG_EV_DATA, .block = block, .data = pattern + off,
                              .len = len};
}

static struct tg_eng_ev data(uint16_t block, size_t len)
{
    return data_at(block, (size_t)(block - 1) * 512, len);
}

static struct tg_eng_ev error(uint16_t code, const char *msg)
{
    return (struct tg_eng_ev){.kind = TG_EV_ERROR, .code = code, .msg = msg};
}

static struct tg_eng_ev failed(uint16_t code, const char *msg)
{
    return (struct tg_eng_ev){.kind = TG_EV_FAILED, .code = code, .msg = msg};
}

static struct tg_eng_ev opened(int64_t size)
{
    return (struct tg_eng_ev){.kind = TG_EV_OPENED, .size = size};
}

/* A transfer as the session starts it: server timeout 1000 ms, 5 retries.
 * opts: TG_OPT_* bits the request carried and the negotiation accepted. */
struct setup {
    enum tg_opcode op;
    unsigned blksize, windowsize, timeout_s, rollover;
    unsigned opts;
    bool shared, netascii;
    int64_t tsize, max_size;
    size_t file;
};

static void begin(struct fx *f, struct setup s)
{
    struct tg_eng_params p;

    memset(f, 0, sizeof(*f));
    memset(&p, 0, sizeof(p));
    p.op = s.op;
    p.neg.op = s.op;
    p.neg.mode = s.netascii ? TG_MODE_NETASCII : TG_MODE_OCTET;
    p.neg.accepted = s.opts;
    p.neg.blksize = s.blksize ? s.blksize : 512;
    p.neg.windowsize = s.windowsize ? s.windowsize : 1;
    p.neg.timeout_s = s.timeout_s;
    p.neg.tsize = (s.opts & TG_OPT_TSIZE) ? s.tsize : -1;
    p.shared = s.shared;
    p.rollover = s.rollover;
    p.timeout_ms = 1000;
    p.retries = 5;
    p.max_size = s.max_size ? s.max_size : -1;
    tg_eng_init(&f->e, &p, 0);
    f->src_len = f->avail = s.file;
}

static void teardown_fx(struct fx *f)
{
    tg_eng_free(&f->e);
}

static struct fx F; /* large: not on cmocka's stack */

/* ---- reads ---- */

static void test_rrq_lockstep(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 1300});
    STEP(f, ev_of(TG_EV_START), "ARM storage 7000");
    /* No options: no OACK, DATA 1 is the answer (RFC 1350 4). */
    STEP(f, opened(1300), "FILL | DATA 1 | ARM client 1000");
    STEP(f, ack(1), "FILL | DATA 2 | ARM client 1000");
    STEP(f, ack(2), "FILL | DATA 3/276 | ARM client 1000");
    STEP(f, ack(3), "FINISH ok");
    assert_string_equal(f->e.result, "ok");
    assert_int_equal(tg_eng_bytes(&f->e), 1300);
    assert_int_equal(f->e.retransmits, 0);
    teardown_fx(f);
}

static void test_rrq_windowed(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .file = 512 * 6 + 10,
                            .opts = TG_OPT_WINDOWSIZE | TG_OPT_TSIZE, .tsize = 0});
    STEP(f, ev_of(TG_EV_START), "ARM storage 7000");
    STEP(f, opened(512 * 6 + 10), "OACK | ARM client 1000");
    assert_int_equal(f->e.neg.tsize, 512 * 6 + 10); /* the stream's size goes into the OACK */
    /* The window ring waits for the client's first answer. */
    assert_null(f->e.tx.win.buf);
    STEP(f, ack(0), "FILL | DATA 1..4 | ARM client 1000");
    assert_non_null(f->e.tx.win.buf);
    STEP(f, ack(4), "FILL | DATA 5..7/10 | ARM client 1000");
    STEP(f, ack(7), "FINISH ok");
    assert_int_equal(tg_eng_bytes(&f->e), 512 * 6 + 10);
    teardown_fx(f);
}

/* A size that is a multiple of blksize ends with an empty block (RFC 1350 6). */
static void test_rrq_final_empty_block(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .file = 1024});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(1024), "OACK | ARM client 1000");
    STEP(f, ack(0), "FILL | DATA 1..3/0 | ARM client 1000");
    STEP(f, ack(2), "FILL | DATA 3/0 | ARM client 1000");
    STEP(f, ack(3), "FINISH ok");
    assert_int_equal(tg_eng_bytes(&f->e), 1024);
    teardown_fx(f);
}

/* Duplicate ACKs never cause a resend (RFC 1123 4.2.3.1: the Sorcerer's
 * Apprentice); an ACK inside the window resends after it (RFC 7440 4). */
static void test_rrq_duplicate_and_inner_acks(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 512 * 20});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(512 * 20), "FILL | DATA 1 | ARM client 1000");
    STEP(f, ack(1), "FILL | DATA 2 | ARM client 1000");
    STEP(f, ack(1), "");
    STEP(f, ack(1), "");
    STEP(f, ack(0), "");
    STEP(f, ack(2), "FILL | DATA 3 | ARM client 1000");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .file = 512 * 20});
    step(f, ev_of(TG_EV_START));
    step(f, opened(512 * 20));
    STEP(f, ack(0), "FILL | DATA 1..4 | ARM client 1000");
    STEP(f, ack(2), "FILL | DATA 3..6 | ARM client 1000");
    STEP(f, ack(2), "");
    STEP(f, ack(6), "FILL | DATA 7..10 | ARM client 1000");
    STEP(f, ack(5), ""); /* older than the last ACK: stale */
    teardown_fx(f);
}

static void drive_to_end(struct fx *f, unsigned rollover, uint64_t boundary_window,
                         const char *want_at, const char *want_after)
{
    uint64_t windows = 0;

    for (;;) {
        const char *line = step(f, ack(tg_blk_wire(f->last_sent, rollover)));

        windows++;
        if (windows == boundary_window)
            assert_string_equal(line, want_at);
        if (windows == boundary_window + 1)
            assert_string_equal(line, want_after);
        if (strcmp(line, "FINISH ok") == 0)
            break;
        assert_true(windows < 5000);
    }
}

/* Past block 65535 the wire number goes on at 0 (the default) or at 1
 * (rollover = 1); inside the engine sequences go on counting. */
static void test_rrq_rollover(void **state)
{
    struct fx *f = &F;
    size_t file = 8 * 65550 + 3;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .blksize = 8, .windowsize = 16,
                            .opts = TG_OPT_BLKSIZE | TG_OPT_WINDOWSIZE, .file = file});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened((int64_t)file), "OACK | ARM client 1000");
    STEP(f, ack(0), "FILL | DATA 1..16 | ARM client 1000");
    /* Window 4096 holds sequences 65521..65536. */
    drive_to_end(f, 0, 4095, "FILL | DATA 65521..0 | ARM client 1000",
                 "FILL | DATA 1..15/3 | ARM client 1000");
    assert_int_equal(tg_eng_bytes(&f->e), file);
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .blksize = 8, .windowsize = 16, .rollover = 1,
                            .opts = TG_OPT_BLKSIZE | TG_OPT_WINDOWSIZE, .file = file});
    step(f, ev_of(TG_EV_START));
    step(f, opened((int64_t)file));
    step(f, ack(0));
    drive_to_end(f, 1, 4095, "FILL | DATA 65521..1 | ARM client 1000",
                 "FILL | DATA 2..16/3 | ARM client 1000");
    assert_int_equal(tg_eng_bytes(&f->e), file);
    teardown_fx(f);
}

/* The stream has nothing yet: what is filled goes out, the rest waits for
 * READABLE; with nothing in flight the timer waits on the storage. */
static void test_rrq_source_wait(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .file = 4096});
    f->avail = 1024;
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    STEP(f, ack(0), "FILL | DATA 1..2 | ARM client 1000");
    assert_int_equal(f->e.state, TG_ES_SOURCE_WAIT);
    STEP(f, ack(2), "ARM storage 7000");
    f->avail = 4096;
    STEP(f, ev_of(TG_EV_READABLE), "FILL | DATA 3..6 | ARM client 1000");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    f->avail = 0;
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(4096), "FILL | ARM storage 7000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "ERROR 0 \"storage did not answer in time\" | FINISH error");
    teardown_fx(f);
}

/* client_rate holds the rest of a window: the pacing timer sends it. */
static void test_rrq_pacing(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .file = 8192});
    step(f, ev_of(TG_EV_START));
    step(f, opened(8192));
    f->pace_after = 3;
    STEP(f, ack(0), "FILL | DATA 1..3 | ARM pacing 50");
    f->pace_after = 0;
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 4 | ARM client 1000");
    teardown_fx(f);
}

/* ---- timeouts: proven and unproven budgets (docs/security.md) ---- */

static void test_timeout_unproven(void **state)
{
    struct fx *f = &F;

    (void)state;
    /* Single port, never answered: one retransmission, one more doubled
     * interval of listening, then the end; 7 intervals in all. */
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 8, .opts = TG_OPT_WINDOWSIZE,
                            .shared = true, .file = 8192});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(8192), "OACK | ARM client 1000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "OACK (retx) | ARM client 2000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "ARM client 4000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "FINISH timeout");
    assert_int_equal(f->e.retransmits, 1);
    teardown_fx(f);

    /* A blind ACK 0 on the single port is no proof: it restores nothing. */
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 8, .opts = TG_OPT_WINDOWSIZE,
                            .shared = true, .file = 512 * 40});
    step(f, ev_of(TG_EV_START));
    step(f, opened(512 * 40));
    STEP(f, ev_of(TG_EV_TIMEOUT), "OACK (retx) | ARM client 2000");
    STEP(f, ack(0), "FILL | DATA 1..8 | ARM client 2000");
    assert_false(tg_eng_proven(&f->e));
    STEP(f, ev_of(TG_EV_TIMEOUT), "ARM client 4000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "FINISH timeout");
    teardown_fx(f);
}

static void test_timeout_proven(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 512 * 10});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(512 * 10), "FILL | DATA 1 | ARM client 1000");
    /* Any packet on the transfer's own port is proof: the full budget of 5
     * retransmissions, the interval doubling up to 16 s. */
    STEP(f, ack(1), "FILL | DATA 2 | ARM client 1000");
    assert_true(tg_eng_proven(&f->e));
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 2 (retx) | ARM client 2000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 2 (retx) | ARM client 4000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 2 (retx) | ARM client 8000");
    /* Progress restores the first interval and the budget. */
    STEP(f, ack(2), "FILL | DATA 3 | ARM client 1000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 3 (retx) | ARM client 2000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 3 (retx) | ARM client 4000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 3 (retx) | ARM client 8000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 3 (retx) | ARM client 16000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "DATA 3 (retx) | ARM client 16000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "FINISH timeout");
    assert_int_equal(f->e.retransmits, 8);
    teardown_fx(f);
}

/* The client's timeout option (RFC 2349) applies once it is proven only. */
static void test_timeout_option(void **state)
{
    struct fx *f = &F;
    struct setup s = {.op = TG_OP_RRQ, .windowsize = 4, .timeout_s = 3, .shared = true,
                      .opts = TG_OPT_WINDOWSIZE | TG_OPT_TIMEOUT, .file = 512 * 40};

    (void)state;
    begin(f, s);
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(512 * 40), "OACK | ARM client 1000");
    STEP(f, ack(0), "FILL | DATA 1..4 | ARM client 1000");
    STEP(f, ack(1), "FILL | DATA 2..5 | ARM client 3000");
    assert_true(tg_eng_proven(&f->e));
    teardown_fx(f);

    s.shared = false; /* own port: ACK 0 is proof */
    begin(f, s);
    step(f, ev_of(TG_EV_START));
    step(f, opened(512 * 40));
    STEP(f, ack(0), "FILL | DATA 1..4 | ARM client 3000");
    teardown_fx(f);
}

/* Everything sent, only the final ACK missing: the client may well have
 * it all. */
static void test_timeout_unconfirmed(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .file = 1000});
    step(f, ev_of(TG_EV_START));
    step(f, opened(1000));
    STEP(f, ack(0), "FILL | DATA 1..2/488 | ARM client 1000");
    for (int i = 0; i < 5; i++)
        step(f, ev_of(TG_EV_TIMEOUT));
    STEP(f, ev_of(TG_EV_TIMEOUT), "FINISH unconfirmed");
    teardown_fx(f);
}

/* ---- hostile networks: the single-port proof rule, unsent ACKs ---- */

static void test_single_port_proof(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .shared = true, .file = 512 * 40});
    step(f, ev_of(TG_EV_START));
    step(f, opened(512 * 40));
    STEP(f, ack(0), "FILL | DATA 1..4 | ARM client 1000");
    assert_true(tg_eng_heard(&f->e));
    assert_false(tg_eng_proven(&f->e));
    /* An ACK for a block actually sent is what a blind sender cannot know. */
    STEP(f, ack(4), "FILL | DATA 5..8 | ARM client 1000");
    assert_true(tg_eng_proven(&f->e));
    teardown_fx(f);

    /* A write on the shared port makes us send only ACKs: heard is enough. */
    begin(f, (struct setup){.op = TG_OP_WRQ, .shared = true});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    step(f, data(1, 512));
    assert_true(tg_eng_proven(&f->e));
    teardown_fx(f);
}

static void test_unsent_ack(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 8, .opts = TG_OPT_WINDOWSIZE,
                            .shared = true, .file = 512 * 40});
    step(f, ev_of(TG_EV_START));
    step(f, opened(512 * 40));
    STEP(f, ack(0), "FILL | DATA 1..8 | ARM client 1000");
    STEP(f, ack(9), "LOG \"ACK 9 for a block not sent yet; ending the transfer\" | "
                    "ERROR 4 \"ACK for a block not sent\" | FINISH error");
    teardown_fx(f);

    /* While the OACK is outstanding only ACK 0 confirms it (RFC 2347). */
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 8, .opts = TG_OPT_WINDOWSIZE,
                            .file = 512 * 40});
    step(f, ev_of(TG_EV_START));
    step(f, opened(512 * 40));
    STEP(f, ack(1), "LOG \"ACK 1 for a block not sent yet; ending the transfer\" | "
                    "ERROR 4 \"ACK for a block not sent\" | FINISH error");
    assert_null(f->e.tx.win.buf);
    teardown_fx(f);
}

/* A repeated request before we heard from the client: one answer each. */
static void test_repeated_request(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE,
                            .file = 4096});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(4096), "OACK | ARM client 1000");
    STEP(f, ev_of(TG_EV_REQUEST), "OACK");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(4096), "FILL | DATA 1 | ARM client 1000");
    STEP(f, ev_of(TG_EV_REQUEST), "DATA 1"); /* the running timer keeps its deadline */
    assert_int_equal(f->e.retransmits, 0);
    teardown_fx(f);
}

/* ---- the client's ERROR ---- */

static void test_client_error(void **state)
{
    struct fx *f = &F;

    (void)state;
    /* UEFI's tsize probe: ERROR 8 after the OACK. */
    begin(f, (struct setup){.op = TG_OP_RRQ, .opts = TG_OPT_TSIZE, .file = 4096});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(4096), "OACK | ARM client 1000");
    STEP(f, error(8, "tsize only"), "FINISH declined");
    assert_string_equal(f->e.why.msg, "client: tsize only");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    step(f, ack(1));
    STEP(f, error(0, "user cancelled"), "FINISH aborted");
    assert_int_equal(f->e.why.code, 0);
    teardown_fx(f);
}

/* ---- the backend failing ---- */

static void test_backend_failure(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    STEP(f, failed(1, "file not found"), "ERROR 1 \"file not found\" | FINISH error");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    STEP(f, ev_of(TG_EV_START), "ARM storage 7000");
    STEP(f, ev_of(TG_EV_TIMEOUT), "ERROR 0 \"storage did not answer in time\" | FINISH error");
    teardown_fx(f);

    /* Mid-stream: a read fails, or the stream reports a failure. */
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    f->fill_error = 1;
    STEP(f, ack(1), "FILL | ERROR 0 \"disk read error\" | FINISH error");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    STEP(f, failed(0, "upstream reset"), "ERROR 0 \"upstream reset\" | FINISH error");
    teardown_fx(f);

    /* The file changed under us: more bytes than the OACK's tsize. */
    begin(f, (struct setup){.op = TG_OP_RRQ, .windowsize = 4,
                            .opts = TG_OPT_WINDOWSIZE | TG_OPT_TSIZE, .file = 4096});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(1000), "OACK | ARM client 1000");
    STEP(f, ack(0), "FILL | ERROR 0 \"file changed during transfer\" | FINISH error");
    teardown_fx(f);
}

/* ---- writes ---- */

static void test_wrq_lockstep(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_WRQ});
    STEP(f, ev_of(TG_EV_START), "ARM storage 7000");
    STEP(f, opened(-1), "ACK 0 | ARM client 1000");
    STEP(f, data(1, 512), "PUSH 512 | ACK 1 | ARM client 1000");
    STEP(f, data(1, 512), "ACK 1"); /* a duplicate: our ACK was lost, say it again */
    STEP(f, data(2, 512), "PUSH 512 | ACK 2 | ARM client 1000");
    /* The final ACK only after the store committed. */
    STEP(f, data(3, 100), "PUSH 100 | ARM storage 7000 | COMMIT");
    STEP(f, data(3, 100), "");
    STEP(f, ev_of(TG_EV_COMMITTED), "CLOSE | ACK 3 | ARM dally 3000");
    STEP(f, data(3, 100), "ACK 3"); /* dally: a lost final ACK is repeated */
    STEP(f, ev_of(TG_EV_TIMEOUT), "FINISH ok");
    assert_int_equal(f->stored, 1124);
    assert_memory_equal(f->store, pattern, 1124);
    assert_int_equal(tg_eng_bytes(&f->e), 1124);
    teardown_fx(f);
}

/* windowsize 4: the last block of each window is ACKed; a gap is ACKed
 * once with the last block in order, and the rest waits for it. */
static void test_wrq_windowed_gap(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_WRQ, .windowsize = 4, .opts = TG_OPT_WINDOWSIZE});
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(-1), "OACK | ARM client 1000");
    /* Out of order before DATA 1: no ACK 0 after an OACK (RFC 2347). */
    STEP(f, data(2, 512), "");
    STEP(f, data(1, 512), "PUSH 512 | ARM client 1000");
    STEP(f, data(3, 512), "ACK 1");
    STEP(f, data(4, 512), "");
    STEP(f, data(2, 512), "PUSH 512 | ARM client 1000");
    STEP(f, data(3, 512), "PUSH 512 | ARM client 1000");
    STEP(f, data(4, 512), "PUSH 512 | ARM client 1000");
    STEP(f, data(5, 512), "PUSH 512 | ACK 5 | ARM client 1000");
    STEP(f, data(6, 0), "PUSH 0 | ARM storage 7000 | COMMIT");
    STEP(f, ev_of(TG_EV_COMMITTED), "CLOSE | ACK 6 | ARM dally 3000");
    assert_int_equal(f->stored, 512 * 5);
    assert_memory_equal(f->store, pattern, 512 * 5);
    teardown_fx(f);
}

static void test_wrq_rollover(void **state)
{
    struct fx *f = &F;
    struct setup s = {.op = TG_OP_WRQ, .blksize = 8, .opts = TG_OPT_BLKSIZE};

    (void)state;
    for (unsigned r = 0; r <= 1; r++) {
        s.rollover = r;
        begin(f, s);
        step(f, ev_of(TG_EV_START));
        step(f, opened(-1));
        for (uint64_t seq = 1; seq <= 65537; seq++) {
            uint16_t w = tg_blk_wire(seq, r);
            char want[64];

            snprintf(want, sizeof(want), "PUSH 8 | ACK %u | ARM client 1000", w);
            f->stored = 0;
            if (seq >= 65534)
                STEP(f, data_at(w, 0, 8), want);
            else
                step(f, data_at(w, 0, 8));
        }
        /* ...65535, then 0 (rollover 0) or 1 (rollover 1) */
        assert_int_equal(tg_rx_ack_wire(&f->e.rx.rx), r == 0 ? 1 : 2);
        assert_int_equal(tg_eng_bytes(&f->e), 8 * 65537);
        teardown_fx(f);
    }
}

static void test_wrq_backpressure(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_WRQ});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    f->push_rc = TG_EAGAIN;
    /* The store is busy: hold the block, stop reading, bound the wait. */
    STEP(f, data(1, 512), "PUSH 512 | READ_OFF | ARM storage 7000");
    assert_int_equal(f->e.state, TG_ES_STORE_WAIT);
    f->push_rc = TG_EAGAIN;
    STEP(f, ev_of(TG_EV_WRITABLE), "PUSH 512");
    STEP(f, ev_of(TG_EV_WRITABLE), "PUSH 512 | ACK 1 | ARM client 1000 | READ_ON");
    /* Single port: datagrams dropped meanwhile; an ACK says where to resume. */
    STEP(f, ev_of(TG_EV_LOST), "ACK 1");
    f->push_rc = TG_EAGAIN;
    step(f, data(2, 512));
    STEP(f, ev_of(TG_EV_TIMEOUT), "ERROR 0 \"storage did not answer in time\" | FINISH error");
    assert_memory_equal(f->store, pattern, 512);
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_WRQ});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    f->push_rc = TG_ENOSPC;
    STEP(f, data(1, 512), "PUSH 512 | ERROR 3 \"disk full\" | FINISH error");
    teardown_fx(f);
}

static void test_wrq_commit_failure(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_WRQ});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    STEP(f, data(1, 10), "PUSH 10 | ARM storage 7000 | COMMIT");
    STEP(f, failed(6, "file already exists"), "ERROR 6 \"file already exists\" | FINISH error");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_WRQ});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    step(f, data(1, 10));
    STEP(f, ev_of(TG_EV_TIMEOUT), "ERROR 0 \"storage did not answer in time\" | FINISH error");
    teardown_fx(f);
}

/* tsize announced by the client (RFC 2349) and the route's max_size. */
static void test_wrq_sizes(void **state)
{
    struct fx *f = &F;
    struct setup s = {.op = TG_OP_WRQ, .opts = TG_OPT_TSIZE, .tsize = 1000};

    (void)state;
    begin(f, s);
    step(f, ev_of(TG_EV_START));
    STEP(f, opened(-1), "OACK | ARM client 1000");
    STEP(f, data(1, 512), "PUSH 512 | ACK 1 | ARM client 1000");
    STEP(f, data(2, 512),
         "ERROR 3 \"data does not match the announced tsize\" | FINISH error");
    teardown_fx(f);

    begin(f, s);
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    step(f, data(1, 512));
    STEP(f, data(2, 100),
         "ERROR 0 \"data does not match the announced tsize\" | FINISH error");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_WRQ, .max_size = 600});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    STEP(f, data(1, 512), "PUSH 512 | ACK 1 | ARM client 1000");
    STEP(f, data(2, 512), "ERROR 3 \"file too large (limit 600 bytes)\" | FINISH error");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_WRQ});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    STEP(f, data(1, 513), "ERROR 4 \"DATA larger than the negotiated blksize\" | FINISH error");
    teardown_fx(f);
}

/* netascii uploads are decoded, CR LF split across blocks included. */
static void test_wrq_netascii(void **state)
{
    struct fx *f = &F;
    static const uint8_t b1[8] = {'a', 'b', 'c', 'd', 'e', 'f', 'g', '\r'};
    static const uint8_t b2[3] = {'\n', 'x', '\r'};

    (void)state;
    begin(f, (struct setup){.op = TG_OP_WRQ, .blksize = 8, .opts = TG_OPT_BLKSIZE,
                            .netascii = true});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    STEP(f, ((struct tg_eng_ev){.kind = TG_EV_DATA, .block = 1, .data = b1, .len = 8}),
         "PUSH 7 | ACK 1 | ARM client 1000");
    STEP(f, ((struct tg_eng_ev){.kind = TG_EV_DATA, .block = 2, .data = b2, .len = 3}),
         "PUSH 3 | ARM storage 7000 | COMMIT");
    assert_memory_equal(f->store, "abcdefg\nx\r", 10);
    teardown_fx(f);
}

/* ---- the server's events ---- */

static void test_server_events(void **state)
{
    struct fx *f = &F;

    (void)state;
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    STEP(f, ev_of(TG_EV_SUPERSEDE), "FINISH superseded");
    STEP(f, ack(1), ""); /* done: nothing more */
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    STEP(f, ev_of(TG_EV_EVICT), "FINISH evicted");
    teardown_fx(f);

    /* The drain ends what never started; a running transfer goes on. */
    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    STEP(f, ev_of(TG_EV_SHUTDOWN), "");
    step(f, opened(4096));
    STEP(f, ev_of(TG_EV_SHUTDOWN), "ERROR 0 \"server is shutting down\" | FINISH error");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    step(f, ack(1));
    STEP(f, ev_of(TG_EV_SHUTDOWN), "");
    STEP(f, ((struct tg_eng_ev){.kind = TG_EV_ABORT, .msg = "server is shutting down"}),
         "ERROR 0 \"server is shutting down\" | FINISH error");
    teardown_fx(f);

    /* A finished upload that only dallies ends well, whatever ends it. */
    begin(f, (struct setup){.op = TG_OP_WRQ});
    step(f, ev_of(TG_EV_START));
    step(f, opened(-1));
    step(f, data(1, 10));
    step(f, ev_of(TG_EV_COMMITTED));
    STEP(f, ev_of(TG_EV_SUPERSEDE), "FINISH ok");
    teardown_fx(f);

    begin(f, (struct setup){.op = TG_OP_RRQ, .file = 4096});
    step(f, ev_of(TG_EV_START));
    step(f, opened(4096));
    STEP(f, ev_of(TG_EV_DEAF), "FINISH error"); /* no ERROR through a dead socket */
    teardown_fx(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rrq_lockstep),
        cmocka_unit_test(test_rrq_windowed),
        cmocka_unit_test(test_rrq_final_empty_block),
        cmocka_unit_test(test_rrq_duplicate_and_inner_acks),
        cmocka_unit_test(test_rrq_rollover),
        cmocka_unit_test(test_rrq_source_wait),
        cmocka_unit_test(test_rrq_pacing),
        cmocka_unit_test(test_timeout_unproven),
        cmocka_unit_test(test_timeout_proven),
        cmocka_unit_test(test_timeout_option),
        cmocka_unit_test(test_timeout_unconfirmed),
        cmocka_unit_test(test_single_port_proof),
        cmocka_unit_test(test_unsent_ack),
        cmocka_unit_test(test_repeated_request),
        cmocka_unit_test(test_client_error),
        cmocka_unit_test(test_backend_failure),
        cmocka_unit_test(test_wrq_lockstep),
        cmocka_unit_test(test_wrq_windowed_gap),
        cmocka_unit_test(test_wrq_rollover),
        cmocka_unit_test(test_wrq_backpressure),
        cmocka_unit_test(test_wrq_commit_failure),
        cmocka_unit_test(test_wrq_sizes),
        cmocka_unit_test(test_wrq_netascii),
        cmocka_unit_test(test_server_events),
    };

    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + (i >> 9));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
