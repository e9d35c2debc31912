/* tests/unit/test_window.c - block arithmetic, sender ring and receiver policy
 * (RFC 7440; docs/protocol.md, Block number rollover, Duplicate ACKs and
 * Duplicate DATA), written against include/tftpgw/window.h. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tftpgw/packet.h"
#include "tftpgw/window.h"

/* ------------------------------------------------------------------ */
/* Seeded PRNG (splitmix64) so every run sees the same cases. */

static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
    return rng() % n;
}

/* ------------------------------------------------------------------ */
/* tg_blk_wire */

static const struct {
    uint64_t seq;
    unsigned rollover;
    uint16_t wire;
} wire_cases[] = {
    /* seq 0 is "nothing yet": the ACK of a WRQ carries block 0 (RFC 1350) */
    { 0, 0, 0 },
    { 0, 1, 0 },
    { 1, 0, 1 },
    { 1, 1, 1 },
    { 65534, 0, 65534 },
    { 65535, 0, 65535 },
    { 65536, 0, 0 },             /* after 65535 comes 0 (the default) */
    { 65537, 0, 1 },
    { 131071, 0, 65535 },
    { 131072, 0, 0 },
    { 131073, 0, 1 },
    { 4294967296ULL, 0, 0 },
    { 4294967301ULL, 0, 5 },
    { 65534, 1, 65534 },
    { 65535, 1, 65535 },
    { 65536, 1, 1 },             /* after 65535 comes 1 (rollover = 1) */
    { 65537, 1, 2 },
    { 131070, 1, 65535 },
    { 131071, 1, 1 },
    { 131072, 1, 2 },
    { 4294967295ULL, 1, 65535 }, /* 65535 * 65537 */
    { 4294967296ULL, 1, 1 },
};

static void test_blk_wire(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(wire_cases); i++) {
        uint16_t w = tg_blk_wire(wire_cases[i].seq, wire_cases[i].rollover);

        if (w != wire_cases[i].wire)
            print_error("case %zu: seq %llu rollover %u\n", i,
                        (unsigned long long)wire_cases[i].seq,
                        wire_cases[i].rollover);
        assert_int_equal(w, wire_cases[i].wire);
    }
}

/* Consecutive sequences give consecutive wire numbers, modulo 2^16
 * (docs/protocol.md, Block number rollover). */
static void test_blk_wire_successor(void **state)
{
    (void)state;
    for (unsigned r = 0; r <= 1; r++) {
        uint16_t prev = tg_blk_wire(1, r);

        for (uint64_t s = 2; s < 200000; s++) {
            uint16_t w = tg_blk_wire(s, r);
            uint16_t want = (uint16_t)(prev + 1);

            if (r == 1 && prev == 65535)
                want = 1;
            assert_int_equal(w, want);
            prev = w;
        }
    }
}

/* ------------------------------------------------------------------ */
/* tg_blk_resolve */

static const struct {
    uint16_t wire;
    uint64_t lo, hi;
    unsigned rollover;
    int rc;
    uint64_t seq;
} resolve_cases[] = {
    /* around the wrap, rollover 0 */
    { 65530, 65530, 65540, 0, 0, 65530 },
    { 65535, 65530, 65540, 0, 0, 65535 },
    { 0, 65530, 65540, 0, 0, 65536 },
    { 1, 65530, 65540, 0, 0, 65537 },
    { 4, 65530, 65540, 0, 0, 65540 },
    { 5, 65530, 65540, 0, TG_ERANGE, 0 },
    { 65529, 65530, 65540, 0, TG_ERANGE, 0 },
    { 32768, 65530, 65540, 0, TG_ERANGE, 0 },
    /* around the wrap, rollover 1: 0 never appears on the wire */
    { 65535, 65530, 65540, 1, 0, 65535 },
    { 1, 65530, 65540, 1, 0, 65536 },
    { 5, 65530, 65540, 1, 0, 65540 },
    { 6, 65530, 65540, 1, TG_ERANGE, 0 },
    { 0, 65530, 65540, 1, TG_ERANGE, 0 },
    /* single-element and empty ranges */
    { 3, 3, 3, 0, 0, 3 },
    { 4, 3, 3, 0, TG_ERANGE, 0 },
    { 3, 5, 4, 0, TG_ERANGE, 0 },
    { 0, 65536, 65536, 0, 0, 65536 },
    { 1, 65536, 65536, 1, 0, 65536 },
    /* sequence 0 has wire 0 */
    { 0, 0, 10, 0, 0, 0 },
    { 0, 1, 10, 0, TG_ERANGE, 0 },
    /* ambiguous ranges (hi - lo >= 32768): the first match */
    { 7, 1, 200000, 0, 0, 7 },
    { 7, 8, 200000, 0, 0, 65543 },
    { 7, 65544, 200000, 0, 0, 131079 },
    { 0, 1, 200000, 0, 0, 65536 },
    { 7, 1, 200000, 1, 0, 7 },
    { 7, 8, 200000, 1, 0, 65542 },
    { 65535, 1, 200000, 1, 0, 65535 },
    { 65535, 65536, 200000, 1, 0, 131070 },
    /* far from zero */
    { 0, 4294967286ULL, 4294967306ULL, 0, 0, 4294967296ULL },
    { 65530, 4294967286ULL, 4294967306ULL, 0, 0, 4294967290ULL },
    { 10, 4294967286ULL, 4294967306ULL, 0, 0, 4294967306ULL },
    { 11, 4294967286ULL, 4294967306ULL, 0, TG_ERANGE, 0 },
};

static void test_blk_resolve(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(resolve_cases); i++) {
        uint64_t seq = 12345;
        int rc = tg_blk_resolve(resolve_cases[i].wire, resolve_cases[i].lo,
                                resolve_cases[i].hi, resolve_cases[i].rollover,
                                &seq);

        if (rc != resolve_cases[i].rc ||
            (rc == 0 && seq != resolve_cases[i].seq))
            print_error("case %zu: wire %u in [%llu, %llu] rollover %u -> "
                        "rc %d seq %llu\n", i, resolve_cases[i].wire,
                        (unsigned long long)resolve_cases[i].lo,
                        (unsigned long long)resolve_cases[i].hi,
                        resolve_cases[i].rollover, rc,
                        (unsigned long long)seq);
        assert_int_equal(rc, resolve_cases[i].rc);
        if (rc == 0)
            assert_int_equal(seq, resolve_cases[i].seq);
    }
}

/* resolve(wire(s)) == s for any s inside an unambiguous range. */
static void test_blk_resolve_random(void **state)
{
    (void)state;
    rng_state = 0x77696e646f770001ULL;
    for (int i = 0; i < 20000; i++) {
        unsigned r = (unsigned)(i & 1);
        uint64_t lo = rng_below(3) == 0 ? rng_below(70000) : rng_below(1ULL << 40);
        uint64_t hi = lo + rng_below(TG_WINDOW_MAX);
        uint64_t s = lo + rng_below(hi - lo + 1);
        uint64_t got = 0;

        if (r == 1 && lo == 0)
            lo = 1;
        if (s < lo)
            s = lo;
        assert_int_equal(tg_blk_resolve(tg_blk_wire(s, r), lo, hi, r, &got), 0);
        assert_int_equal(got, s);
    }
}

/* ------------------------------------------------------------------ */
/* Sender ring helpers */

/* Byte i of the block with sequence seq, so any mix-up of slots shows. */
static uint8_t pat(uint64_t seq, size_t i)
{
    return (uint8_t)(seq * 131 + i * 7 + 1);
}

/* Fill the current slot with n bytes of block seq's pattern, from offset off. */
static void put(struct tg_win *w, uint64_t seq, size_t off, size_t n)
{
    size_t room = 0;
    uint8_t *p = tg_win_fill_ptr(w, &room);

    assert_non_null(p);
    assert_true(room >= n);
    for (size_t i = 0; i < n; i++)
        p[i] = pat(seq, off + i);
    tg_win_fill_commit(w, n);
}

static void fill_full(struct tg_win *w, uint64_t seq)
{
    put(w, seq, 0, w->blksize);
}

static void check_dgram(struct tg_win *w, uint64_t seq, size_t payload)
{
    size_t len = 0;
    const uint8_t *d = tg_win_datagram(w, seq, &len);
    uint16_t wire = tg_blk_wire(seq, w->rollover);

    assert_non_null(d);
    assert_int_equal(len, TG_HDR + payload);
    assert_int_equal(d[0], 0);
    assert_int_equal(d[1], TG_OP_DATA);
    assert_int_equal(d[2], wire >> 8);
    assert_int_equal(d[3], wire & 0xff);
    for (size_t i = 0; i < payload; i++)
        assert_int_equal(d[TG_HDR + i], pat(seq, i));
}

/* Send everything sendable, checking it comes out in order from `from`. */
static uint64_t send_all(struct tg_win *w, uint64_t from)
{
    uint64_t s, n = 0;

    while ((s = tg_win_sendable(w)) != 0) {
        assert_int_equal(s, from + n);
        tg_win_sent(w);
        n++;
        assert_true(n <= w->size);
    }
    return n;
}

static void expect_ignored(struct tg_win *w, uint16_t wire)
{
    uint64_t acked = w->acked, next = w->next_send, filled = w->filled;

    assert_int_equal(tg_win_ack(w, wire), 0);
    assert_int_equal(w->acked, acked);
    assert_int_equal(w->next_send, next);
    assert_int_equal(w->filled, filled);
}

/* An ACK for a block never sent: reported, and nothing moves. */
static void expect_unsent(struct tg_win *w, uint16_t wire)
{
    uint64_t acked = w->acked, next = w->next_send, filled = w->filled;

    assert_int_equal(tg_win_ack(w, wire), TG_WIN_UNSENT);
    assert_int_equal(w->acked, acked);
    assert_int_equal(w->next_send, next);
    assert_int_equal(w->filled, filled);
}

/* ------------------------------------------------------------------ */
/* Sender ring */

static void test_win_init_free(void **state)
{
    struct tg_win w;
    long base = tg_alloc_live();
    size_t room = 0;
    uint8_t *p;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 512, 0), 0);
    assert_int_equal(w.size, 4);
    assert_int_equal(w.blksize, 512);
    assert_int_equal(w.rollover, 0);
    assert_int_equal(w.acked, 0);
    assert_int_equal(w.next_send, 1);
    assert_int_equal(w.filled, 0);
    assert_int_equal(w.fill_off, 0);
    assert_int_equal(w.last, 0);
    assert_false(tg_win_done(&w));
    assert_int_equal(tg_win_sendable(&w), 0);
    p = tg_win_fill_ptr(&w, &room);
    assert_non_null(p);
    assert_int_equal(room, 512);
    /* the whole ring is writable (ASan/valgrind check the bounds) */
    for (uint64_t s = 1; s <= 4; s++) {
        p = tg_win_fill_ptr(&w, &room);
        assert_non_null(p);
        memset(p, 0xee, room);
        tg_win_fill_commit(&w, room);
    }
    assert_null(tg_win_fill_ptr(&w, &room));
    tg_win_free(&w);
    assert_int_equal(tg_alloc_live(), base);

    assert_int_equal(tg_win_init(&w, 1, 8, 1), 0);
    assert_int_equal(w.rollover, 1);
    tg_win_free(&w);
    assert_int_equal(tg_win_init(&w, TG_WINDOW_MAX, 8, 0), 0);
    tg_win_free(&w);
    assert_int_equal(tg_alloc_live(), base);
}

static void test_win_init_errors(void **state)
{
    struct tg_win w;
    long base = tg_alloc_live();

    (void)state;
    /* every allocation failing in turn: TG_ENOMEM and nothing leaked */
    for (long n = 1; n <= 4; n++) {
        int rc;

        tg_alloc_fail_after(n);
        rc = tg_win_init(&w, 8, 512, 0);
        tg_alloc_fail_after(0);
        if (rc == 0) {
            tg_win_free(&w);
            assert_true(n > 1); /* at least one allocation is needed */
            break;
        }
        assert_int_equal(rc, TG_ENOMEM);
        assert_int_equal(tg_alloc_live(), base);
    }
    assert_int_equal(tg_alloc_live(), base);

    /* sizes the arithmetic cannot handle */
    assert_int_equal(tg_win_init(&w, 0, 512, 0), TG_EINVAL);
    assert_int_equal(tg_win_init(&w, TG_WINDOW_MAX + 1, 512, 0), TG_EINVAL);
    assert_int_equal(tg_alloc_live(), base);
}

static void test_win_fill_and_send(void **state)
{
    struct tg_win w;
    size_t room = 0;
    uint8_t *p0, *p1;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);

    /* a slot filled in two steps: the pointer advances, room shrinks */
    p0 = tg_win_fill_ptr(&w, &room);
    assert_int_equal(room, 8);
    put(&w, 1, 0, 3);
    assert_int_equal(w.filled, 0);
    assert_int_equal(w.fill_off, 3);
    assert_int_equal(tg_win_sendable(&w), 0); /* incomplete: not sendable */
    p1 = tg_win_fill_ptr(&w, &room);
    assert_ptr_equal(p1, p0 + 3);
    assert_int_equal(room, 5);
    put(&w, 1, 3, 5);
    assert_int_equal(w.filled, 1);
    assert_int_equal(w.fill_off, 0);
    assert_int_equal(tg_win_sendable(&w), 1);
    check_dgram(&w, 1, 8);

    fill_full(&w, 2);
    fill_full(&w, 3);
    fill_full(&w, 4);
    assert_int_equal(w.filled, 4);
    /* full: filled == acked + size */
    assert_null(tg_win_fill_ptr(&w, &room));

    assert_int_equal(send_all(&w, 1), 4);
    assert_int_equal(w.next_send, 5);
    assert_int_equal(tg_win_sendable(&w), 0);
    for (uint64_t s = 1; s <= 4; s++)
        check_dgram(&w, s, 8);

    /* ACK of the whole window */
    assert_int_equal(tg_win_ack(&w, 4), 4);
    assert_int_equal(w.acked, 4);
    assert_int_equal(w.next_send, 5);
    assert_int_equal(tg_win_sendable(&w), 0); /* 5 not filled yet */
    assert_non_null(tg_win_fill_ptr(&w, &room));
    assert_int_equal(room, 8);

    /* the ring wraps: 5..8 reuse slots of 1..4 */
    for (uint64_t s = 5; s <= 8; s++)
        fill_full(&w, s);
    assert_null(tg_win_fill_ptr(&w, &room));
    assert_int_equal(send_all(&w, 5), 4);
    for (uint64_t s = 5; s <= 8; s++)
        check_dgram(&w, s, 8);
    assert_int_equal(tg_win_ack(&w, 8), 4);
    assert_false(tg_win_done(&w));
    tg_win_free(&w);
}

/* A slot freed by an ACK is refilled without touching unACKed blocks. */
static void test_win_slot_reuse(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 2, 8, 0), 0);
    fill_full(&w, 1);
    fill_full(&w, 2);
    assert_int_equal(send_all(&w, 1), 2);
    assert_int_equal(tg_win_ack(&w, 1), 1);
    assert_int_equal(w.next_send, 2);
    fill_full(&w, 3);
    check_dgram(&w, 2, 8);
    check_dgram(&w, 3, 8);
    /* 3 is inside acked + size = 3 */
    assert_int_equal(send_all(&w, 2), 2);
    /* 4 would be outside the window: cannot even be filled */
    assert_null(tg_win_fill_ptr(&w, &(size_t){0}));
    tg_win_free(&w);
}

/* Only complete (or final) slots are sendable, one at a time, in order. */
static void test_win_sendable_needs_fill(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 3, 8, 0), 0);
    fill_full(&w, 1);
    assert_int_equal(tg_win_sendable(&w), 1);
    assert_int_equal(tg_win_sendable(&w), 1); /* const: no side effect */
    tg_win_sent(&w);
    assert_int_equal(tg_win_sendable(&w), 0);
    fill_full(&w, 2);
    fill_full(&w, 3);
    assert_int_equal(send_all(&w, 2), 2);
    assert_int_equal(tg_win_sendable(&w), 0);
    assert_int_equal(tg_win_ack(&w, 3), 3);
    assert_int_equal(tg_win_sendable(&w), 0); /* 4 not filled */
    put(&w, 4, 0, 7);
    assert_int_equal(tg_win_sendable(&w), 0); /* 4 not complete */
    put(&w, 4, 7, 1);
    assert_int_equal(tg_win_sendable(&w), 4);
    tg_win_free(&w);
}

static void test_win_eof_short(void **state)
{
    struct tg_win w;
    size_t room;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    fill_full(&w, 1);
    put(&w, 2, 0, 3);
    tg_win_fill_eof(&w);
    assert_int_equal(w.last, 2);
    assert_int_equal(w.filled, 2);
    assert_null(tg_win_fill_ptr(&w, &room)); /* at EOF */
    check_dgram(&w, 1, 8);
    check_dgram(&w, 2, 3);
    assert_int_equal(send_all(&w, 1), 2);
    assert_int_equal(tg_win_sendable(&w), 0);
    assert_int_equal(tg_win_ack(&w, 1), 1);
    assert_false(tg_win_done(&w));
    /* again from after the ACK (RFC 7440 section 4) */
    assert_int_equal(send_all(&w, 2), 1);
    assert_int_equal(tg_win_ack(&w, 2), 1);
    assert_true(tg_win_done(&w));
    assert_int_equal(tg_win_sendable(&w), 0);
    expect_ignored(&w, 2);
    assert_true(tg_win_done(&w));
    tg_win_free(&w);
}

/* A source that ends on a block boundary needs an empty final DATA (RFC 1350 6). */
static void test_win_eof_exact_multiple(void **state)
{
    struct tg_win w;
    size_t room;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    fill_full(&w, 1);
    fill_full(&w, 2);
    tg_win_fill_eof(&w);
    assert_int_equal(w.last, 3);
    assert_int_equal(w.filled, 3);
    assert_null(tg_win_fill_ptr(&w, &room));
    check_dgram(&w, 3, 0);
    assert_int_equal(send_all(&w, 1), 3);
    assert_int_equal(tg_win_ack(&w, 2), 2);
    assert_false(tg_win_done(&w));
    assert_int_equal(send_all(&w, 3), 1);
    check_dgram(&w, 3, 0);
    assert_int_equal(tg_win_ack(&w, 3), 1);
    assert_true(tg_win_done(&w));
    tg_win_free(&w);

    /* empty source: one empty block */
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    tg_win_fill_eof(&w);
    assert_int_equal(w.last, 1);
    check_dgram(&w, 1, 0);
    assert_int_equal(send_all(&w, 1), 1);
    assert_false(tg_win_done(&w));
    assert_int_equal(tg_win_ack(&w, 1), 1);
    assert_true(tg_win_done(&w));
    tg_win_free(&w);

    /* windowsize 1 (RFC 1350 lock-step, RFC 7440 section 4), exact multiple */
    assert_int_equal(tg_win_init(&w, 1, 8, 0), 0);
    fill_full(&w, 1);
    assert_null(tg_win_fill_ptr(&w, &room));
    assert_int_equal(send_all(&w, 1), 1);
    assert_int_equal(tg_win_ack(&w, 1), 1);
    tg_win_fill_eof(&w);
    assert_int_equal(w.last, 2);
    check_dgram(&w, 2, 0);
    assert_int_equal(send_all(&w, 2), 1);
    assert_int_equal(tg_win_ack(&w, 2), 1);
    assert_true(tg_win_done(&w));
    tg_win_free(&w);
}

/* RFC 7440 section 4, RFC 1123 4.2.3.1; docs/protocol.md, Duplicate ACKs. */
static void test_win_ack_rules(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    for (uint64_t s = 1; s <= 4; s++)
        fill_full(&w, s);

    /* nothing sent yet: no ACK counts, and one for block 1 is blind */
    expect_ignored(&w, 0);
    expect_unsent(&w, 1);

    assert_int_equal(send_all(&w, 1), 4);
    /* ACK 0 (the OACK's) equals acked: a duplicate */
    expect_ignored(&w, 0);
    /* an ACK inside the window rewinds next_send */
    assert_int_equal(tg_win_ack(&w, 2), 2);
    assert_int_equal(w.acked, 2);
    assert_int_equal(w.next_send, 3);
    assert_int_equal(tg_win_sendable(&w), 3);
    /* duplicate and stale ACKs are ignored; not-yet-sent ones reported */
    expect_ignored(&w, 2);
    expect_ignored(&w, 1);
    expect_ignored(&w, 0);
    expect_unsent(&w, 5);      /* never filled, never sent */
    expect_unsent(&w, 6);
    expect_unsent(&w, 32769);  /* the far edge of "ahead": acked + 32767 */
    expect_ignored(&w, 65535);
    expect_ignored(&w, 32770); /* further: an old number, ignored */
    /* sent before a rewind, then ACKed: it counts (RFC 7440 4) */
    tg_win_rewind(&w);
    assert_int_equal(w.next_send, 3);
    assert_int_equal(tg_win_ack(&w, 4), 2);
    assert_int_equal(w.next_send, 5);
    expect_ignored(&w, 3);

    /* room for 5..8 now */
    for (uint64_t s = 5; s <= 8; s++)
        fill_full(&w, s);
    assert_null(tg_win_fill_ptr(&w, &(size_t){0}));
    assert_int_equal(send_all(&w, 5), 4);
    assert_int_equal(w.next_send, 9);
    check_dgram(&w, 5, 8);
    check_dgram(&w, 8, 8);
    assert_int_equal(tg_win_ack(&w, 5), 1);
    assert_int_equal(w.next_send, 6);
    expect_ignored(&w, 5);
    expect_unsent(&w, 9);
    assert_int_equal(send_all(&w, 6), 3);
    assert_int_equal(tg_win_ack(&w, 6), 1);
    assert_int_equal(tg_win_ack(&w, 8), 2);
    assert_int_equal(w.acked, 8);
    assert_int_equal(w.next_send, 9);
    expect_ignored(&w, 8);
    expect_ignored(&w, 6);
    expect_ignored(&w, 5);
    tg_win_free(&w);
}

static void test_win_ack_rules_old_tail(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    for (uint64_t s = 1; s <= 4; s++)
        fill_full(&w, s);
    assert_int_equal(send_all(&w, 1), 4);
    assert_int_equal(tg_win_ack(&w, 2), 2);
    fill_full(&w, 5);
    fill_full(&w, 6);
    assert_int_equal(send_all(&w, 3), 4);
    assert_int_equal(tg_win_ack(&w, 3), 1);
    assert_int_equal(send_all(&w, 4), 3);
    assert_int_equal(tg_win_ack(&w, 6), 3);
    assert_int_equal(w.acked, 6);
    assert_int_equal(w.next_send, 7);
    expect_ignored(&w, 6);
    expect_ignored(&w, 4);
    expect_ignored(&w, 3);
    tg_win_free(&w);
}

/* Timeout: start again after the last ACK (RFC 7440 section 4). */
static void test_win_rewind(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    /* nothing sent: rewinding changes nothing */
    tg_win_rewind(&w);
    assert_int_equal(w.next_send, 1);
    for (uint64_t s = 1; s <= 4; s++)
        fill_full(&w, s);
    assert_int_equal(send_all(&w, 1), 4);
    tg_win_rewind(&w);
    assert_int_equal(w.next_send, 1);
    assert_int_equal(w.acked, 0);
    assert_int_equal(send_all(&w, 1), 4);
    for (uint64_t s = 1; s <= 4; s++)
        check_dgram(&w, s, 8);
    assert_int_equal(tg_win_ack(&w, 1), 1);
    assert_int_equal(w.next_send, 2);
    assert_int_equal(send_all(&w, 2), 3);
    tg_win_rewind(&w);
    assert_int_equal(w.next_send, 2);
    assert_int_equal(tg_win_sendable(&w), 2);
    /* partial send, then rewind */
    tg_win_sent(&w);
    assert_int_equal(tg_win_sendable(&w), 3);
    tg_win_rewind(&w);
    assert_int_equal(tg_win_sendable(&w), 2);
    /* a twice-rewound window sends the same bytes again */
    assert_int_equal(send_all(&w, 2), 3);
    check_dgram(&w, 2, 8);
    check_dgram(&w, 4, 8);
    tg_win_free(&w);
}

/* Drive the ring until acked == target - 1 with one block per round trip. */
static void advance_to(struct tg_win *w, uint64_t target)
{
    while (w->acked + 1 < target) {
        uint64_t s = w->acked + 1;

        fill_full(w, s);
        assert_int_equal(tg_win_sendable(w), s);
        tg_win_sent(w);
        assert_int_equal(tg_win_ack(w, tg_blk_wire(s, w->rollover)), 1);
    }
}

/* Across the wrap to 0: 65534, 65535, 0, 1 with duplicates of 65535 and 0
 * (docs/protocol.md, Block number rollover). */
static void test_win_ack_rollover0(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 0), 0);
    advance_to(&w, 65534);
    assert_int_equal(w.acked, 65533);
    for (uint64_t s = 65534; s <= 65537; s++)
        fill_full(&w, s);
    assert_int_equal(send_all(&w, 65534), 4);
    check_dgram(&w, 65534, 8);
    check_dgram(&w, 65535, 8);
    check_dgram(&w, 65536, 8);  /* wire 0 */
    check_dgram(&w, 65537, 8);  /* wire 1 */

    assert_int_equal(tg_win_ack(&w, 65535), 2);
    assert_int_equal(w.acked, 65535);
    assert_int_equal(w.next_send, 65536);
    expect_ignored(&w, 65535);
    expect_ignored(&w, 65534);
    assert_int_equal(send_all(&w, 65536), 2);
    assert_int_equal(tg_win_ack(&w, 0), 1);
    assert_int_equal(w.acked, 65536);
    assert_int_equal(w.next_send, 65537);
    expect_ignored(&w, 0);
    expect_ignored(&w, 65535);  /* tftp-hpa's late 65535 */
    assert_int_equal(send_all(&w, 65537), 1);
    assert_int_equal(tg_win_ack(&w, 1), 1);
    assert_int_equal(w.acked, 65537);
    expect_ignored(&w, 1);
    expect_ignored(&w, 0);

    /* and on past 131071 */
    advance_to(&w, 131072);
    fill_full(&w, 131072);
    fill_full(&w, 131073);
    assert_int_equal(send_all(&w, 131072), 2);
    check_dgram(&w, 131072, 8);
    assert_int_equal(tg_win_ack(&w, 1), 2);
    assert_int_equal(w.acked, 131073);
    tg_win_free(&w);
}

static void test_win_ack_rollover1(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 4, 8, 1), 0);
    advance_to(&w, 65534);
    for (uint64_t s = 65534; s <= 65537; s++)
        fill_full(&w, s);
    assert_int_equal(send_all(&w, 65534), 4);
    check_dgram(&w, 65536, 8);  /* wire 1 */
    check_dgram(&w, 65537, 8);  /* wire 2 */

    assert_int_equal(tg_win_ack(&w, 65535), 2);
    expect_ignored(&w, 65535);
    assert_int_equal(send_all(&w, 65536), 2);
    expect_ignored(&w, 0);      /* 0 never follows 65535 here */
    assert_int_equal(tg_win_ack(&w, 1), 1);
    assert_int_equal(w.acked, 65536);
    expect_ignored(&w, 1);
    expect_ignored(&w, 65535);
    expect_ignored(&w, 0);
    assert_int_equal(send_all(&w, 65537), 1);
    assert_int_equal(tg_win_ack(&w, 2), 1);
    assert_int_equal(w.acked, 65537);
    tg_win_free(&w);
}

/* An ACK inside the window across the wrap also rewinds. */
static void test_win_ack_inside_across_wrap(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 8, 8, 0), 0);
    advance_to(&w, 65532);
    for (uint64_t s = 65532; s <= 65539; s++)
        fill_full(&w, s);
    assert_int_equal(send_all(&w, 65532), 8);
    assert_int_equal(tg_win_ack(&w, 0), 5);     /* 65536 */
    assert_int_equal(w.next_send, 65537);
    assert_int_equal(tg_win_sendable(&w), 65537);
    expect_ignored(&w, 65535);
    expect_ignored(&w, 65533);
    assert_int_equal(send_all(&w, 65537), 3);
    assert_int_equal(tg_win_ack(&w, 3), 3);     /* 65539 */
    assert_int_equal(w.next_send, 65540);
    tg_win_free(&w);
}

static void test_win_done(void **state)
{
    struct tg_win w;

    (void)state;
    assert_int_equal(tg_win_init(&w, 2, 8, 0), 0);
    assert_false(tg_win_done(&w));
    fill_full(&w, 1);
    fill_full(&w, 2);
    assert_int_equal(send_all(&w, 1), 2);
    assert_int_equal(tg_win_ack(&w, 2), 2);
    /* everything ACKed but no EOF yet: not done */
    assert_false(tg_win_done(&w));
    put(&w, 3, 0, 5);
    assert_false(tg_win_done(&w));
    tg_win_fill_eof(&w);
    assert_false(tg_win_done(&w));
    assert_int_equal(send_all(&w, 3), 1);
    assert_false(tg_win_done(&w));
    tg_win_rewind(&w);
    assert_false(tg_win_done(&w));
    assert_int_equal(send_all(&w, 3), 1);
    assert_int_equal(tg_win_ack(&w, 3), 1);
    assert_true(tg_win_done(&w));
    tg_win_rewind(&w);
    assert_true(tg_win_done(&w));
    assert_int_equal(tg_win_sendable(&w), 0);
    tg_win_free(&w);
}

/* ------------------------------------------------------------------ */
/* Receiver */

struct rx_step {
    uint16_t wire;
    bool last;
    enum tg_rx_action act;
    int ack;            /* 1/0: *ack must be that; -1: not checked */
    uint16_t ack_wire;  /* tg_rx_ack_wire() afterwards */
};

static void run_rx(struct tg_rx *r, const struct rx_step *st, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool ack = !st[i].ack;  /* poisoned: must be written */
        enum tg_rx_action a = tg_rx_on_data(r, st[i].wire, st[i].last, &ack);

        if (a != st[i].act || (st[i].ack >= 0 && ack != (st[i].ack == 1)) ||
            tg_rx_ack_wire(r) != st[i].ack_wire)
            print_error("step %zu: wire %u last %d -> act %d ack %d ack_wire %u\n",
                        i, st[i].wire, st[i].last, a, ack, tg_rx_ack_wire(r));
        assert_int_equal(a, st[i].act);
        if (st[i].ack >= 0)
            assert_int_equal(ack, st[i].ack == 1);
        assert_int_equal(tg_rx_ack_wire(r), st[i].ack_wire);
    }
}

static void test_rx_init(void **state)
{
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 4, 0);
    assert_int_equal(r.windowsize, 4);
    assert_int_equal(r.rollover, 0);
    assert_int_equal(r.received, 0);
    assert_int_equal(r.since_ack, 0);
    assert_false(r.gap_acked);
    assert_int_equal(tg_rx_ack_wire(&r), 0);   /* ACK 0 answers the WRQ */
    tg_rx_init(&r, 1, 1);
    assert_int_equal(tg_rx_ack_wire(&r), 0);
}

/* RFC 7440 section 4: ACK the last block of each window and the short
 * final block. */
static void test_rx_in_order(void **state)
{
    static const struct rx_step ws4[] = {
        { 1, false, TG_RX_ACCEPT, 0, 1 },
        { 2, false, TG_RX_ACCEPT, 0, 2 },
        { 3, false, TG_RX_ACCEPT, 0, 3 },
        { 4, false, TG_RX_ACCEPT, 1, 4 },
        { 5, false, TG_RX_ACCEPT, 0, 5 },
        { 6, false, TG_RX_ACCEPT, 0, 6 },
        { 7, true, TG_RX_ACCEPT, 1, 7 },
    };
    static const struct rx_step ws4_last_at_end[] = {
        { 1, false, TG_RX_ACCEPT, 0, 1 },
        { 2, false, TG_RX_ACCEPT, 0, 2 },
        { 3, false, TG_RX_ACCEPT, 0, 3 },
        { 4, true, TG_RX_ACCEPT, 1, 4 },
    };
    static const struct rx_step ws4_first_last[] = {
        { 1, true, TG_RX_ACCEPT, 1, 1 },
    };
    static const struct rx_step ws1[] = {   /* RFC 1350 lock-step */
        { 1, false, TG_RX_ACCEPT, 1, 1 },
        { 2, false, TG_RX_ACCEPT, 1, 2 },
        { 3, true, TG_RX_ACCEPT, 1, 3 },
    };
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 4, 0);
    run_rx(&r, ws4, TG_ARRAY_LEN(ws4));
    assert_int_equal(r.received, 7);
    tg_rx_init(&r, 4, 0);
    run_rx(&r, ws4_last_at_end, TG_ARRAY_LEN(ws4_last_at_end));
    tg_rx_init(&r, 4, 1);
    run_rx(&r, ws4_first_last, TG_ARRAY_LEN(ws4_first_last));
    tg_rx_init(&r, 1, 0);
    run_rx(&r, ws1, TG_ARRAY_LEN(ws1));

    /* a long run: ACK exactly every windowsize blocks */
    for (unsigned ws = 1; ws <= 9; ws++) {
        tg_rx_init(&r, ws, 0);
        for (uint64_t s = 1; s <= 100; s++) {
            bool ack = false;

            assert_int_equal(tg_rx_on_data(&r, (uint16_t)s, false, &ack),
                             TG_RX_ACCEPT);
            assert_int_equal(ack, s % ws == 0);
        }
    }
}

static void test_rx_dup(void **state)
{
    static const struct rx_step steps[] = {
        { 1, false, TG_RX_ACCEPT, 0, 1 },
        { 2, false, TG_RX_ACCEPT, 0, 2 },
        { 2, false, TG_RX_DUP, -1, 2 },
        { 1, false, TG_RX_DUP, -1, 2 },
        /* whether a re-ACK restarts the window count is left open */
        { 3, false, TG_RX_ACCEPT, -1, 3 },
        { 4, false, TG_RX_ACCEPT, -1, 4 },
        { 4, false, TG_RX_DUP, -1, 4 },
        { 3, false, TG_RX_DUP, -1, 4 },
        { 1, false, TG_RX_DUP, -1, 4 },
    };
    static const struct rx_step ws1[] = {   /* lost ACK: re-ACK (RFC 1350) */
        { 1, false, TG_RX_ACCEPT, 1, 1 },
        { 1, false, TG_RX_DUP, -1, 1 },
        { 2, true, TG_RX_ACCEPT, 1, 2 },
        { 2, true, TG_RX_DUP, -1, 2 },
    };
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 4, 0);
    run_rx(&r, steps, TG_ARRAY_LEN(steps));
    assert_int_equal(r.received, 4);
    tg_rx_init(&r, 1, 0);
    run_rx(&r, ws1, TG_ARRAY_LEN(ws1));
    assert_int_equal(r.received, 2);
}

/* RFC 7440 section 4: on a gap ACK the last in-order block once, then stay
 * quiet until an in-order block arrives. */
static void test_rx_gap(void **state)
{
    static const struct rx_step steps[] = {
        { 1, false, TG_RX_ACCEPT, 0, 1 },
        { 2, false, TG_RX_ACCEPT, 0, 2 },
        { 4, false, TG_RX_GAP, 1, 2 },
        { 5, false, TG_RX_GAP, 0, 2 },
        { 4, false, TG_RX_GAP, 0, 2 },
        { 6, true, TG_RX_GAP, 0, 2 },   /* a short block out of order too */
        { 3, false, TG_RX_ACCEPT, 0, 3 },
        { 5, false, TG_RX_GAP, 1, 3 },  /* a new gap: ACKed once again */
        { 6, false, TG_RX_GAP, 0, 3 },
        /* the sender restarts after 3; the gap ACK started a new window */
        { 4, false, TG_RX_ACCEPT, 0, 4 },
        { 5, false, TG_RX_ACCEPT, 0, 5 },
        { 6, false, TG_RX_ACCEPT, 0, 6 },
        { 7, false, TG_RX_ACCEPT, 1, 7 },
        { 8, true, TG_RX_ACCEPT, 1, 8 },
    };
    static const struct rx_step at_start[] = {
        { 2, false, TG_RX_GAP, 1, 0 },
        { 3, false, TG_RX_GAP, 0, 0 },
        { 1, false, TG_RX_ACCEPT, 0, 1 },
    };
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 4, 0);
    run_rx(&r, steps, TG_ARRAY_LEN(steps));
    assert_int_equal(r.received, 8);
    tg_rx_init(&r, 4, 0);
    run_rx(&r, at_start, TG_ARRAY_LEN(at_start));
}

/* A duplicate between gap blocks does not re-arm the gap ACK. */
static void test_rx_gap_then_dup(void **state)
{
    static const struct rx_step steps[] = {
        { 1, false, TG_RX_ACCEPT, 0, 1 },
        { 3, false, TG_RX_GAP, 1, 1 },
        { 1, false, TG_RX_DUP, -1, 1 },
        { 3, false, TG_RX_GAP, 0, 1 },
        { 2, false, TG_RX_ACCEPT, 0, 2 },
    };
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 4, 0);
    run_rx(&r, steps, TG_ARRAY_LEN(steps));
}

/* Count the ACKs a burst of blocks draws. */
static unsigned rx_burst(struct tg_rx *r, uint16_t from, unsigned n, uint16_t last_wire,
                         enum tg_rx_action want)
{
    unsigned acks = 0;

    for (unsigned i = 0; i < n; i++) {
        uint16_t wire = (uint16_t)(from + i);
        bool ack = false;

        assert_int_equal(tg_rx_on_data(r, wire, wire == last_wire, &ack), want);
        acks += ack;
    }
    return acks;
}

/* The window's ACK is lost, then the re-ACK a duplicate draws is lost too:
 * each further retransmission of the window (the sender's timeout, RFC 7440
 * section 4) must
 * still draw an ACK, or the transfer stalls until the sender gives up.
 * The same holds for the final block (RFC 1350 6: a lost last ACK is
 * answered by the retransmitted last DATA). */
static void test_rx_dup_reack_liveness(void **state)
{
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 4, 0);
    assert_int_equal(rx_burst(&r, 1, 4, 0, TG_RX_ACCEPT), 1);  /* ACK 4: lost */
    for (int round = 0; round < 3; round++) {
        unsigned acks = rx_burst(&r, 1, 4, 0, TG_RX_DUP);

        if (acks == 0)
            print_error("retransmission round %d drew no ACK\n", round + 1);
        assert_true(acks >= 1);
        assert_int_equal(tg_rx_ack_wire(&r), 4);
    }
    /* and the transfer goes on */
    assert_int_equal(rx_burst(&r, 5, 4, 0, TG_RX_ACCEPT), 1);

    /* a retransmitted window of 16 draws one ACK, not 16 (atftp restarts
     * its window on every ACK it gets) */
    tg_rx_init(&r, 16, 0);
    assert_int_equal(rx_burst(&r, 1, 16, 0, TG_RX_ACCEPT), 1);
    assert_int_equal(rx_burst(&r, 1, 16, 0, TG_RX_DUP), 1);
    assert_int_equal(rx_burst(&r, 1, 16, 0, TG_RX_DUP), 1);

    tg_rx_init(&r, 4, 0);
    assert_int_equal(rx_burst(&r, 1, 2, 2, TG_RX_ACCEPT), 1);  /* final ACK lost */
    for (int round = 0; round < 3; round++) {
        bool ack = false;

        assert_int_equal(tg_rx_on_data(&r, 2, true, &ack), TG_RX_DUP);
        if (!ack)
            print_error("retransmitted final block %d drew no ACK\n", round + 1);
        assert_true(ack);
    }
}

static void rx_advance(struct tg_rx *r, uint64_t to)
{
    while (r->received < to) {
        bool ack = false;
        uint16_t w = tg_blk_wire(r->received + 1, r->rollover);

        assert_int_equal(tg_rx_on_data(r, w, false, &ack), TG_RX_ACCEPT);
    }
}

static void test_rx_rollover0(void **state)
{
    static const struct rx_step steps[] = {
        { 65535, false, TG_RX_DUP, -1, 65535 },
        { 0, false, TG_RX_ACCEPT, 1, 0 },
        { 65535, false, TG_RX_DUP, -1, 0 },
        { 0, false, TG_RX_DUP, -1, 0 },
        { 1, false, TG_RX_ACCEPT, 1, 1 },
        { 0, false, TG_RX_DUP, -1, 1 },
        { 2, true, TG_RX_ACCEPT, 1, 2 },
    };
    static const struct rx_step ws4[] = {
        /* received 65533; 65534 lost, 65535 and 0 arrive */
        { 65535, false, TG_RX_GAP, 1, 65533 },
        { 0, false, TG_RX_GAP, 0, 65533 },
        { 65534, false, TG_RX_ACCEPT, 0, 65534 },
        { 65535, false, TG_RX_ACCEPT, 0, 65535 },
        { 0, false, TG_RX_ACCEPT, 0, 0 },
        { 1, false, TG_RX_ACCEPT, 1, 1 },
        { 0, false, TG_RX_DUP, -1, 1 },
        { 65535, false, TG_RX_DUP, -1, 1 },
    };
    struct tg_rx r;

    (void)state;
    tg_rx_init(&r, 1, 0);
    rx_advance(&r, 65535);
    assert_int_equal(tg_rx_ack_wire(&r), 65535);
    run_rx(&r, steps, TG_ARRAY_LEN(steps));
    assert_int_equal(r.received, 65538);

    tg_rx_init(&r, 4, 0);
    rx_advance(&r, 65532);          /* a multiple of 4: window boundary */
    {
        bool ack = false;

        assert_int_equal(tg_rx_on_data(&r, 65533, false, &ack), TG_RX_ACCEPT);
        assert_false(ack);
    }
    run_rx(&r, ws4, TG_ARRAY_LEN(ws4));
    assert_int_equal(r.received, 65537);
}

static void test_rx_rollover1(void **state)
{
    static const struct rx_step steps[] = {
        { 65535, false, TG_RX_DUP, -1, 65535 },
        { 1, false, TG_RX_ACCEPT, 1, 1 },
        { 65535, false, TG_RX_DUP, -1, 1 },
        { 1, false, TG_RX_DUP, -1, 1 },
        { 2, false, TG_RX_ACCEPT, 1, 2 },
        { 1, false, TG_RX_DUP, -1, 2 },
        { 3, true, TG_RX_ACCEPT, 1, 3 },
    };
    struct tg_rx r;
    bool ack = false;
    enum tg_rx_action a;

    (void)state;
    tg_rx_init(&r, 1, 1);
    rx_advance(&r, 65535);
    /* 0 is never the next block under rollover 1 */
    a = tg_rx_on_data(&r, 0, false, &ack);
    assert_int_not_equal(a, TG_RX_ACCEPT);
    assert_int_equal(r.received, 65535);
    tg_rx_init(&r, 1, 1);
    rx_advance(&r, 65535);
    run_rx(&r, steps, TG_ARRAY_LEN(steps));
    assert_int_equal(r.received, 65538);
}

/* ------------------------------------------------------------------ */
/* Whole transfers over a lossy, duplicating channel, ring and receiver
 * together, across the wrap for both policies. */

#define SIM_Q 256

struct sim_pkt {
    uint8_t b[TG_HDR + 16];
    size_t len;
};

/* Byte o of the source stream. */
static uint8_t src_byte(uint64_t o)
{
    return (uint8_t)((o * 2654435761ULL) >> 11);
}

/* File-scope so the teardown frees it when an assertion jumps out. */
static struct tg_win sim_win;

static int sim_teardown(void **state)
{
    (void)state;
    tg_win_free(&sim_win);
    return 0;
}

static void simulate(unsigned ws, size_t blksize, unsigned rollover,
                     uint64_t total, unsigned loss_pct)
{
    static struct sim_pkt dq[SIM_Q];
    static uint16_t aq[SIM_Q];
    struct tg_win *wp = &sim_win;
    struct tg_rx r;
    uint64_t produced = 0, got = 0, rounds = 0;
    unsigned stalled = 0;
    bool eof = false;

    assert_int_equal(tg_win_init(wp, ws, blksize, rollover), 0);
    tg_rx_init(&r, ws, rollover);

    while (!tg_win_done(wp)) {
        size_t nd = 0, na = 0, room;
        uint8_t *p;
        uint64_t s;
        bool progress = false;

        assert_true(++rounds < 4 * total / blksize + 100000);

        /* refill like a pull-based session: random short reads, and EOF
         * seen only when there is a slot to read into */
        while (!eof && (p = tg_win_fill_ptr(wp, &room)) != NULL) {
            size_t n = 1 + (size_t)rng_below(room);

            if (produced == total) {
                tg_win_fill_eof(wp);
                eof = true;
                break;
            }
            if (n > total - produced)
                n = (size_t)(total - produced);
            for (size_t i = 0; i < n; i++)
                p[i] = src_byte(produced + i);
            tg_win_fill_commit(wp, n);
            produced += n;
        }

        /* send: lose some, duplicate some */
        while ((s = tg_win_sendable(wp)) != 0) {
            size_t len;
            const uint8_t *d = tg_win_datagram(wp, s, &len);

            assert_true(len <= sizeof(dq[0].b));
            tg_win_sent(wp);
            if (rng_below(100) < loss_pct)
                continue;
            assert_true(nd < SIM_Q);
            memcpy(dq[nd].b, d, len);
            dq[nd++].len = len;
            if (rng_below(100) < 2 && nd < SIM_Q) {
                dq[nd] = dq[nd - 1];
                nd++;
            }
        }
        /* a little reordering */
        if (nd >= 2 && rng_below(100) < 5) {
            size_t i = (size_t)rng_below(nd - 1);
            struct sim_pkt t = dq[i];

            dq[i] = dq[i + 1];
            dq[i + 1] = t;
        }

        /* receive */
        for (size_t i = 0; i < nd; i++) {
            uint16_t wire = (uint16_t)(dq[i].b[2] << 8 | dq[i].b[3]);
            size_t plen = dq[i].len - TG_HDR;
            bool ack = false, send_ack;
            enum tg_rx_action a = tg_rx_on_data(&r, wire, plen < blksize, &ack);

            assert_int_equal(dq[i].b[1], TG_OP_DATA);
            if (a == TG_RX_ACCEPT) {
                for (size_t k = 0; k < plen; k++)
                    assert_int_equal(dq[i].b[TG_HDR + k], src_byte(got + k));
                got += plen;
                assert_int_equal(tg_blk_wire(r.received, rollover), wire);
            }
            /* as the session does: ACK exactly when told to */
            send_ack = a != TG_RX_IGNORE && ack;
            if (send_ack && rng_below(100) >= loss_pct) {
                assert_true(na < SIM_Q);
                aq[na++] = tg_rx_ack_wire(&r);
            }
        }

        /* ACKs back to the sender */
        for (size_t i = 0; i < na; i++)
            if (tg_win_ack(wp, aq[i]) > 0)
                progress = true;
        assert_true(wp->acked <= r.received);

        /* nothing moved: the retransmission timer fires */
        if (!progress) {
            tg_win_rewind(wp);
            if (++stalled > 200) {
                print_error("stalled: ws %u rollover %u loss %u%%: sender acked %llu, "
                            "receiver has %llu\n", ws, rollover, loss_pct,
                            (unsigned long long)wp->acked,
                            (unsigned long long)r.received);
                fail();
            }
        } else {
            stalled = 0;
        }
    }
    assert_int_equal(got, total);
    assert_int_equal(wp->acked, wp->last);
    assert_int_equal(r.received, wp->last);
    assert_int_equal(wp->last, total / blksize + 1);
    tg_win_free(wp);
}

static void test_simulated_transfers(void **state)
{
    (void)state;
    rng_state = 0x73696d756c617465ULL;
    /* small files, many shapes */
    for (int i = 0; i < 200; i++) {
        unsigned ws = 1 + (unsigned)rng_below(12);
        size_t blksize = 8 + (size_t)rng_below(9);
        uint64_t total = rng_below(40) * blksize + (rng_below(2) ? 0 : rng_below(blksize));

        simulate(ws, blksize, (unsigned)(i & 1), total, (unsigned)rng_below(30));
    }
    /* across the wrap (65535 blocks and more), both policies */
    simulate(8, 8, 0, 8ULL * 65540, 10);
    simulate(5, 8, 1, 8ULL * 65540 + 3, 10);
    simulate(1, 8, 0, 8ULL * 65536, 5);        /* ends on the wrap, exact */
    simulate(1, 8, 1, 8ULL * 65535, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blk_wire),
        cmocka_unit_test(test_blk_wire_successor),
        cmocka_unit_test(test_blk_resolve),
        cmocka_unit_test(test_blk_resolve_random),
        cmocka_unit_test(test_win_init_free),
        cmocka_unit_test(test_win_init_errors),
        cmocka_unit_test(test_win_fill_and_send),
        cmocka_unit_test(test_win_slot_reuse),
        cmocka_unit_test(test_win_sendable_needs_fill),
        cmocka_unit_test(test_win_eof_short),
        cmocka_unit_test(test_win_eof_exact_multiple),
        cmocka_unit_test(test_win_ack_rules),
        cmocka_unit_test(test_win_ack_rules_old_tail),
        cmocka_unit_test(test_win_rewind),
        cmocka_unit_test(test_win_ack_rollover0),
        cmocka_unit_test(test_win_ack_rollover1),
        cmocka_unit_test(test_win_ack_inside_across_wrap),
        cmocka_unit_test(test_win_done),
        cmocka_unit_test(test_rx_init),
        cmocka_unit_test(test_rx_in_order),
        cmocka_unit_test(test_rx_dup),
        cmocka_unit_test(test_rx_gap),
        cmocka_unit_test(test_rx_gap_then_dup),
        cmocka_unit_test(test_rx_dup_reack_liveness),
        cmocka_unit_test(test_rx_rollover0),
        cmocka_unit_test(test_rx_rollover1),
        cmocka_unit_test_teardown(test_simulated_transfers, sim_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
