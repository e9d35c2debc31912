/* tests/fuzz/fuzz_request.c - RRQ/WRQ parsing and option negotiation.
 *
 * Input: 8 header bytes, then the datagram after its opcode.
 *   h[0]    bit 0: RRQ/WRQ; bits 1-4: TG_OPT_* refusals
 *   h[1..2] max_blksize, h[3..4] max_windowsize (raw, so out-of-range caps
 *           reach the clamping too), h[5..6] max_window_bytes in KiB,
 *   h[7]    OACK buffer capacity (h[7] * 2, 0..510) for the short-buffer case.
 * Every request is negotiated under the input's caps and under a few fixed
 * server profiles; each result is checked against rules restated here from
 * RFC 2347/2348/2349/7440 rather than taken from options.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tftpgw/options.h"
#include "tftpgw/packet.h"

#define HDR 8
#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const opt_names[4] = { "blksize", "timeout", "tsize", "windowsize" };
static const unsigned opt_bits[4] = { TG_OPT_BLKSIZE, TG_OPT_TIMEOUT, TG_OPT_TSIZE,
                                      TG_OPT_WINDOWSIZE };

/* A parsed string must start inside the datagram and end at a NUL that is
 * inside it too: anything else means the parser read past the buffer. */
static void check_in(const uint8_t *buf, size_t len, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;

    CHECK(p >= buf && p < buf + len);
    CHECK(memchr(p, '\0', (size_t)(buf + len - p)) != NULL);
}

/* Decimal value of a digits-only string; -1 when it is not one, and
 * UINT64_MAX when the digits do not fit (a "very large" request). */
static int ref_number(const char *s, uint64_t *out)
{
    uint64_t v = 0;

    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (UINT64_MAX - 9) / 10)
            v = UINT64_MAX;
        else
            v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return 0;
}

static unsigned clampu(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static unsigned popcount4(unsigned v)
{
    return (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1) + ((v >> 3) & 1);
}

/* First occurrence of option k (case-insensitive) or NULL. */
static const struct tg_opt_pair *first_opt(const struct tg_request *req, int k)
{
    for (size_t i = 0; i < req->nopts; i++)
        if (strcasecmp(req->opts[i].name, opt_names[k]) == 0)
            return &req->opts[i];
    return NULL;
}

static void check_oack(const struct tg_negotiated *n, unsigned cap_byte)
{
    uint8_t full[600];
    size_t len = tg_opt_build_oack(n, full, sizeof(full));
    unsigned expect = n->accepted;
    struct tg_packet pkt;
    uint8_t *exact, *small;
    size_t slen, scap;
    unsigned seen = 0;

    if (n->tsize < 0)
        expect &= ~TG_OPT_TSIZE;
    if (expect == 0) {
        CHECK(len == 0);    /* never an empty OACK */
        return;
    }
    CHECK(len > 2 && len <= sizeof(full));
    /* Re-parse from an exact-size copy so ASan sees any overread. */
    exact = malloc(len);
    CHECK(exact);
    memcpy(exact, full, len);
    CHECK(tg_pkt_parse(exact, len, &pkt) == 0);
    CHECK(pkt.op == TG_OP_OACK);
    CHECK(pkt.u.oack.nopts == popcount4(expect));
    for (size_t i = 0; i < pkt.u.oack.nopts; i++) {
        const struct tg_opt_pair *o = &pkt.u.oack.opts[i];
        uint64_t v;
        int k;

        check_in(exact, len, o->name);
        check_in(exact, len, o->value);
        for (k = 0; k < 4; k++)
            if (strcmp(o->name, opt_names[k]) == 0)
                break;
        CHECK(k < 4);
        CHECK(!(seen & opt_bits[k]));   /* each option acknowledged once */
        seen |= opt_bits[k];
        CHECK(ref_number(o->value, &v) == 0);
        switch (opt_bits[k]) {
        case TG_OPT_BLKSIZE: CHECK(v == n->blksize); break;
        case TG_OPT_TIMEOUT: CHECK(v == n->timeout_s); break;
        case TG_OPT_TSIZE: CHECK(v == (uint64_t)n->tsize); break;
        default: CHECK(v == n->windowsize); break;
        }
    }
    CHECK(seen == expect);
    free(exact);

    /* A buffer too short for the whole OACK gives 0, never a cut one. */
    scap = cap_byte * 2u;
    small = malloc(scap ? scap : 1);
    CHECK(small);
    slen = tg_opt_build_oack(n, small, scap);
    if (scap >= len) {
        CHECK(slen == len);
        CHECK(memcmp(small, full, len) == 0);
    } else {
        CHECK(slen == 0);
    }
    free(small);
}

static void check_negotiation(enum tg_opcode op, const struct tg_request *req,
                              const struct tg_opt_limits *lim, int64_t rrq_size,
                              unsigned cap_byte)
{
    struct tg_negotiated n;
    struct tg_error err;
    unsigned bcap = clampu(lim->max_blksize, TG_BLKSIZE_MIN, TG_BLKSIZE_MAX);
    unsigned wcap = clampu(lim->max_windowsize, 1, 65535);
    bool octet = strcasecmp(req->mode, "octet") == 0;
    bool netascii = strcasecmp(req->mode, "netascii") == 0;
    int rc;

    memset(&err, 0, sizeof(err));
    rc = tg_opt_negotiate(op, req, lim, &n, &err);
    if (!octet && !netascii) {
        CHECK(rc == TG_EINVAL);
        CHECK(err.code == TG_TFTP_EBADOP);
        CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);
        return;
    }
    CHECK(rc == 0);
    CHECK(n.op == op);
    CHECK(n.mode == (octet ? TG_MODE_OCTET : TG_MODE_NETASCII));
    CHECK((n.accepted & ~n.requested) == 0);
    CHECK((n.accepted & lim->refuse) == 0);
    CHECK((n.requested & ~0xfu) == 0);

    for (int k = 0; k < 4; k++) {
        const struct tg_opt_pair *o = first_opt(req, k);
        unsigned bit = opt_bits[k];
        bool acc = (n.accepted & bit) != 0;
        uint64_t v = 0;
        bool num;

        CHECK(((n.requested & bit) != 0) == (o != NULL));
        if (!o || (lim->refuse & bit)) {
            CHECK(!acc);
            continue;
        }
        /* Only the first occurrence decides: a later duplicate can neither
         * add an option nor change its value. */
        num = ref_number(o->value, &v) == 0;
        switch (bit) {
        case TG_OPT_BLKSIZE:
            CHECK(acc == (num && v >= TG_BLKSIZE_MIN));
            break;
        case TG_OPT_TIMEOUT:
            CHECK(acc == (num && v >= 1 && v <= 255));
            if (acc)
                CHECK(n.timeout_s == v);
            break;
        case TG_OPT_TSIZE:
            CHECK(acc == (num && netascii == false && v <= (uint64_t)INT64_MAX));
            if (acc && op == TG_OP_WRQ)
                CHECK(n.tsize == (int64_t)v);
            break;
        default:
            CHECK(acc == (num && v >= 1));
            break;
        }
        if (acc && bit == TG_OPT_BLKSIZE)
            CHECK(n.blksize == (v > bcap ? bcap : v));
        if (acc && bit == TG_OPT_WINDOWSIZE) {
            uint64_t want = v > wcap ? wcap : v;

            if (lim->max_window_bytes) {
                uint64_t fit = lim->max_window_bytes / n.blksize;

                if (fit < 1)
                    fit = 1;
                if (want > fit)
                    want = fit;
            }
            CHECK(n.windowsize == want);
        }
    }
    if (n.accepted & TG_OPT_BLKSIZE)
        CHECK(n.blksize >= TG_BLKSIZE_MIN && n.blksize <= bcap);
    else
        CHECK(n.blksize == TG_SEGSIZE);
    if (n.accepted & TG_OPT_WINDOWSIZE)
        CHECK(n.windowsize >= 1 && n.windowsize <= wcap);
    else
        CHECK(n.windowsize == 1);
    if (n.accepted & TG_OPT_TIMEOUT)
        CHECK(n.timeout_s >= 1 && n.timeout_s <= 255);
    else
        CHECK(n.timeout_s == 0);
    if (netascii)
        CHECK(!(n.accepted & TG_OPT_TSIZE));
    if (op == TG_OP_RRQ || !(n.accepted & TG_OPT_TSIZE))
        CHECK(n.tsize == -1);

    check_oack(&n, cap_byte);
    if (op == TG_OP_RRQ && (n.accepted & TG_OPT_TSIZE)) {
        /* The server fills in the size before it builds the OACK. */
        n.tsize = rrq_size;
        check_oack(&n, cap_byte);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct tg_opt_limits profiles[] = {
        { TG_BLKSIZE_MAX, 65535, 0, 0 },                      /* no caps */
        { 1468, 64, 4u << 20, 0 },                            /* the defaults */
        { 512, 1, 0, TG_OPT_TSIZE },                          /* RFC 1350-ish */
        { 8, 65535, 100, TG_OPT_TIMEOUT | TG_OPT_WINDOWSIZE }, /* tiny */
    };
    struct tg_opt_limits lim;
    struct tg_packet pkt;
    enum tg_opcode op;
    uint8_t *buf;
    size_t len;
    int64_t rrq_size;
    int rc;

    if (size < HDR)
        return 0;
    op = (data[0] & 1) ? TG_OP_WRQ : TG_OP_RRQ;
    lim.refuse = (data[0] >> 1) & 0xfu;
    lim.max_blksize = (unsigned)(data[1] << 8 | data[2]);
    lim.max_windowsize = (unsigned)(data[3] << 8 | data[4]);
    lim.max_window_bytes = (size_t)(data[5] << 8 | data[6]) * 1024u;
    rrq_size = (int64_t)size * 977; /* any non-negative size will do */

    /* The datagram as it would arrive: opcode, then the fuzzer's bytes, in
     * a buffer of exactly its length. */
    len = 2 + size - HDR;
    buf = malloc(len);
    if (!buf)
        return 0;
    buf[0] = 0;
    buf[1] = (uint8_t)op;
    memcpy(buf + 2, data + HDR, size - HDR);

    rc = tg_pkt_parse(buf, len, &pkt);
    /* A request is well formed exactly when filename and mode both end in
     * a NUL inside the datagram. */
    {
        const uint8_t *nul1 = memchr(buf + 2, '\0', len - 2);
        const uint8_t *nul2 = nul1 ? memchr(nul1 + 1, '\0',
                                            (size_t)(buf + len - nul1 - 1)) : NULL;

        CHECK((rc == 0) == (nul2 != NULL));
    }
    if (rc == 0) {
        const struct tg_request *req = &pkt.u.req;

        CHECK(pkt.op == op);
        CHECK((const uint8_t *)req->filename == buf + 2);
        check_in(buf, len, req->filename);
        check_in(buf, len, req->mode);
        CHECK(req->mode == req->filename + strlen(req->filename) + 1);
        CHECK(req->nopts <= TG_MAX_OPTS);
        for (size_t i = 0; i < req->nopts; i++) {
            check_in(buf, len, req->opts[i].name);
            check_in(buf, len, req->opts[i].value);
            CHECK(req->opts[i].name[0] != '\0');
            CHECK(req->opts[i].value == req->opts[i].name +
                                        strlen(req->opts[i].name) + 1);
        }
        check_negotiation(op, req, &lim, rrq_size, data[7]);
        for (size_t p = 0; p < TG_ARRAY_LEN(profiles); p++)
            check_negotiation(op, req, &profiles[p], rrq_size, data[7]);
    }
    free(buf);
    return 0;
}
