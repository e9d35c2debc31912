/* tests/fuzz/fuzz_packet.c - the datagram codec: parse anything, then
 * rebuild what was parsed and parse it again.
 *
 * The whole input is one datagram, copied into a buffer of exactly its
 * length so ASan catches any read past its end. Whatever parses is rebuilt
 * with the matching builder and must parse back to the same fields; the
 * builders are also driven with the input's bytes as payload, message and
 * capacity so their truncation rules are checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tftpgw/packet.h"

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__,        \
                    __LINE__, #c);                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)

#define BIG 70000 /* larger than any datagram plus a 16-pair request */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t scratch[BIG];

static void check_in(const uint8_t *buf, size_t len, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;

    CHECK(p >= buf && p < buf + len);
    CHECK(memchr(p, '\0', (size_t)(buf + len - p)) != NULL);
}

static void check_pairs(const uint8_t *buf, size_t len,
                        const struct tg_opt_pair *o, size_t n)
{
    CHECK(n <= TG_MAX_OPTS);
    for (size_t i = 0; i < n; i++) {
        check_in(buf, len, o[i].name);
        check_in(buf, len, o[i].value);
        CHECK(o[i].name[0] != '\0');
        CHECK(o[i].value == o[i].name + strlen(o[i].name) + 1);
        if (i > 0)
            CHECK(o[i].name == o[i - 1].value + strlen(o[i - 1].value) + 1);
    }
}

static void same_pairs(const struct tg_opt_pair *a, size_t na,
                       const struct tg_opt_pair *b, size_t nb)
{
    CHECK(na == nb);
    for (size_t i = 0; i < na; i++) {
        CHECK(strcmp(a[i].name, b[i].name) == 0);
        CHECK(strcmp(a[i].value, b[i].value) == 0);
    }
}

/* Parse a built datagram from an exact-size heap copy. */
static void reparse(const uint8_t *built, size_t len, struct tg_packet *out,
                    uint8_t **copy)
{
    *copy = malloc(len ? len : 1);
    CHECK(*copy);
    memcpy(*copy, built, len);
    CHECK(tg_pkt_parse(*copy, len, out) == 0);
}

static void roundtrip(const struct tg_packet *p, const uint8_t *buf, size_t len)
{
    struct tg_packet q;
    uint8_t *copy;
    size_t n;

    switch (p->op) {
    case TG_OP_RRQ:
    case TG_OP_WRQ:
        n = tg_pkt_build_request(scratch, sizeof(scratch), p->op, p->u.req.filename,
                                 p->u.req.mode, p->u.req.opts, p->u.req.nopts);
        CHECK(n >= 4 && n <= len);
        reparse(scratch, n, &q, &copy);
        CHECK(q.op == p->op);
        CHECK(strcmp(q.u.req.filename, p->u.req.filename) == 0);
        CHECK(strcmp(q.u.req.mode, p->u.req.mode) == 0);
        same_pairs(q.u.req.opts, q.u.req.nopts, p->u.req.opts, p->u.req.nopts);
        /* Bytes up to the last kept pair are reproduced exactly. */
        CHECK(memcmp(copy, buf, n) == 0);
        free(copy);
        break;
    case TG_OP_DATA:
        n = tg_pkt_build_data_hdr(scratch, sizeof(scratch), p->u.data.block);
        CHECK(n == TG_HDR);
        memcpy(scratch + n, p->u.data.data, p->u.data.len);
        reparse(scratch, n + p->u.data.len, &q, &copy);
        CHECK(q.op == TG_OP_DATA && q.u.data.block == p->u.data.block);
        CHECK(q.u.data.len == p->u.data.len);
        CHECK(memcmp(q.u.data.data, p->u.data.data, p->u.data.len) == 0);
        CHECK(memcmp(copy, buf, len) == 0);
        free(copy);
        break;
    case TG_OP_ACK:
        n = tg_pkt_build_ack(scratch, sizeof(scratch), p->u.ack.block);
        CHECK(n == TG_HDR);
        reparse(scratch, n, &q, &copy);
        CHECK(q.op == TG_OP_ACK && q.u.ack.block == p->u.ack.block);
        CHECK(memcmp(copy, buf, TG_HDR) == 0);
        free(copy);
        break;
    case TG_OP_ERROR:
        n = tg_pkt_build_error(scratch, sizeof(scratch), p->u.error.code,
                               p->u.error.msg);
        CHECK(n >= TG_HDR + 1 && n < TG_SEGSIZE);
        reparse(scratch, n, &q, &copy);
        CHECK(q.op == TG_OP_ERROR && q.u.error.code == p->u.error.code);
        if (tg_tftp_error_text(p->u.error.code)) {
            /* Codes 1 to 7 carry RFC 1350's words, whatever the message. */
            CHECK(strcmp(q.u.error.msg, tg_tftp_error_text(p->u.error.code)) == 0);
        } else {
            /* The message may be cut to fit 511 bytes, never changed. */
            CHECK(strncmp(q.u.error.msg, p->u.error.msg, strlen(q.u.error.msg)) == 0);
            CHECK(strlen(q.u.error.msg) == strlen(p->u.error.msg) ||
                  n == TG_SEGSIZE - 1);
        }
        free(copy);
        break;
    case TG_OP_OACK:
        n = tg_pkt_build_oack(scratch, sizeof(scratch), p->u.oack.opts, p->u.oack.nopts);
        CHECK(n >= 2 && n <= len);
        reparse(scratch, n, &q, &copy);
        CHECK(q.op == TG_OP_OACK);
        same_pairs(q.u.oack.opts, q.u.oack.nopts, p->u.oack.opts, p->u.oack.nopts);
        CHECK(memcmp(copy, buf, n) == 0);
        free(copy);
        break;
    }
}

/* Builders driven by the raw input: capacity from the first bytes, an
 * ERROR message and DATA payload from the rest. */
static void builders(const uint8_t *data, size_t size)
{
    size_t cap, n, mlen;
    uint16_t v;
    uint8_t *out;
    char *msg;
    struct tg_packet q;
    uint8_t *copy;

    if (size < 3)
        return;
    cap = data[0] % 64 == 63 ? (size_t)data[1] * 4 : data[0] % 64;
    v = (uint16_t)(data[1] << 8 | data[2]);
    out = malloc(cap ? cap : 1);
    CHECK(out);

    n = tg_pkt_build_ack(out, cap, v);
    CHECK(cap < TG_HDR ? n == 0 : n == TG_HDR);
    n = tg_pkt_build_data_hdr(out, cap, v);
    CHECK(cap < TG_HDR ? n == 0 : n == TG_HDR);
    if (n) {
        reparse(out, n, &q, &copy);
        CHECK(q.op == TG_OP_DATA && q.u.data.block == v && q.u.data.len == 0);
        free(copy);
    }

    /* ERROR with the input (up to its first NUL) as message; NULL too. */
    msg = malloc(size - 3 + 1);
    CHECK(msg);
    memcpy(msg, data + 3, size - 3);
    msg[size - 3] = '\0';
    mlen = strlen(msg);
    n = tg_pkt_build_error(out, cap, v, (data[0] & 64) ? NULL : msg);
    if (cap < TG_HDR + 1) {
        CHECK(n == 0);
    } else {
        /* Codes 1 to 7 carry RFC 1350's words, whatever msg was. */
        const char *rfc = tg_tftp_error_text(v);
        const char *want = rfc ? rfc : (data[0] & 64) ? "" : msg;
        size_t wlen = rfc ? strlen(rfc) : (data[0] & 64) ? 0 : mlen;
        size_t limit = cap < TG_SEGSIZE - 1 ? cap : TG_SEGSIZE - 1;
        size_t got;

        CHECK(n >= TG_HDR + 1 && n <= limit);
        reparse(out, n, &q, &copy);
        CHECK(q.op == TG_OP_ERROR && q.u.error.code == v);
        got = strlen(q.u.error.msg);
        CHECK(got == (wlen < limit - TG_HDR - 1 ? wlen : limit - TG_HDR - 1));
        CHECK(memcmp(q.u.error.msg, want, got) == 0);
        free(copy);
    }

    /* A request with the message as filename and "octet": fits or 0. */
    n = tg_pkt_build_request(out, cap, (data[0] & 128) ? TG_OP_WRQ : TG_OP_RRQ,
                             msg, "octet", NULL, 0);
    if (cap >= 2 + mlen + 1 + 6) {
        CHECK(n == 2 + mlen + 1 + 6);
        reparse(out, n, &q, &copy);
        CHECK(strcmp(q.u.req.filename, msg) == 0);
        CHECK(strcmp(q.u.req.mode, "octet") == 0 && q.u.req.nopts == 0);
        free(copy);
    } else {
        CHECK(n == 0);
    }
    /* DATA and ERROR are not requests. */
    CHECK(tg_pkt_build_request(out, cap, TG_OP_DATA, msg, "octet", NULL, 0) == 0);
    free(msg);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tg_packet p;
    uint8_t *buf = malloc(size ? size : 1);
    int rc;
    unsigned op;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    rc = tg_pkt_parse(buf, size, &p);
    op = size >= 2 ? (unsigned)(buf[0] << 8 | buf[1]) : 0;
    CHECK(tg_pkt_opname(op) != NULL);
    if (op < 1 || op > 6 || size < 2) {
        CHECK(rc == TG_EINVAL);
    } else if (op >= TG_OP_DATA && op <= TG_OP_ERROR && size < TG_HDR) {
        CHECK(rc == TG_EINVAL);
    } else if (op == TG_OP_DATA || op == TG_OP_ACK || op == TG_OP_ERROR ||
               op == TG_OP_OACK) {
        CHECK(rc == 0);
    }
    if (rc == 0) {
        CHECK(p.op == op);
        switch (p.op) {
        case TG_OP_RRQ:
        case TG_OP_WRQ:
            check_in(buf, size, p.u.req.filename);
            check_in(buf, size, p.u.req.mode);
            check_pairs(buf, size, p.u.req.opts, p.u.req.nopts);
            break;
        case TG_OP_DATA:
            CHECK(p.u.data.data == buf + TG_HDR && p.u.data.len == size - TG_HDR);
            break;
        case TG_OP_ACK:
            break;
        case TG_OP_ERROR:
            if (p.u.error.msg[0] != '\0')
                check_in(buf, size, p.u.error.msg);
            break;
        case TG_OP_OACK:
            check_pairs(buf, size, p.u.oack.opts, p.u.oack.nopts);
            break;
        }
        roundtrip(&p, buf, size);
    }
    builders(data, size);
    free(buf);
    return 0;
}
