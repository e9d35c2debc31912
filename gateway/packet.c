/* gateway/packet.c - TFTP packet codec (RFC 1350, RFC 2347).
 *
 * Every field is read and written byte by byte in network order; no struct
 * is ever laid over the datagram, so alignment and padding cannot matter and
 * a short datagram can never be read past its end. */
#include <string.h>

#include "tftpgw/packet.h"

/* An ERROR may be the first thing a client hears, before any blksize is
 * agreed, so it must fit the smallest buffer a peer could use for one
 * RFC 1350 segment; like dnsmasq, stay under 512 bytes (docs/protocol.md,
 * Error packets). */
#define ERROR_DGRAM_MAX (TG_SEGSIZE - 1)

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)(v & 0xff);
}

/* Length of the NUL-terminated string at buf[off], or -1 when the datagram
 * ends before its NUL: peer bytes are not C strings until proven so. */
static long str_in(const uint8_t *buf, size_t len, size_t off)
{
    const uint8_t *nul;

    if (off >= len)
        return -1;
    nul = memchr(buf + off, '\0', len - off);
    if (!nul)
        return -1;
    return (long)(nul - (buf + off));
}

/* name NUL value NUL pairs from off to the end of the datagram. Parsing stops
 * without error at the first pair that is not complete (some Open Firmware
 * versions append garbage), at an empty name (nothing real is called "", so
 * it is padding or garbage too) and after TG_MAX_OPTS pairs; what follows is
 * ignored, never refused, like an unknown option (RFC 2347, Negotiation
 * Protocol; docs/protocol.md, Request parsing). */
static size_t parse_pairs(const uint8_t *buf, size_t len, size_t off,
                          struct tg_opt_pair *opts)
{
    size_t n = 0;

    while (n < TG_MAX_OPTS) {
        long nlen = str_in(buf, len, off);
        long vlen;

        if (nlen <= 0)
            break;
        vlen = str_in(buf, len, off + (size_t)nlen + 1);
        if (vlen < 0)
            break;
        opts[n].name = (const char *)(buf + off);
        opts[n].value = (const char *)(buf + off + (size_t)nlen + 1);
        n++;
        off += (size_t)nlen + 1 + (size_t)vlen + 1;
    }
    return n;
}

static int parse_request(const uint8_t *buf, size_t len, struct tg_request *req)
{
    long flen, mlen;
    size_t off = 2;

    /* RFC 1350 section 5: filename and mode must each end in a NUL inside
     * the datagram, or the request is ERROR 4. An empty filename is well
     * formed here; the path layer refuses it. */
    flen = str_in(buf, len, off);
    if (flen < 0)
        return TG_EINVAL;
    req->filename = (const char *)(buf + off);
    off += (size_t)flen + 1;

    mlen = str_in(buf, len, off);
    if (mlen < 0)
        return TG_EINVAL;
    req->mode = (const char *)(buf + off);
    off += (size_t)mlen + 1;

    req->nopts = parse_pairs(buf, len, off, req->opts);
    return 0;
}

int tg_pkt_parse(const uint8_t *buf, size_t len, struct tg_packet *out)
{
    unsigned op;
    long mlen;

    memset(out, 0, sizeof(*out));
    if (!buf || len < 2)
        return TG_EINVAL;
    op = get16(buf);
    switch (op) {
    case TG_OP_RRQ:
    case TG_OP_WRQ:
        out->op = (enum tg_opcode)op;
        return parse_request(buf, len, &out->u.req);

    case TG_OP_DATA:
        /* A 0-byte payload is legal (RFC 1350 section 5): the final block
         * of a file whose length is a multiple of blksize (docs/protocol.md,
         * The final empty block). */
        if (len < TG_HDR)
            return TG_EINVAL;
        out->op = TG_OP_DATA;
        out->u.data.block = get16(buf + 2);
        out->u.data.data = buf + TG_HDR;
        out->u.data.len = len - TG_HDR;
        return 0;

    case TG_OP_ACK:
        /* RFC 1350 section 5 says 4 bytes exactly, but some clients pad
         * their datagrams; the block number is all that matters, so extra
         * bytes are ignored rather than the ACK refused. */
        if (len < TG_HDR)
            return TG_EINVAL;
        out->op = TG_OP_ACK;
        out->u.ack.block = get16(buf + 2);
        return 0;

    case TG_OP_ERROR:
        if (len < TG_HDR)
            return TG_EINVAL;
        out->op = TG_OP_ERROR;
        out->u.error.code = get16(buf + 2);
        /* RFC 1350 section 5 wants a NUL-terminated message, but an ERROR
         * must still end the session when the peer leaves it out: its
         * sender may already be gone (RFC 1350 section 7). */
        mlen = str_in(buf, len, TG_HDR);
        out->u.error.msg = mlen < 0 ? "" : (const char *)(buf + TG_HDR);
        return 0;

    case TG_OP_OACK:
        /* RFC 2347, Packet Formats: only pairs after the opcode. */
        out->op = TG_OP_OACK;
        out->u.oack.nopts = parse_pairs(buf, len, 2, out->u.oack.opts);
        return 0;

    default:
        return TG_EINVAL;
    }
}

size_t tg_pkt_build_ack(uint8_t *buf, size_t cap, uint16_t block)
{
    if (cap < TG_HDR)
        return 0;
    put16(buf, TG_OP_ACK);
    put16(buf + 2, block);
    return TG_HDR;
}

size_t tg_pkt_build_data_hdr(uint8_t *buf, size_t cap, uint16_t block)
{
    if (cap < TG_HDR)
        return 0;
    put16(buf, TG_OP_DATA);
    put16(buf + 2, block);
    return TG_HDR;
}

const char *tg_tftp_error_text(uint16_t code)
{
    /* Scripts and other servers' test suites match these words (atftp's
     * greps for "<File not found>"), so they are sent as written. */
    static const char *const words[] = {
        NULL, "File not found", "Access violation", "Disk full or allocation exceeded",
        "Illegal TFTP operation", "Unknown transfer ID", "File already exists",
        "No such user",
    };

    return code < TG_ARRAY_LEN(words) ? words[code] : NULL;
}

size_t tg_pkt_build_error(uint8_t *buf, size_t cap, uint16_t code,
                          const char *msg)
{
    size_t limit = cap < ERROR_DGRAM_MAX ? cap : ERROR_DGRAM_MAX;
    size_t mlen;

    if (tg_tftp_error_text(code))
        msg = tg_tftp_error_text(code);
    mlen = msg ? strlen(msg) : 0;

    if (limit < TG_HDR + 1)
        return 0;
    /* The text is for humans only; a cut message beats a lost ERROR. */
    if (mlen > limit - TG_HDR - 1)
        mlen = limit - TG_HDR - 1;
    put16(buf, TG_OP_ERROR);
    put16(buf + 2, code);
    if (mlen)
        memcpy(buf + TG_HDR, msg, mlen);
    buf[TG_HDR + mlen] = '\0';
    return TG_HDR + mlen + 1;
}

/* Append s and its NUL at *off; false (buffer untouched past *off) when it
 * does not fit. */
static bool put_str(uint8_t *buf, size_t cap, size_t *off, const char *s)
{
    size_t n = strlen(s) + 1;

    if (n > cap - *off)
        return false;
    memcpy(buf + *off, s, n);
    *off += n;
    return true;
}

static size_t put_pairs(uint8_t *buf, size_t cap, size_t off,
                        const struct tg_opt_pair *opts, size_t nopts)
{
    size_t i;

    for (i = 0; i < nopts; i++) {
        if (!put_str(buf, cap, &off, opts[i].name) ||
            !put_str(buf, cap, &off, opts[i].value))
            return 0;
    }
    return off;
}

size_t tg_pkt_build_oack(uint8_t *buf, size_t cap,
                         const struct tg_opt_pair *opts, size_t nopts)
{
    if (cap < 2)
        return 0;
    put16(buf, TG_OP_OACK);
    return put_pairs(buf, cap, 2, opts, nopts);
}

size_t tg_pkt_build_request(uint8_t *buf, size_t cap, enum tg_opcode op,
                            const char *filename, const char *mode,
                            const struct tg_opt_pair *opts, size_t nopts)
{
    size_t off = 2;

    if ((op != TG_OP_RRQ && op != TG_OP_WRQ) || cap < 2)
        return 0;
    put16(buf, (uint16_t)op);
    if (!put_str(buf, cap, &off, filename) || !put_str(buf, cap, &off, mode))
        return 0;
    return put_pairs(buf, cap, off, opts, nopts);
}

const char *tg_pkt_opname(unsigned op)
{
    static const char *const names[] = {
        [TG_OP_RRQ] = "RRQ",     [TG_OP_WRQ] = "WRQ",
        [TG_OP_DATA] = "DATA",   [TG_OP_ACK] = "ACK",
        [TG_OP_ERROR] = "ERROR", [TG_OP_OACK] = "OACK",
    };

    if (op >= TG_ARRAY_LEN(names) || !names[op])
        return "?";
    return names[op];
}
