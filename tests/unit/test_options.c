/* tests/unit/test_options.c - option negotiation and OACK bytes. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/options.h"

#define B TG_OPT_BLKSIZE
#define T TG_OPT_TIMEOUT
#define S TG_OPT_TSIZE
#define W TG_OPT_WINDOWSIZE

/* max_blksize, max_windowsize, max_window_bytes, refuse */
#define LIM_DEF { 1468, 64, 0, 0 }
#define LIM_WIDE { TG_BLKSIZE_MAX, 65535, 0, 0 }

#define DG(s) (const uint8_t *)(s), (sizeof(s) - 1)

static void fill_request(struct tg_request *req, const char *mode,
                         const char *const *opts, size_t nopts)
{
    size_t i;

    memset(req, 0, sizeof(*req));
    req->filename = "f";
    req->mode = mode;
    req->nopts = nopts;
    for (i = 0; i < nopts; i++) {
        req->opts[i].name = opts[2 * i];
        req->opts[i].value = opts[2 * i + 1];
    }
}

/* ---- tg_parse_u64 ----------------------------------------------------- */

static const struct {
    const char *s;
    uint64_t max;
    int rc;
    uint64_t v;
} u64_cases[] = {
    { "0", UINT64_MAX, 0, 0 },
    { "1", UINT64_MAX, 0, 1 },
    { "007", UINT64_MAX, 0, 7 },
    { "1468", 65464, 0, 1468 },
    { "255", 255, 0, 255 },
    { "256", 255, TG_ERANGE, 0 },
    { "0", 0, 0, 0 },
    { "5", 0, TG_ERANGE, 0 },
    { "9223372036854775807", UINT64_MAX, 0, INT64_MAX },
    { "9223372036854775808", UINT64_MAX, TG_ERANGE, 0 },     /* int64 + 1 */
    { "18446744073709551615", UINT64_MAX, TG_ERANGE, 0 },    /* uint64 max */
    { "18446744073709551616", UINT64_MAX, TG_ERANGE, 0 },    /* 2^64 */
    { "99999999999999999999999999", UINT64_MAX, TG_ERANGE, 0 },
    { "99999999999999999999999999x", UINT64_MAX, TG_EINVAL, 0 },
    { "", UINT64_MAX, TG_EINVAL, 0 },
    { NULL, UINT64_MAX, TG_EINVAL, 0 },
    { "-1", UINT64_MAX, TG_EINVAL, 0 },
    { "+1", UINT64_MAX, TG_EINVAL, 0 },
    { " 1", UINT64_MAX, TG_EINVAL, 0 },
    { "1 ", UINT64_MAX, TG_EINVAL, 0 },
    { "12a", UINT64_MAX, TG_EINVAL, 0 },
    { "0x10", UINT64_MAX, TG_EINVAL, 0 },
    { "1e3", UINT64_MAX, TG_EINVAL, 0 },
    { "1.5", UINT64_MAX, TG_EINVAL, 0 },
};

static void test_parse_u64(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(u64_cases); i++) {
        uint64_t v = 0xdeadbeef;
        int rc = tg_parse_u64(u64_cases[i].s, u64_cases[i].max, &v);

        print_message("case: \"%s\" max %" PRIu64 "\n",
                      u64_cases[i].s ? u64_cases[i].s : "(null)",
                      u64_cases[i].max);
        assert_int_equal(rc, u64_cases[i].rc);
        /* The output is written only on success. */
        assert_true(v == (rc == 0 ? u64_cases[i].v : 0xdeadbeef));
    }
}

/* ---- mode ------------------------------------------------------------- */

static const struct {
    const char *mode;
    int rc;
    enum tg_mode want;
    const char *msg;
} modes[] = {
    { "octet", 0, TG_MODE_OCTET, NULL },
    { "OCTET", 0, TG_MODE_OCTET, NULL },
    { "OcTeT", 0, TG_MODE_OCTET, NULL },
    { "netascii", 0, TG_MODE_NETASCII, NULL },
    { "NETASCII", 0, TG_MODE_NETASCII, NULL },
    { "NetAscii", 0, TG_MODE_NETASCII, NULL },
    { "mail", TG_EINVAL, 0, "mail mode is not supported" },
    { "MAIL", TG_EINVAL, 0, "mail mode is not supported" },
    { "binary", TG_EINVAL, 0, "unknown transfer mode" },
    { "image", TG_EINVAL, 0, "unknown transfer mode" },
    { "", TG_EINVAL, 0, "unknown transfer mode" },
    { "octet ", TG_EINVAL, 0, "unknown transfer mode" },
    { "octets", TG_EINVAL, 0, "unknown transfer mode" },
    { "net", TG_EINVAL, 0, "unknown transfer mode" },
};

static void test_modes(void **state)
{
    const struct tg_opt_limits lim = LIM_DEF;
    size_t i;
    unsigned op;

    (void)state;
    for (op = TG_OP_RRQ; op <= TG_OP_WRQ; op++) {
        for (i = 0; i < TG_ARRAY_LEN(modes); i++) {
            struct tg_request req;
            struct tg_negotiated n;
            struct tg_error err = { 0xffff, "untouched" };
            int rc;

            print_message("case: %s mode \"%s\"\n", tg_pkt_opname(op),
                          modes[i].mode);
            fill_request(&req, modes[i].mode, NULL, 0);
            rc = tg_opt_negotiate((enum tg_opcode)op, &req, &lim, &n, &err);
            assert_int_equal(rc, modes[i].rc);
            if (rc == 0) {
                assert_int_equal(n.mode, modes[i].want);
                assert_int_equal(n.op, op);
                assert_int_equal(err.code, 0xffff);
            } else {
                assert_int_equal(err.code, TG_TFTP_EBADOP);
                assert_string_equal(err.msg, modes[i].msg);
            }
        }
    }
}

static void test_not_a_request(void **state)
{
    const struct tg_opt_limits lim = LIM_DEF;
    struct tg_request req;
    struct tg_negotiated n;
    struct tg_error err;

    (void)state;
    fill_request(&req, "octet", NULL, 0);
    assert_int_equal(tg_opt_negotiate(TG_OP_DATA, &req, &lim, &n, &err),
                     TG_EINVAL);
    assert_int_equal(err.code, TG_TFTP_EBADOP);
    assert_int_equal(tg_opt_negotiate(TG_OP_OACK, &req, &lim, &n, &err),
                     TG_EINVAL);
    assert_int_equal(err.code, TG_TFTP_EBADOP);
}

/* ---- the negotiation table -------------------------------------------- */

struct neg_case {
    const char *what;
    enum tg_opcode op;
    const char *mode;
    size_t nopts;
    const char *opts[2 * 6];
    struct tg_opt_limits lim;
    unsigned requested;
    unsigned accepted;
    unsigned blksize;
    unsigned windowsize;
    unsigned timeout_s;
    int64_t tsize;
};

#define RRQ TG_OP_RRQ
#define WRQ TG_OP_WRQ

static const struct neg_case neg_cases[] = {
    /* what, op, mode, nopts, opts, limits,
     * requested, accepted, blksize, windowsize, timeout, tsize */
    { "no options", RRQ, "octet", 0, { NULL }, LIM_DEF,
      0, 0, 512, 1, 0, -1 },

    /* blksize: RFC 2348 */
    { "blksize 7 left out", RRQ, "octet", 1, { "blksize", "7" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize 0 left out", RRQ, "octet", 1, { "blksize", "0" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize 8 minimum", RRQ, "octet", 1, { "blksize", "8" }, LIM_DEF,
      B, B, 8, 1, 0, -1 },
    { "blksize 512", WRQ, "octet", 1, { "blksize", "512" }, LIM_DEF,
      B, B, 512, 1, 0, -1 },
    { "blksize 1468 equals cap", RRQ, "octet", 1, { "blksize", "1468" }, LIM_DEF,
      B, B, 1468, 1, 0, -1 },
    { "blksize 1469 capped", RRQ, "octet", 1, { "blksize", "1469" }, LIM_DEF,
      B, B, 1468, 1, 0, -1 },
    { "blksize 65464 capped", RRQ, "octet", 1, { "blksize", "65464" }, LIM_DEF,
      B, B, 1468, 1, 0, -1 },
    { "blksize 65465 capped", RRQ, "octet", 1, { "blksize", "65465" }, LIM_DEF,
      B, B, 1468, 1, 0, -1 },
    { "blksize 65464 no cap", RRQ, "octet", 1, { "blksize", "65464" }, LIM_WIDE,
      B, B, 65464, 1, 0, -1 },
    { "blksize 65465 answered with RFC max", RRQ, "octet", 1,
      { "blksize", "65465" }, LIM_WIDE, B, B, 65464, 1, 0, -1 },
    { "blksize beyond 64 bits capped", RRQ, "octet", 1,
      { "blksize", "99999999999999999999999" }, LIM_DEF, B, B, 1468, 1, 0, -1 },
    { "blksize leading zeros", RRQ, "octet", 1, { "blksize", "01024" }, LIM_DEF,
      B, B, 1024, 1, 0, -1 },
    { "blksize empty", RRQ, "octet", 1, { "blksize", "" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize leading space", RRQ, "octet", 1, { "blksize", " 1024" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize trailing space", RRQ, "octet", 1, { "blksize", "1024 " }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize plus sign", RRQ, "octet", 1, { "blksize", "+1024" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize negative", RRQ, "octet", 1, { "blksize", "-8" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },
    { "blksize hex", RRQ, "octet", 1, { "blksize", "0x400" }, LIM_DEF,
      B, 0, 512, 1, 0, -1 },

    /* timeout: RFC 2349, Timeout Interval Option Specification */
    { "timeout 0 left out", RRQ, "octet", 1, { "timeout", "0" }, LIM_DEF,
      T, 0, 512, 1, 0, -1 },
    { "timeout 1", RRQ, "octet", 1, { "timeout", "1" }, LIM_DEF,
      T, T, 512, 1, 1, -1 },
    { "timeout 255", WRQ, "octet", 1, { "timeout", "255" }, LIM_DEF,
      T, T, 512, 1, 255, -1 },
    { "timeout 256 left out (no counter-offer)", RRQ, "octet", 1,
      { "timeout", "256" }, LIM_DEF, T, 0, 512, 1, 0, -1 },
    { "timeout huge left out", RRQ, "octet", 1,
      { "timeout", "99999999999999999999" }, LIM_DEF, T, 0, 512, 1, 0, -1 },
    { "timeout negative", RRQ, "octet", 1, { "timeout", "-1" }, LIM_DEF,
      T, 0, 512, 1, 0, -1 },
    { "timeout fraction", RRQ, "octet", 1, { "timeout", "1.5" }, LIM_DEF,
      T, 0, 512, 1, 0, -1 },
    { "timeout empty", RRQ, "octet", 1, { "timeout", "" }, LIM_DEF,
      T, 0, 512, 1, 0, -1 },
    { "timeout 010 is ten", RRQ, "octet", 1, { "timeout", "010" }, LIM_DEF,
      T, T, 512, 1, 10, -1 },

    /* windowsize: RFC 7440 section 3 */
    { "windowsize 0 left out", RRQ, "octet", 1, { "windowsize", "0" }, LIM_DEF,
      W, 0, 512, 1, 0, -1 },
    { "windowsize 1", RRQ, "octet", 1, { "windowsize", "1" }, LIM_DEF,
      W, W, 512, 1, 0, -1 },
    { "windowsize 16", WRQ, "octet", 1, { "windowsize", "16" }, LIM_DEF,
      W, W, 512, 16, 0, -1 },
    { "windowsize 65535 no cap", RRQ, "octet", 1, { "windowsize", "65535" },
      LIM_WIDE, W, W, 512, 65535, 0, -1 },
    { "windowsize 65535 capped", RRQ, "octet", 1, { "windowsize", "65535" },
      LIM_DEF, W, W, 512, 64, 0, -1 },
    { "windowsize 65536 capped", RRQ, "octet", 1, { "windowsize", "65536" },
      LIM_WIDE, W, W, 512, 65535, 0, -1 },
    { "windowsize 2^32 capped", RRQ, "octet", 1, { "windowsize", "4294967296" },
      LIM_DEF, W, W, 512, 64, 0, -1 },
    { "windowsize beyond 64 bits capped", RRQ, "octet", 1,
      { "windowsize", "99999999999999999999999" }, LIM_DEF, W, W, 512, 64, 0, -1 },
    { "windowsize negative", RRQ, "octet", 1, { "windowsize", "-1" }, LIM_DEF,
      W, 0, 512, 1, 0, -1 },
    { "windowsize empty", RRQ, "octet", 1, { "windowsize", "" }, LIM_DEF,
      W, 0, 512, 1, 0, -1 },

    /* max_window_bytes: windowsize * blksize must fit */
    { "window bytes lower windowsize", RRQ, "octet", 2,
      { "blksize", "1468", "windowsize", "64" }, { 1468, 64, 65536, 0 },
      B | W, B | W, 1468, 44, 0, -1 },
    { "window bytes: order does not matter", RRQ, "octet", 2,
      { "windowsize", "64", "blksize", "1468" }, { 1468, 64, 65536, 0 },
      B | W, B | W, 1468, 44, 0, -1 },
    { "window bytes exact fit kept", RRQ, "octet", 2,
      { "blksize", "1024", "windowsize", "4" }, { 1468, 64, 4096, 0 },
      B | W, B | W, 1024, 4, 0, -1 },
    { "window bytes never raise", RRQ, "octet", 2,
      { "blksize", "1468", "windowsize", "8" }, { 1468, 64, 65536, 0 },
      B | W, B | W, 1468, 8, 0, -1 },
    { "window bytes with default 512 blocks", RRQ, "octet", 1,
      { "windowsize", "64" }, { 1468, 64, 4096, 0 }, W, W, 512, 8, 0, -1 },
    { "window bytes after a refused blksize", RRQ, "octet", 2,
      { "blksize", "7", "windowsize", "64" }, { 1468, 64, 4096, 0 },
      B | W, W, 512, 8, 0, -1 },
    { "window bytes below one block leave 1", RRQ, "octet", 2,
      { "blksize", "1468", "windowsize", "4" }, { 1468, 64, 1000, 0 },
      B | W, B | W, 1468, 1, 0, -1 },

    /* tsize: RFC 2349, Transfer Size Option Specification;
     * docs/protocol.md, Transfer size */
    { "RRQ tsize 0", RRQ, "octet", 1, { "tsize", "0" }, LIM_DEF,
      S, S, 512, 1, 0, -1 },
    { "RRQ tsize non-zero still a question", RRQ, "octet", 1,
      { "tsize", "1048576" }, LIM_DEF, S, S, 512, 1, 0, -1 },
    { "RRQ tsize -1", RRQ, "octet", 1, { "tsize", "-1" }, LIM_DEF,
      S, 0, 512, 1, 0, -1 },
    { "RRQ tsize 2^64", RRQ, "octet", 1, { "tsize", "18446744073709551616" },
      LIM_DEF, S, 0, 512, 1, 0, -1 },
    { "RRQ tsize 12a", RRQ, "octet", 1, { "tsize", "12a" }, LIM_DEF,
      S, 0, 512, 1, 0, -1 },
    { "WRQ tsize 0", WRQ, "octet", 1, { "tsize", "0" }, LIM_DEF,
      S, S, 512, 1, 0, 0 },
    { "WRQ tsize echoed", WRQ, "octet", 1, { "tsize", "673312" }, LIM_DEF,
      S, S, 512, 1, 0, 673312 },
    { "WRQ tsize int64 max", WRQ, "octet", 1, { "tsize", "9223372036854775807" },
      LIM_DEF, S, S, 512, 1, 0, INT64_MAX },
    { "WRQ tsize int64 max + 1", WRQ, "octet", 1,
      { "tsize", "9223372036854775808" }, LIM_DEF, S, 0, 512, 1, 0, -1 },
    { "WRQ tsize 2^64", WRQ, "octet", 1, { "tsize", "18446744073709551616" },
      LIM_DEF, S, 0, 512, 1, 0, -1 },
    { "WRQ tsize -1", WRQ, "octet", 1, { "tsize", "-1" }, LIM_DEF,
      S, 0, 512, 1, 0, -1 },
    { "WRQ tsize 12a", WRQ, "octet", 1, { "tsize", "12a" }, LIM_DEF,
      S, 0, 512, 1, 0, -1 },
    { "netascii RRQ tsize never accepted", RRQ, "netascii", 1,
      { "tsize", "0" }, LIM_DEF, S, 0, 512, 1, 0, -1 },
    { "netascii WRQ tsize never accepted", WRQ, "NETASCII", 1,
      { "tsize", "100" }, LIM_DEF, S, 0, 512, 1, 0, -1 },
    { "netascii keeps the other options", RRQ, "netascii", 3,
      { "tsize", "0", "blksize", "1024", "timeout", "2" }, LIM_DEF,
      S | B | T, B | T, 1024, 1, 2, -1 },

    /* Names case-insensitive (RFC 2347, Packet Formats), first of a repeat
     * wins (docs/protocol.md, Options order and repeats) */
    { "mixed-case names", WRQ, "octet", 4,
      { "BlkSize", "1024", "TIMEOUT", "3", "TSize", "77", "WindowSize", "8" },
      LIM_DEF, B | T | S | W, B | T | S | W, 1024, 8, 3, 77 },
    { "duplicate blksize: first wins", RRQ, "octet", 2,
      { "blksize", "1024", "blksize", "1200" }, LIM_DEF, B, B, 1024, 1, 0, -1 },
    { "duplicate blksize: invalid first still wins", RRQ, "octet", 2,
      { "blksize", "7", "BLKSIZE", "1024" }, LIM_DEF, B, 0, 512, 1, 0, -1 },
    { "duplicate tsize: first wins", WRQ, "octet", 2,
      { "tsize", "10", "TSIZE", "20" }, LIM_DEF, S, S, 512, 1, 0, 10 },
    { "duplicate timeout: first wins", RRQ, "octet", 2,
      { "timeout", "5", "Timeout", "6" }, LIM_DEF, T, T, 512, 1, 5, -1 },
    { "duplicate windowsize: first wins", RRQ, "octet", 2,
      { "windowsize", "4", "windowsize", "0" }, LIM_DEF, W, W, 512, 4, 0, -1 },

    /* Unknown options ignored, not refused (RFC 2347, Negotiation
     * Protocol) */
    { "unknown options ignored", RRQ, "octet", 5,
      { "rollover", "0", "multicast", "", "blksize2", "1024", "utimeout",
        "10000", "blksiz", "512" },
      LIM_DEF, 0, 0, 512, 1, 0, -1 },
    { "unknown options around a known one", RRQ, "octet", 3,
      { "x", "y", "blksize", "1400", "z", "" }, LIM_DEF, B, B, 1400, 1, 0, -1 },

    /* Refusals are requested but never accepted (docs/protocol.md,
     * Per-route refused options) */
    { "refuse blksize and tsize", RRQ, "octet", 3,
      { "blksize", "1024", "tsize", "0", "timeout", "5" },
      { 1468, 64, 0, B | S }, B | S | T, T, 512, 1, 5, -1 },
    { "refuse everything", WRQ, "octet", 4,
      { "blksize", "1024", "tsize", "9", "timeout", "5", "windowsize", "8" },
      { 1468, 64, 0, B | T | S | W }, B | T | S | W, 0, 512, 1, 0, -1 },
    { "refuse windowsize", RRQ, "octet", 2,
      { "windowsize", "8", "blksize", "512" }, { 1468, 64, 0, W },
      W | B, B, 512, 1, 0, -1 },
    { "refused option with an invalid value still requested", RRQ, "octet", 1,
      { "timeout", "0" }, { 1468, 64, 0, T }, T, 0, 512, 1, 0, -1 },

    /* the usual client mixes */
    { "UEFI size probe", RRQ, "octet", 2,
      { "tsize", "0", "blksize", "1468" }, LIM_DEF, S | B, S | B, 1468, 1, 0, -1 },
    { "curl upload", WRQ, "octet", 3,
      { "tsize", "5000", "blksize", "512", "timeout", "6" }, LIM_DEF,
      S | B | T, S | B | T, 512, 1, 6, 5000 },
};

static void test_negotiate_table(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(neg_cases); i++) {
        const struct neg_case *c = &neg_cases[i];
        struct tg_request req;
        struct tg_negotiated n;
        struct tg_error err = { 0xffff, "" };

        print_message("case: %s\n", c->what);
        fill_request(&req, c->mode, c->opts, c->nopts);
        memset(&n, 0xa5, sizeof(n));
        assert_int_equal(tg_opt_negotiate(c->op, &req, &c->lim, &n, &err), 0);
        assert_int_equal(n.op, c->op);
        assert_int_equal(n.requested, c->requested);
        assert_int_equal(n.accepted, c->accepted);
        assert_int_equal(n.blksize, c->blksize);
        assert_int_equal(n.windowsize, c->windowsize);
        assert_int_equal(n.timeout_s, c->timeout_s);
        assert_true(n.tsize == c->tsize);
        assert_int_equal(err.code, 0xffff);
    }
}

/* ---- OACK bytes ------------------------------------------------------- */

static const struct {
    const char *what;
    enum tg_opcode op;
    const char *mode;
    size_t nopts;
    const char *opts[2 * 4];
    struct tg_opt_limits lim;
    int64_t rrq_size;  /* what the server learnt from the backend */
    const uint8_t *oack;
    size_t len;        /* 0: no OACK at all, never an empty one */
} oack_cases[] = {
    { "all four, fixed order whatever the request order", RRQ, "octet", 4,
      { "windowsize", "8", "tsize", "0", "timeout", "5", "blksize", "1468" },
      LIM_DEF, 1048576,
      DG("\x00\x06" "blksize\0" "1468\0" "timeout\0" "5\0" "tsize\0" "1048576\0"
         "windowsize\0" "8\0") },
    { "mixed-case request, lower-case answer", WRQ, "octet", 2,
      { "TSIZE", "673312", "BlkSize", "65464" }, LIM_DEF, -1,
      DG("\x00\x06" "blksize\0" "1468\0" "tsize\0" "673312\0") },
    { "timeout echoed", RRQ, "octet", 1, { "timeout", "010" }, LIM_DEF, -1,
      DG("\x00\x06" "timeout\0" "10\0") },
    { "lowered windowsize", RRQ, "octet", 2,
      { "blksize", "1468", "windowsize", "64" }, { 1468, 64, 65536, 0 }, -1,
      DG("\x00\x06" "blksize\0" "1468\0" "windowsize\0" "44\0") },
    { "WRQ tsize int64 max", WRQ, "octet", 1,
      { "tsize", "9223372036854775807" }, LIM_DEF, -1,
      DG("\x00\x06" "tsize\0" "9223372036854775807\0") },
    { "RRQ empty file", RRQ, "octet", 1, { "tsize", "0" }, LIM_DEF, 0,
      DG("\x00\x06" "tsize\0" "0\0") },
    { "only unknown options: no OACK", RRQ, "octet", 1, { "rollover", "1" },
      LIM_DEF, -1, NULL, 0 },
    { "only invalid values: no OACK", RRQ, "octet", 2,
      { "blksize", "7", "timeout", "0" }, LIM_DEF, -1, NULL, 0 },
    { "only refused options: no OACK", RRQ, "octet", 1, { "blksize", "1024" },
      { 1468, 64, 0, B }, -1, NULL, 0 },
    { "RRQ tsize with size unknown: no OACK", RRQ, "octet", 1,
      { "tsize", "0" }, LIM_DEF, -1, NULL, 0 },
    { "RRQ tsize unknown, blksize still acknowledged", RRQ, "octet", 2,
      { "tsize", "0", "blksize", "1024" }, LIM_DEF, -1,
      DG("\x00\x06" "blksize\0" "1024\0") },
    { "netascii tsize: no OACK", RRQ, "netascii", 1, { "tsize", "0" }, LIM_DEF,
      4096, NULL, 0 },
};

static void test_oack_bytes(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(oack_cases); i++) {
        struct tg_request req;
        struct tg_negotiated n;
        struct tg_error err;
        uint8_t buf[128];
        size_t len, cap;

        print_message("case: %s\n", oack_cases[i].what);
        fill_request(&req, oack_cases[i].mode, oack_cases[i].opts,
                     oack_cases[i].nopts);
        assert_int_equal(tg_opt_negotiate(oack_cases[i].op, &req,
                                          &oack_cases[i].lim, &n, &err),
                         0);
        if (n.op == TG_OP_RRQ)
            n.tsize = oack_cases[i].rrq_size;
        memset(buf, 0xaa, sizeof(buf));
        len = tg_opt_build_oack(&n, buf, sizeof(buf));
        assert_int_equal(len, oack_cases[i].len);
        if (!len) {
            assert_int_equal(buf[0], 0xaa);
            continue;
        }
        assert_memory_equal(buf, oack_cases[i].oack, len);
        assert_int_equal(buf[len], 0xaa);
        /* The exact length is enough; anything less builds nothing. */
        assert_int_equal(tg_opt_build_oack(&n, buf, len), len);
        for (cap = 0; cap < len; cap++)
            assert_int_equal(tg_opt_build_oack(&n, buf, cap), 0);
    }
}

/* RFC 2347 "Examples": request bytes through parse and negotiation must
 * give the RFC's OACK bytes. */
static const struct {
    const char *what;
    const uint8_t *req;
    size_t req_len;
    const uint8_t *oack;
    size_t oack_len;
} rfc_examples[] = {
    { "RFC 2347 read request",
      DG("\x00\x01" "foofile\0" "octet\0" "blksize\0" "1432\0"),
      DG("\x00\x06" "blksize\0" "1432\0") },
    { "RFC 2347 write request",
      DG("\x00\x02" "barfile\0" "octet\0" "blksize\0" "2048\0"),
      DG("\x00\x06" "blksize\0" "2048\0") },
};

static void test_rfc2347_examples(void **state)
{
    const struct tg_opt_limits lim = LIM_WIDE;
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(rfc_examples); i++) {
        struct tg_packet pkt;
        struct tg_negotiated n;
        struct tg_error err;
        uint8_t buf[64];
        size_t len;

        print_message("case: %s\n", rfc_examples[i].what);
        assert_int_equal(tg_pkt_parse(rfc_examples[i].req,
                                      rfc_examples[i].req_len, &pkt),
                         0);
        assert_int_equal(tg_opt_negotiate(pkt.op, &pkt.u.req, &lim, &n, &err),
                         0);
        assert_int_equal(n.accepted, B);
        len = tg_opt_build_oack(&n, buf, sizeof(buf));
        assert_int_equal(len, rfc_examples[i].oack_len);
        assert_memory_equal(buf, rfc_examples[i].oack, len);
    }
}

/* A hand-made tg_negotiated with nothing accepted never yields an OACK, and
 * bits outside TG_OPT_* are not options. */
static void test_oack_nothing_accepted(void **state)
{
    struct tg_negotiated n;
    uint8_t buf[64];

    (void)state;
    memset(&n, 0, sizeof(n));
    n.op = TG_OP_RRQ;
    n.blksize = 1024;
    n.windowsize = 4;
    n.timeout_s = 3;
    n.tsize = 10;
    n.accepted = 0;
    assert_int_equal(tg_opt_build_oack(&n, buf, sizeof(buf)), 0);
    n.accepted = 0x10;
    assert_int_equal(tg_opt_build_oack(&n, buf, sizeof(buf)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_not_a_request),
        cmocka_unit_test(test_negotiate_table),
        cmocka_unit_test(test_oack_bytes),
        cmocka_unit_test(test_rfc2347_examples),
        cmocka_unit_test(test_oack_nothing_accepted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
