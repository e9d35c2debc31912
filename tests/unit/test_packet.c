/* tests/unit/test_packet.c - TFTP codec: exact bytes in, exact bytes out. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tftpgw/packet.h"

/* A datagram written as a string literal; the literal's own trailing NUL is
 * not part of it. */
#define DG(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* Parse from a heap copy of exactly len bytes, so that valgrind and ASan
 * flag any read past the datagram (a literal would hide a one-byte overrun
 * behind its terminating NUL). The copy must outlive the parsed pointers. */
static uint8_t *parse_copy(const uint8_t *bytes, size_t len,
                           struct tg_packet *pkt, int *rc)
{
    uint8_t *copy = tg_malloc(len);

    assert_non_null(copy);
    if (len)
        memcpy(copy, bytes, len);
    *rc = tg_pkt_parse(copy, len, pkt);
    /* The codec only reads its input. */
    assert_memory_equal(copy, bytes, len);
    return copy;
}

static void assert_opts(const struct tg_opt_pair *got, size_t ngot,
                        const char *const *want, size_t nwant)
{
    size_t i;

    assert_int_equal(ngot, nwant);
    for (i = 0; i < nwant; i++) {
        assert_string_equal(got[i].name, want[2 * i]);
        assert_string_equal(got[i].value, want[2 * i + 1]);
    }
}

/* ---- malformed datagrams ---------------------------------------------- */

static const struct {
    const char *what;
    const uint8_t *bytes;
    size_t len;
} malformed[] = {
    { "empty", DG("") },
    { "one byte", DG("\x00") },
    { "opcode 0", DG("\x00\x00\x00\x01") },
    { "opcode 7", DG("\x00\x07\x00\x01") },
    { "opcode 256 (byte order)", DG("\x01\x00\x00\x01") },
    { "opcode 65535", DG("\xff\xff\x00\x01") },
    { "opcode 65535, two bytes", DG("\xff\xff") },
    { "RRQ with nothing", DG("\x00\x01") },
    { "RRQ filename without NUL", DG("\x00\x01" "file") },
    { "RRQ without mode", DG("\x00\x01" "file\0") },
    { "RRQ mode without NUL", DG("\x00\x01" "file\0" "octet") },
    { "WRQ filename without NUL", DG("\x00\x02" "f") },
    { "WRQ mode without NUL", DG("\x00\x02" "f\0" "netascii") },
    { "DATA 2 bytes", DG("\x00\x03") },
    { "DATA 3 bytes", DG("\x00\x03\x00") },
    { "ACK 2 bytes", DG("\x00\x04") },
    { "ACK 3 bytes", DG("\x00\x04\x00") },
    { "ERROR 2 bytes", DG("\x00\x05") },
    { "ERROR 3 bytes", DG("\x00\x05\x00") },
};

static void test_malformed(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(malformed); i++) {
        struct tg_packet pkt;
        int rc;
        uint8_t *copy;

        print_message("case: %s\n", malformed[i].what);
        copy = parse_copy(malformed[i].bytes, malformed[i].len, &pkt, &rc);
        assert_int_equal(rc, TG_EINVAL);
        tg_free(copy);
    }
    assert_int_equal(tg_pkt_parse(NULL, 0, &(struct tg_packet){ 0 }),
                     TG_EINVAL);
}

/* ---- requests --------------------------------------------------------- */

static const struct {
    const char *what;
    const uint8_t *bytes;
    size_t len;
    enum tg_opcode op;
    const char *filename;
    const char *mode;
    size_t nopts;
    const char *opts[2 * 4];
} requests[] = {
    { "minimal RRQ", DG("\x00\x01" "a.bin\0" "octet\0"),
      TG_OP_RRQ, "a.bin", "octet", 0, { NULL } },
    { "empty filename still parses", DG("\x00\x01" "\0" "octet\0"),
      TG_OP_RRQ, "", "octet", 0, { NULL } },
    { "empty mode still parses", DG("\x00\x02" "f\0" "\0"),
      TG_OP_WRQ, "f", "", 0, { NULL } },
    { "RFC 2347 read example",
      DG("\x00\x01" "foofile\0" "octet\0" "blksize\0" "1432\0"),
      TG_OP_RRQ, "foofile", "octet", 1, { "blksize", "1432" } },
    { "RFC 2347 write example",
      DG("\x00\x02" "barfile\0" "octet\0" "blksize\0" "2048\0"),
      TG_OP_WRQ, "barfile", "octet", 1, { "blksize", "2048" } },
    { "names and values kept as sent",
      DG("\x00\x01" "pxelinux.0\0" "NetASCII\0" "BlkSize\0" "1468\0"
         "TSIZE\0" "0\0" "windowsize\0" "\0"),
      TG_OP_RRQ, "pxelinux.0", "NetASCII", 3,
      { "BlkSize", "1468", "TSIZE", "0", "windowsize", "" } },
    { "option name without value is dropped",
      DG("\x00\x01" "f\0" "octet\0" "tsize\0" "0\0" "blksize\0"),
      TG_OP_RRQ, "f", "octet", 1, { "tsize", "0" } },
    { "option name without its NUL is dropped",
      DG("\x00\x01" "f\0" "octet\0" "tsize\0" "0\0" "blks"),
      TG_OP_RRQ, "f", "octet", 1, { "tsize", "0" } },
    { "value without its NUL is dropped (trailing garbage)",
      DG("\x00\x01" "f\0" "octet\0" "blksize\0" "512"),
      TG_OP_RRQ, "f", "octet", 0, { NULL } },
    { "NUL padding after the mode is not an option",
      DG("\x00\x01" "f\0" "octet\0" "\0\0\0\0"),
      TG_OP_RRQ, "f", "octet", 0, { NULL } },
    { "parsing stops at an empty name",
      DG("\x00\x01" "f\0" "octet\0" "timeout\0" "3\0" "\0" "x\0" "tsize\0" "0\0"),
      TG_OP_RRQ, "f", "octet", 1, { "timeout", "3" } },
    { "binary garbage after options",
      DG("\x00\x02" "up/x\0" "octet\0" "tsize\0" "99\0" "\xff\xfe\x01"),
      TG_OP_WRQ, "up/x", "octet", 1, { "tsize", "99" } },
};

static void test_requests(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(requests); i++) {
        struct tg_packet pkt;
        int rc;
        uint8_t *copy;

        print_message("case: %s\n", requests[i].what);
        copy = parse_copy(requests[i].bytes, requests[i].len, &pkt, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(pkt.op, requests[i].op);
        assert_string_equal(pkt.u.req.filename, requests[i].filename);
        assert_string_equal(pkt.u.req.mode, requests[i].mode);
        /* Strings point into the caller's buffer, not into copies. */
        assert_ptr_equal(pkt.u.req.filename, (const char *)copy + 2);
        assert_opts(pkt.u.req.opts, pkt.u.req.nopts, requests[i].opts,
                    requests[i].nopts);
        tg_free(copy);
    }
}

/* 17 and more options: the first TG_MAX_OPTS are kept, the rest ignored. */
static void test_request_too_many_options(void **state)
{
    uint8_t dg[512];
    struct tg_opt_pair opts[20];
    char names[20][8], values[20][8];
    struct tg_packet pkt;
    size_t len, i;
    uint8_t *copy;
    int rc;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(opts); i++) {
        snprintf(names[i], sizeof(names[i]), "opt%zu", i);
        snprintf(values[i], sizeof(values[i]), "%zu", i * 10);
        opts[i].name = names[i];
        opts[i].value = values[i];
    }
    for (i = TG_MAX_OPTS; i <= TG_ARRAY_LEN(opts); i++) {
        size_t k;

        len = tg_pkt_build_request(dg, sizeof(dg), TG_OP_RRQ, "f", "octet",
                                   opts, i);
        assert_true(len > 0);
        copy = parse_copy(dg, len, &pkt, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(pkt.u.req.nopts, TG_MAX_OPTS);
        for (k = 0; k < TG_MAX_OPTS; k++) {
            assert_string_equal(pkt.u.req.opts[k].name, names[k]);
            assert_string_equal(pkt.u.req.opts[k].value, values[k]);
        }
        tg_free(copy);
    }
}

/* ---- DATA, ACK, ERROR, OACK ------------------------------------------- */

static const struct {
    const char *what;
    const uint8_t *bytes;
    size_t len;
    uint16_t block;
    size_t dlen;
} datas[] = {
    { "block 1, 3 bytes", DG("\x00\x03\x00\x01" "abc"), 1, 3 },
    { "0-byte payload (final empty block)", DG("\x00\x03\xff\xff"), 65535, 0 },
    { "block byte order", DG("\x00\x03\x12\x34" "\x00"), 0x1234, 1 },
    { "block 0 after rollover", DG("\x00\x03\x00\x00" "zz"), 0, 2 },
};

static void test_data(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(datas); i++) {
        struct tg_packet pkt;
        int rc;
        uint8_t *copy;

        print_message("case: %s\n", datas[i].what);
        copy = parse_copy(datas[i].bytes, datas[i].len, &pkt, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(pkt.op, TG_OP_DATA);
        assert_int_equal(pkt.u.data.block, datas[i].block);
        assert_int_equal(pkt.u.data.len, datas[i].dlen);
        assert_ptr_equal(pkt.u.data.data, copy + TG_HDR);
        if (datas[i].dlen)
            assert_memory_equal(pkt.u.data.data, datas[i].bytes + TG_HDR,
                                datas[i].dlen);
        tg_free(copy);
    }
}

static const struct {
    const char *what;
    const uint8_t *bytes;
    size_t len;
    uint16_t block;
} acks[] = {
    { "ACK 0", DG("\x00\x04\x00\x00"), 0 },
    { "ACK 258 (byte order)", DG("\x00\x04\x01\x02"), 258 },
    { "ACK 65535", DG("\x00\x04\xff\xff"), 65535 },
    { "padded ACK accepted, padding ignored", DG("\x00\x04\x00\x07\x00\x00"), 7 },
};

static void test_ack(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(acks); i++) {
        struct tg_packet pkt;
        int rc;
        uint8_t *copy;

        print_message("case: %s\n", acks[i].what);
        copy = parse_copy(acks[i].bytes, acks[i].len, &pkt, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(pkt.op, TG_OP_ACK);
        assert_int_equal(pkt.u.ack.block, acks[i].block);
        tg_free(copy);
    }
}

static const struct {
    const char *what;
    const uint8_t *bytes;
    size_t len;
    uint16_t code;
    const char *msg;
} errors[] = {
    { "code 1 with message", DG("\x00\x05\x00\x01" "File not found\0"), 1,
      "File not found" },
    { "no message at all", DG("\x00\x05\x00\x08"), 8, "" },
    { "empty message", DG("\x00\x05\x00\x00" "\0"), 0, "" },
    { "message without NUL", DG("\x00\x05\x00\x02" "denied"), 2, "" },
    { "bytes after the NUL ignored", DG("\x00\x05\x00\x03" "full\0" "xx"), 3,
      "full" },
    { "code byte order", DG("\x00\x05\x01\x00" "odd\0"), 256, "odd" },
};

static void test_error(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(errors); i++) {
        struct tg_packet pkt;
        int rc;
        uint8_t *copy;

        print_message("case: %s\n", errors[i].what);
        copy = parse_copy(errors[i].bytes, errors[i].len, &pkt, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(pkt.op, TG_OP_ERROR);
        assert_int_equal(pkt.u.error.code, errors[i].code);
        assert_non_null(pkt.u.error.msg);
        assert_string_equal(pkt.u.error.msg, errors[i].msg);
        tg_free(copy);
    }
}

static const struct {
    const char *what;
    const uint8_t *bytes;
    size_t len;
    size_t nopts;
    const char *opts[2 * 4];
} oacks[] = {
    { "RFC 2347 read example", DG("\x00\x06" "blksize\0" "1432\0"), 1,
      { "blksize", "1432" } },
    { "four options",
      DG("\x00\x06" "blksize\0" "1468\0" "timeout\0" "5\0" "tsize\0" "42\0"
         "windowsize\0" "8\0"),
      4, { "blksize", "1468", "timeout", "5", "tsize", "42", "windowsize", "8" } },
    { "no options", DG("\x00\x06"), 0, { NULL } },
    { "incomplete pair dropped", DG("\x00\x06" "tsize\0" "1\0" "blksize\0" "9"),
      1, { "tsize", "1" } },
};

static void test_oack(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(oacks); i++) {
        struct tg_packet pkt;
        int rc;
        uint8_t *copy;

        print_message("case: %s\n", oacks[i].what);
        copy = parse_copy(oacks[i].bytes, oacks[i].len, &pkt, &rc);
        assert_int_equal(rc, 0);
        assert_int_equal(pkt.op, TG_OP_OACK);
        assert_opts(pkt.u.oack.opts, pkt.u.oack.nopts, oacks[i].opts,
                    oacks[i].nopts);
        tg_free(copy);
    }
}

/* ---- builders --------------------------------------------------------- */

/* Every cap below the datagram's length must give 0. */
#define ASSERT_SHORT_CAPS(call_with_cap, full_len)                 \
    do {                                                           \
        size_t cap_;                                               \
        for (cap_ = 0; cap_ < (full_len); cap_++) {                \
            size_t cap = cap_;                                     \
            assert_int_equal((call_with_cap), 0);                  \
        }                                                          \
    } while (0)

static void test_build_ack_data(void **state)
{
    uint8_t buf[8];

    (void)state;
    memset(buf, 0xaa, sizeof(buf));
    assert_int_equal(tg_pkt_build_ack(buf, sizeof(buf), 0xbeef), 4);
    assert_memory_equal(buf, "\x00\x04\xbe\xef\xaa", 5);
    assert_int_equal(tg_pkt_build_ack(buf, 4, 0), 4);
    assert_memory_equal(buf, "\x00\x04\x00\x00", 4);
    ASSERT_SHORT_CAPS(tg_pkt_build_ack(buf, cap, 1), 4);

    assert_int_equal(tg_pkt_build_data_hdr(buf, 4, 65535), 4);
    assert_memory_equal(buf, "\x00\x03\xff\xff", 4);
    assert_int_equal(tg_pkt_build_data_hdr(buf, sizeof(buf), 1), 4);
    assert_memory_equal(buf, "\x00\x03\x00\x01", 4);
    ASSERT_SHORT_CAPS(tg_pkt_build_data_hdr(buf, cap, 1), 4);
}

static void test_build_error(void **state)
{
    uint8_t buf[1024];
    char longmsg[700];
    size_t n;

    (void)state;
    n = tg_pkt_build_error(buf, sizeof(buf), TG_TFTP_ENOTFOUND, "File not found");
    assert_int_equal(n, 19);
    assert_memory_equal(buf, "\x00\x05\x00\x01" "File not found\0", 19);

    /* Codes 1 to 7 carry RFC 1350's words whatever the detail was; the
     * detail is for the log. Code 0 and the others carry the caller's. */
    static const char *const words[] = {
        NULL, "File not found", "Access violation", "Disk full or allocation exceeded",
        "Illegal TFTP operation", "Unknown transfer ID", "File already exists",
        "No such user",
    };
    for (uint16_t c = 1; c <= 7; c++) {
        n = tg_pkt_build_error(buf, sizeof(buf), c, "client MAC unknown");
        assert_int_equal(n, 4 + strlen(words[c]) + 1);
        assert_string_equal((const char *)buf + 4, words[c]);
        assert_string_equal(tg_tftp_error_text(c), words[c]);
    }
    assert_null(tg_tftp_error_text(0));
    assert_null(tg_tftp_error_text(8));
    n = tg_pkt_build_error(buf, sizeof(buf), 0, "server busy, try again later");
    assert_string_equal((const char *)buf + 4, "server busy, try again later");
    n = tg_pkt_build_error(buf, sizeof(buf), 9, "odd");
    assert_string_equal((const char *)buf + 4, "odd");

    /* A message-less ERROR still carries its NUL (RFC 1350 section 5). */
    n = tg_pkt_build_error(buf, sizeof(buf), TG_TFTP_EOPTNEG, NULL);
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "\x00\x05\x00\x08\0", 5);
    n = tg_pkt_build_error(buf, sizeof(buf), 0, "");
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "\x00\x05\x00\x00\0", 5);

    /* The datagram stays under 512 bytes whatever the message
     * (docs/protocol.md, Error packets). */
    memset(longmsg, 'x', sizeof(longmsg) - 1);
    longmsg[sizeof(longmsg) - 1] = '\0';
    memset(buf, 0xaa, sizeof(buf));
    n = tg_pkt_build_error(buf, sizeof(buf), 0, longmsg);
    assert_int_equal(n, 511);
    assert_memory_equal(buf, "\x00\x05\x00\x00" "xxxx", 8);
    assert_int_equal(buf[509], 'x');
    assert_int_equal(buf[510], 0);
    assert_int_equal(buf[511], 0xaa);

    /* A message of exactly the largest size is not cut. */
    longmsg[506] = '\0';
    n = tg_pkt_build_error(buf, sizeof(buf), 0, longmsg);
    assert_int_equal(n, 511);
    assert_int_equal(strlen((const char *)buf + 4), 506);

    /* A small buffer truncates the message instead of losing the ERROR. */
    memset(buf, 0xaa, sizeof(buf));
    n = tg_pkt_build_error(buf, 9, 2, "access denied by upstream");
    assert_int_equal(n, 9);
    assert_memory_equal(buf, "\x00\x05\x00\x02" "Acce\0\xaa", 10);
    n = tg_pkt_build_error(buf, 5, 2, "Access violation");
    assert_int_equal(n, 5);
    assert_memory_equal(buf, "\x00\x05\x00\x02\0", 5);
    ASSERT_SHORT_CAPS(tg_pkt_build_error(buf, cap, 2, "x"), 5);
}

static void test_build_oack(void **state)
{
    static const uint8_t want[] = "\x00\x06" "blksize\0" "1432\0" "tsize\0" "0";
    const struct tg_opt_pair opts[] = { { "blksize", "1432" }, { "tsize", "0" } };
    uint8_t buf[64];

    (void)state;
    memset(buf, 0xaa, sizeof(buf));
    assert_int_equal(tg_pkt_build_oack(buf, sizeof(buf), opts, 2), sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    assert_int_equal(buf[sizeof(want)], 0xaa);
    assert_int_equal(tg_pkt_build_oack(buf, sizeof(want), opts, 2), sizeof(want));
    ASSERT_SHORT_CAPS(tg_pkt_build_oack(buf, cap, opts, 2), sizeof(want));

    /* The codec itself does not forbid an empty OACK; options.c does
     * (docs/protocol.md, Options order and repeats). */
    assert_int_equal(tg_pkt_build_oack(buf, sizeof(buf), NULL, 0), 2);
    assert_memory_equal(buf, "\x00\x06", 2);
}

static void test_build_request(void **state)
{
    /* RFC 2347 "Examples", read request. */
    static const uint8_t want[] =
        "\x00\x01" "foofile\0" "octet\0" "blksize\0" "1432";
    const struct tg_opt_pair opts[] = { { "blksize", "1432" } };
    uint8_t buf[64];

    (void)state;
    assert_int_equal(tg_pkt_build_request(buf, sizeof(buf), TG_OP_RRQ,
                                          "foofile", "octet", opts, 1),
                     sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    ASSERT_SHORT_CAPS(tg_pkt_build_request(buf, cap, TG_OP_RRQ, "foofile",
                                           "octet", opts, 1),
                      sizeof(want));

    assert_int_equal(tg_pkt_build_request(buf, sizeof(buf), TG_OP_WRQ, "",
                                          "netascii", NULL, 0),
                     12);
    assert_memory_equal(buf, "\x00\x02\0netascii\0", 12);

    /* Only requests: any other opcode builds nothing. */
    assert_int_equal(tg_pkt_build_request(buf, sizeof(buf), TG_OP_DATA, "f",
                                          "octet", NULL, 0),
                     0);
    assert_int_equal(tg_pkt_build_request(buf, sizeof(buf), TG_OP_OACK, "f",
                                          "octet", NULL, 0),
                     0);
}

/* ---- round trips: build every opcode, parse it back ------------------- */

static void test_round_trip(void **state)
{
    const struct tg_opt_pair opts[] = {
        { "blksize", "1468" }, { "tsize", "0" }, { "windowsize", "16" }
    };
    static const char *const want_opts[] = {
        "blksize", "1468", "tsize", "0", "windowsize", "16"
    };
    uint8_t buf[600];
    struct tg_packet pkt;
    size_t n;
    unsigned op;

    (void)state;
    for (op = TG_OP_RRQ; op <= TG_OP_WRQ; op++) {
        n = tg_pkt_build_request(buf, sizeof(buf), (enum tg_opcode)op,
                                 "boot/x.efi", "octet", opts, 3);
        assert_true(n > 0);
        assert_int_equal(tg_pkt_parse(buf, n, &pkt), 0);
        assert_int_equal(pkt.op, op);
        assert_string_equal(pkt.u.req.filename, "boot/x.efi");
        assert_string_equal(pkt.u.req.mode, "octet");
        assert_opts(pkt.u.req.opts, pkt.u.req.nopts, want_opts, 3);
    }

    n = tg_pkt_build_data_hdr(buf, sizeof(buf), 513);
    memset(buf + n, 0x5a, 512);
    assert_int_equal(tg_pkt_parse(buf, n + 512, &pkt), 0);
    assert_int_equal(pkt.op, TG_OP_DATA);
    assert_int_equal(pkt.u.data.block, 513);
    assert_int_equal(pkt.u.data.len, 512);
    assert_ptr_equal(pkt.u.data.data, buf + 4);

    n = tg_pkt_build_ack(buf, sizeof(buf), 40000);
    assert_int_equal(tg_pkt_parse(buf, n, &pkt), 0);
    assert_int_equal(pkt.op, TG_OP_ACK);
    assert_int_equal(pkt.u.ack.block, 40000);

    n = tg_pkt_build_error(buf, sizeof(buf), TG_TFTP_EEXISTS,
                           "File already exists");
    assert_int_equal(tg_pkt_parse(buf, n, &pkt), 0);
    assert_int_equal(pkt.op, TG_OP_ERROR);
    assert_int_equal(pkt.u.error.code, TG_TFTP_EEXISTS);
    assert_string_equal(pkt.u.error.msg, "File already exists");

    n = tg_pkt_build_oack(buf, sizeof(buf), opts, 3);
    assert_int_equal(tg_pkt_parse(buf, n, &pkt), 0);
    assert_int_equal(pkt.op, TG_OP_OACK);
    assert_opts(pkt.u.oack.opts, pkt.u.oack.nopts, want_opts, 3);
}

static void test_opname(void **state)
{
    static const struct {
        unsigned op;
        const char *name;
    } names[] = {
        { 0, "?" },       { 1, "RRQ" },   { 2, "WRQ" },   { 3, "DATA" },
        { 4, "ACK" },     { 5, "ERROR" }, { 6, "OACK" },  { 7, "?" },
        { 65535, "?" },   { UINT_MAX, "?" },
    };
    size_t i;

    (void)state;
    for (i = 0; i < TG_ARRAY_LEN(names); i++)
        assert_string_equal(tg_pkt_opname(names[i].op), names[i].name);
}

static int check_leaks(void **state)
{
    (void)state;
    return tg_alloc_live() == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_request_too_many_options),
        cmocka_unit_test(test_data),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_oack),
        cmocka_unit_test(test_build_ack_data),
        cmocka_unit_test(test_build_error),
        cmocka_unit_test(test_build_oack),
        cmocka_unit_test(test_build_request),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_opname),
    };

    return cmocka_run_group_tests(tests, NULL, check_leaks);
}
