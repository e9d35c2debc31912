/* tests/fuzz/fuzz_netascii.c - streaming netascii in both directions.
 *
 * Input: 8 schedule bytes, then the payload. The schedule picks the source
 * chunk sizes and destination capacities of each streaming call, so pairs
 * are torn at every place the fuzzer can think of. Checked:
 *  - chunked encoding equals the one-shot RFC 764 expansion (LF -> CR LF,
 *    CR -> CR NUL), whatever the chunking and however small dst is;
 *  - decode(encode(x)) == x, with chunks split at schedule points and,
 *    separately, right after every CR (the CR-at-block-end case of
 *    docs/protocol.md, Netascii);
 *  - decoding arbitrary bytes in chunks equals decoding them in one go and
 *    equals the rule "CR LF -> LF, CR NUL -> CR, other CR kept". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftpgw/netascii.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define SCHED 8

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sched {
    const uint8_t *b;
    size_t i;
};

static unsigned next(struct sched *s)
{
    return s->b[s->i++ % SCHED];
}

/* One-shot expansion, written from the RFC rather than from netascii.c. */
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

static size_t ref_decode(const uint8_t *src, size_t n, uint8_t *dst)
{
    size_t o = 0, i = 0;

    while (i < n) {
        if (src[i] == '\r' && i + 1 < n && src[i + 1] == '\n') {
            dst[o++] = '\n';
            i += 2;
        } else if (src[i] == '\r' && i + 1 < n && src[i + 1] == '\0') {
            dst[o++] = '\r';
            i += 2;
        } else {
            dst[o++] = src[i++];
        }
    }
    return o;
}

/* Stream src through the encoder with schedule-chosen source chunks and
 * destination capacities; every dst is an exact-size heap block. */
static size_t stream_encode(struct sched *s, const uint8_t *src, size_t n,
                            uint8_t *out)
{
    struct tg_na_enc st;
    size_t in = 0, o = 0, rounds = 0;

    memset(&st, 0, sizeof(st));
    while (in < n || tg_na_enc_pending(&st)) {
        size_t chunk = next(s) % 17;      /* 0 is allowed: flushes a held byte */
        size_t cap = 1 + next(s) % 9;
        uint8_t *dst = malloc(cap);
        size_t used = 0, w;
        bool held = tg_na_enc_pending(&st);

        CHECK(dst);
        if (chunk == 0 && !held)
            chunk = 1;
        if (chunk > n - in)
            chunk = n - in;
        w = tg_na_encode(&st, src + in, chunk, &used, dst, cap);
        CHECK(w <= cap && used <= chunk);
        /* Progress: a held byte or at least one source byte goes out. */
        CHECK(w > 0 || (chunk == 0 && !held));
        memcpy(out + o, dst, w);
        free(dst);
        o += w;
        in += used;
        CHECK(++rounds <= 4 * n + 64);
    }
    return o;
}

static size_t stream_decode(const uint8_t *src, size_t n, const size_t *cuts,
                            size_t ncuts, uint8_t *out)
{
    struct tg_na_dec st;
    size_t from = 0, o = 0;
    uint8_t *dst;

    memset(&st, 0, sizeof(st));
    for (size_t k = 0; k <= ncuts; k++) {
        size_t to = k < ncuts ? cuts[k] : n;
        size_t w;

        if (to < from)
            to = from;
        if (to > n)
            to = n;
        /* The documented need: len + 1 bytes, and not one more. */
        dst = malloc(to - from + 1);
        CHECK(dst);
        w = tg_na_decode(&st, src + from, to - from, dst);
        CHECK(w <= to - from + 1);
        memcpy(out + o, dst, w);
        free(dst);
        o += w;
        from = to;
    }
    dst = malloc(1);
    CHECK(dst);
    o += tg_na_decode_finish(&st, dst) ? (out[o] = dst[0], 1) : 0;
    free(dst);
    /* finish leaves the state clean: a second call writes nothing. */
    CHECK(tg_na_decode_finish(&st, out + o) == 0);
    return o;
}

static size_t sched_cuts(struct sched *s, size_t n, size_t *cuts, size_t max)
{
    size_t k = 0, at = 0;

    while (k < max && at < n) {
        at += next(s) % 13;
        cuts[k++] = at;
    }
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sched s;
    const uint8_t *src;
    size_t n, enc_len, ref_len, dec_len, ncuts;
    uint8_t *enc, *ref, *dec;
    size_t *cuts;

    if (size < SCHED || size > 65536)
        return 0;
    s.b = data;
    s.i = 0;
    src = data + SCHED;
    n = size - SCHED;

    enc = malloc(2 * n + 1);
    ref = malloc(2 * n + 1);
    dec = malloc(2 * n + 2);
    cuts = malloc((2 * n + 1) * sizeof(*cuts));
    CHECK(enc && ref && dec && cuts);

    /* Encoding, chunked vs one shot. */
    enc_len = stream_encode(&s, src, n, enc);
    ref_len = ref_encode(src, n, ref);
    CHECK(enc_len == ref_len);
    CHECK(memcmp(enc, ref, enc_len) == 0);

    /* decode(encode(x)) == x, cut at schedule points... */
    ncuts = sched_cuts(&s, enc_len, cuts, 2 * n + 1);
    dec_len = stream_decode(enc, enc_len, cuts, ncuts, dec);
    CHECK(dec_len == n && memcmp(dec, src, n) == 0);
    /* ...and right after every CR, so each pair is torn across calls. */
    ncuts = 0;
    for (size_t i = 0; i < enc_len; i++)
        if (enc[i] == '\r')
            cuts[ncuts++] = i + 1;
    dec_len = stream_decode(enc, enc_len, cuts, ncuts, dec);
    CHECK(dec_len == n && memcmp(dec, src, n) == 0);

    /* The payload taken as received netascii: chunked == one shot == rule. */
    ref_len = ref_decode(src, n, ref);
    dec_len = stream_decode(src, n, NULL, 0, dec);
    CHECK(dec_len == ref_len && memcmp(dec, ref, ref_len) == 0);
    ncuts = sched_cuts(&s, n, cuts, 2 * n + 1);
    dec_len = stream_decode(src, n, cuts, ncuts, dec);
    CHECK(dec_len == ref_len && memcmp(dec, ref, ref_len) == 0);
    ncuts = 0;
    for (size_t i = 0; i < n; i++)
        if (src[i] == '\r')
            cuts[ncuts++] = i + 1;
    dec_len = stream_decode(src, n, cuts, ncuts, dec);
    CHECK(dec_len == ref_len && memcmp(dec, ref, ref_len) == 0);

    free(enc);
    free(ref);
    free(dec);
    free(cuts);
    return 0;
}
