/* tests/unit/test_netascii.c - netascii conversion: exact bytes, splits at
 * every boundary, and a seeded random round trip (docs/protocol.md,
 * Netascii). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tftpgw/netascii.h"

#define CANARY 0xa5
#define BIG 4096

struct bytes {
    const char *p;
    size_t n;
};
#define B(s) { s, sizeof(s) - 1 }

/* ------------------------------------------------------------------ */
/* Reference model, kept deliberately naive so it is obviously right. */

static size_t ref_encode(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (src[i] == '\n') {
            dst[o++] = '\r';
            dst[o++] = '\n';
        } else if (src[i] == '\r') {
            dst[o++] = '\r';
            dst[o++] = '\0';
        } else {
            dst[o++] = src[i];
        }
    }
    return o;
}

static size_t encode_all(const uint8_t *src, size_t n, uint8_t *dst)
{
    struct tg_na_enc st = {0};
    size_t used = 0;
    size_t o = tg_na_encode(&st, src, n, &used, dst, 2 * n + 1);

    assert_int_equal(used, n);
    assert_false(tg_na_enc_pending(&st));
    return o;
}

static size_t decode_all(const uint8_t *src, size_t n, uint8_t *dst)
{
    struct tg_na_dec st = {0};
    size_t o = tg_na_decode(&st, src, n, dst);

    return o + tg_na_decode_finish(&st, dst + o);
}

/* ------------------------------------------------------------------ */
/* Encoding */

static const struct {
    struct bytes in, out;
} enc_cases[] = {
    { B(""), B("") },
    { B("a"), B("a") },
    { B("\n"), B("\r\n") },
    { B("\r"), B("\r\0") },
    { B("\r\n"), B("\r\0\r\n") },
    { B("\n\r"), B("\r\n\r\0") },
    { B("\n\n"), B("\r\n\r\n") },
    { B("\r\r"), B("\r\0\r\0") },
    { B("\0"), B("\0") },
    { B("\r\0"), B("\r\0\0") },
    { B("a\nb"), B("a\r\nb") },
    { B("line1\nline2\n"), B("line1\r\nline2\r\n") },
    { B("dos\r\nline"), B("dos\r\0\r\nline") },
    { B("\xff\x80\x0d\x0a\x7f"), B("\xff\x80\r\0\r\n\x7f") },
};

static void test_encode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(enc_cases); i++) {
        uint8_t dst[64];
        struct tg_na_enc st = {0};
        size_t used = 99;
        size_t o;

        memset(dst, CANARY, sizeof(dst));
        o = tg_na_encode(&st, (const uint8_t *)enc_cases[i].in.p,
                         enc_cases[i].in.n, &used, dst, sizeof(dst));
        assert_int_equal(used, enc_cases[i].in.n);
        assert_int_equal(o, enc_cases[i].out.n);
        assert_memory_equal(dst, enc_cases[i].out.p, o);
        assert_int_equal(dst[o], CANARY);
        assert_false(tg_na_enc_pending(&st));
    }
}

/* One call with a small dst: exact output, consumed count and held byte. */
static const struct {
    struct bytes in;
    size_t cap;
    struct bytes out;
    size_t consumed;
    bool pending;
    uint8_t held;
} enc_split_cases[] = {
    { B("\n"), 1, B("\r"), 1, true, '\n' },
    { B("\r"), 1, B("\r"), 1, true, '\0' },
    { B("a\n"), 2, B("a\r"), 2, true, '\n' },
    { B("a\nb"), 2, B("a\r"), 2, true, '\n' },
    { B("a\nb"), 3, B("a\r\n"), 2, false, 0 },
    { B("ab"), 1, B("a"), 1, false, 0 },
    { B("\n"), 0, B(""), 0, false, 0 },
    { B("abc"), 0, B(""), 0, false, 0 },
    { B("\r\n"), 3, B("\r\0\r"), 2, true, '\n' },
    { B("\r\n"), 2, B("\r\0"), 1, false, 0 },
};

static void test_encode_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(enc_split_cases); i++) {
        uint8_t dst[16];
        struct tg_na_enc st = {0};
        size_t used = 99;
        size_t o;

        memset(dst, CANARY, sizeof(dst));
        o = tg_na_encode(&st, (const uint8_t *)enc_split_cases[i].in.p,
                         enc_split_cases[i].in.n, &used, dst,
                         enc_split_cases[i].cap);
        assert_int_equal(o, enc_split_cases[i].out.n);
        assert_memory_equal(dst, enc_split_cases[i].out.p, o);
        assert_int_equal(dst[o], CANARY);
        assert_int_equal(used, enc_split_cases[i].consumed);
        assert_int_equal(tg_na_enc_pending(&st), enc_split_cases[i].pending);
        if (enc_split_cases[i].pending)
            assert_int_equal(st.pending, enc_split_cases[i].held);
    }
}

/* The held byte comes out first, even with no source left, and only then
 * new source; a zero-capacity dst keeps holding it. */
static void test_encode_pending_flush(void **state)
{
    struct tg_na_enc st = {0};
    uint8_t dst[8];
    size_t used;
    size_t o;

    (void)state;
    o = tg_na_encode(&st, (const uint8_t *)"\n", 1, &used, dst, 1);
    assert_int_equal(o, 1);
    assert_int_equal(used, 1);
    assert_int_equal(dst[0], '\r');
    assert_true(tg_na_enc_pending(&st));

    /* dstcap 0: nothing written, nothing consumed, still held */
    used = 99;
    o = tg_na_encode(&st, (const uint8_t *)"x", 1, &used, dst, 0);
    assert_int_equal(o, 0);
    assert_int_equal(used, 0);
    assert_true(tg_na_enc_pending(&st));

    /* srclen 0: the held LF still comes out */
    memset(dst, CANARY, sizeof(dst));
    used = 99;
    o = tg_na_encode(&st, NULL, 0, &used, dst, sizeof(dst));
    assert_int_equal(o, 1);
    assert_int_equal(used, 0);
    assert_int_equal(dst[0], '\n');
    assert_int_equal(dst[1], CANARY);
    assert_false(tg_na_enc_pending(&st));

    /* held byte, then the new source, in one call */
    o = tg_na_encode(&st, (const uint8_t *)"\r", 1, &used, dst, 1);
    assert_int_equal(o, 1);
    assert_true(tg_na_enc_pending(&st));
    memset(dst, CANARY, sizeof(dst));
    o = tg_na_encode(&st, (const uint8_t *)"a\n", 2, &used, dst, sizeof(dst));
    assert_int_equal(o, 4);
    assert_int_equal(used, 2);
    assert_memory_equal(dst, "\0a\r\n", 4);
    assert_false(tg_na_enc_pending(&st));

    /* held byte and dstcap 1: only the held byte, no source taken */
    o = tg_na_encode(&st, (const uint8_t *)"\n", 1, &used, dst, 1);
    assert_true(tg_na_enc_pending(&st));
    o = tg_na_encode(&st, (const uint8_t *)"zz", 2, &used, dst, 1);
    assert_int_equal(o, 1);
    assert_int_equal(used, 0);
    assert_int_equal(dst[0], '\n');
    assert_false(tg_na_enc_pending(&st));
}

/* ------------------------------------------------------------------ */
/* Decoding */

static const struct {
    struct bytes in, out;
} dec_cases[] = {
    { B(""), B("") },
    { B("a"), B("a") },
    { B("\r\n"), B("\n") },
    { B("\r\0"), B("\r") },
    { B("\rx"), B("\rx") },
    { B("\r"), B("\r") },           /* held, written by finish */
    { B("\n"), B("\n") },           /* bare LF passes */
    { B("\0"), B("\0") },           /* bare NUL passes */
    { B("\r\r\n"), B("\r\n") },
    { B("\r\r\0"), B("\r\r") },
    { B("\r\r"), B("\r\r") },
    { B("\r\0\0"), B("\r\0") },
    { B("\r\n\r\n"), B("\n\n") },
    { B("a\r\nb\r\0c"), B("a\nb\rc") },
    { B("\r\xff"), B("\r\xff") },
    { B("x\r"), B("x\r") },
};

static void test_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(dec_cases); i++) {
        uint8_t dst[64];
        size_t o;

        memset(dst, CANARY, sizeof(dst));
        o = decode_all((const uint8_t *)dec_cases[i].in.p, dec_cases[i].in.n,
                       dst);
        assert_int_equal(o, dec_cases[i].out.n);
        assert_memory_equal(dst, dec_cases[i].out.p, o);
        assert_int_equal(dst[o], CANARY);
    }
}

/* A CR at the end of one block and the byte after it in the next. */
static void test_decode_across_blocks(void **state)
{
    static const struct {
        struct bytes a, b;
        struct bytes out_a, out_b; /* out_b includes finish */
    } cases[] = {
        { B("x\r"), B("\ny"), B("x"), B("\ny") },
        { B("x\r"), B("\0y"), B("x"), B("\ry") },
        { B("x\r"), B("zy"), B("x"), B("\rzy") },
        { B("x\r"), B("\r"), B("x"), B("\r\r") },
        { B("\r"), B(""), B(""), B("\r") },
        { B("\r"), B("\n"), B(""), B("\n") },
    };

    (void)state;
    for (size_t i = 0; i < TG_ARRAY_LEN(cases); i++) {
        struct tg_na_dec st = {0};
        uint8_t dst[16];
        size_t o;

        memset(dst, CANARY, sizeof(dst));
        o = tg_na_decode(&st, (const uint8_t *)cases[i].a.p, cases[i].a.n, dst);
        assert_int_equal(o, cases[i].out_a.n);
        assert_memory_equal(dst, cases[i].out_a.p, o);
        assert_true(st.cr);
        memset(dst, CANARY, sizeof(dst));
        o = tg_na_decode(&st, (const uint8_t *)cases[i].b.p, cases[i].b.n, dst);
        o += tg_na_decode_finish(&st, dst + o);
        assert_int_equal(o, cases[i].out_b.n);
        assert_memory_equal(dst, cases[i].out_b.p, o);
        assert_int_equal(dst[o], CANARY);
        assert_false(st.cr);
        /* finish is idempotent */
        assert_int_equal(tg_na_decode_finish(&st, dst), 0);
    }
}

/* The worst case the header allows for: a held CR plus len bytes out. */
static void test_decode_capacity(void **state)
{
    struct tg_na_dec st = {0};
    uint8_t dst[8];
    size_t o;

    (void)state;
    o = tg_na_decode(&st, (const uint8_t *)"\r", 1, dst);
    assert_int_equal(o, 0);
    memset(dst, CANARY, sizeof(dst));
    o = tg_na_decode(&st, (const uint8_t *)"abc", 3, dst);
    assert_int_equal(o, 4);
    assert_memory_equal(dst, "\rabc", 4);
    assert_int_equal(dst[4], CANARY);
    assert_int_equal(tg_na_decode(&st, NULL, 0, dst), 0);
}

/* ------------------------------------------------------------------ */
/* Exhaustive: every string of up to 6 bytes over {CR, LF, NUL, 'a'}. */

static const uint8_t alpha[] = { '\r', '\n', '\0', 'a' };
#define EX_MAX 6

static void check_one_exhaustive(const uint8_t *src, size_t n)
{
    uint8_t want[2 * EX_MAX], got[2 * EX_MAX + 4], back[2 * EX_MAX + 4];
    size_t wn = ref_encode(src, n, want);
    size_t gn = encode_all(src, n, got);

    assert_int_equal(gn, wn);
    assert_memory_equal(got, want, wn);
    assert_int_equal(decode_all(got, gn, back), n);
    assert_memory_equal(back, src, n);

    /* Every fixed dst capacity gives the same stream. */
    for (size_t cap = 1; cap <= wn + 1; cap++) {
        struct tg_na_enc st = {0};
        size_t pos = 0, o = 0;
        int guard = 0;

        while (pos < n || tg_na_enc_pending(&st)) {
            size_t used, k;

            k = tg_na_encode(&st, src + pos, n - pos, &used, got + o, cap);
            assert_true(k <= cap);
            assert_true(k > 0);
            pos += used;
            o += k;
            assert_true(++guard < 100);
        }
        assert_int_equal(o, wn);
        assert_memory_equal(got, want, wn);
    }

    /* Decoding the encoded stream split at any point gives the source. */
    for (size_t cut = 0; cut <= wn; cut++) {
        struct tg_na_dec st = {0};
        size_t o = tg_na_decode(&st, want, cut, back);

        o += tg_na_decode(&st, want + cut, wn - cut, back + o);
        o += tg_na_decode_finish(&st, back + o);
        assert_int_equal(o, n);
        assert_memory_equal(back, src, n);
    }

    /* Decoding arbitrary (not only encoded) input split at any point
     * matches decoding it in one go. */
    {
        uint8_t whole[EX_MAX + 1];
        size_t wl = decode_all(src, n, whole);

        for (size_t cut = 0; cut <= n; cut++) {
            struct tg_na_dec st = {0};
            size_t o = tg_na_decode(&st, src, cut, back);

            o += tg_na_decode(&st, src + cut, n - cut, back + o);
            o += tg_na_decode_finish(&st, back + o);
            assert_int_equal(o, wl);
            assert_memory_equal(back, whole, wl);
        }
    }
}

static void test_exhaustive_small(void **state)
{
    uint8_t src[EX_MAX];
    unsigned long count = 0;

    (void)state;
    for (size_t n = 0; n <= EX_MAX; n++) {
        size_t total = 1;

        for (size_t i = 0; i < n; i++)
            total *= TG_ARRAY_LEN(alpha);
        for (size_t code = 0; code < total; code++) {
            size_t c = code;

            for (size_t i = 0; i < n; i++) {
                src[i] = alpha[c % TG_ARRAY_LEN(alpha)];
                c /= TG_ARRAY_LEN(alpha);
            }
            check_one_exhaustive(src, n);
            count++;
        }
    }
    assert_int_equal(count, 1 + 4 + 16 + 64 + 256 + 1024 + 4096);
}

/* ------------------------------------------------------------------ */
/* Randomised round trip with a fixed seed (reproducible). */

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

/* dst capacities: 1 often, small and block-sized otherwise */
static size_t random_cap(void)
{
    switch (rng_below(5)) {
    case 0:
        return 1;
    case 1:
        return 2;
    case 2:
        return 1 + rng_below(8);
    case 3:
        return 512;
    default:
        return 1 + rng_below(1500);
    }
}

static void test_random_round_trip(void **state)
{
    static uint8_t src[BIG], want[2 * BIG], got[2 * BIG + 1], back[BIG + 1];
    static uint8_t dst[1600 + 1];

    (void)state;
    rng_state = 0x7466747067770001ULL;
    for (int iter = 0; iter < 300; iter++) {
        size_t n = rng_below(BIG + 1);
        size_t wn, pos = 0, o = 0, calls = 0;
        struct tg_na_enc enc = {0};
        struct tg_na_dec dec = {0};

        for (size_t i = 0; i < n; i++) {
            switch (rng_below(4)) {
            case 0:
                src[i] = '\r';
                break;
            case 1:
                src[i] = '\n';
                break;
            case 2:
                src[i] = (uint8_t)(rng_below(2) ? '\0' : 'x');
                break;
            default:
                src[i] = (uint8_t)rng();
                break;
            }
        }
        wn = ref_encode(src, n, want);

        while (pos < n || tg_na_enc_pending(&enc)) {
            size_t chunk = rng_below(n - pos + 1);
            size_t cap = random_cap(), used = 0, k;

            if (rng_below(8) == 0)
                chunk = 0;       /* flush-only calls */
            dst[cap] = CANARY;
            k = tg_na_encode(&enc, src + pos, chunk, &used, dst, cap);
            assert_int_equal(dst[cap], CANARY);
            assert_true(k <= cap);
            assert_true(used <= chunk);
            assert_true(o + k <= wn);
            memcpy(got + o, dst, k);
            o += k;
            pos += used;
            assert_true(++calls < 10 * BIG + 100);
        }
        assert_int_equal(o, wn);
        assert_memory_equal(got, want, wn);

        /* decode in random chunks */
        pos = 0;
        o = 0;
        while (pos < wn) {
            size_t chunk = 1 + rng_below(rng_below(2) ? 3 : wn - pos);

            if (chunk > wn - pos)
                chunk = wn - pos;
            o += tg_na_decode(&dec, got + pos, chunk, back + o);
            pos += chunk;
            assert_true(o <= n);
        }
        o += tg_na_decode_finish(&dec, back + o);
        assert_int_equal(o, n);
        assert_memory_equal(back, src, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_table),
        cmocka_unit_test(test_encode_split),
        cmocka_unit_test(test_encode_pending_flush),
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_across_blocks),
        cmocka_unit_test(test_decode_capacity),
        cmocka_unit_test(test_exhaustive_small),
        cmocka_unit_test(test_random_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
