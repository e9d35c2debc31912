/* include/tftpgw/options.h - pure option negotiation (RFC 2347/2348/2349/7440). */
#ifndef TFTPGW_OPTIONS_H
#define TFTPGW_OPTIONS_H

#include "tftpgw/packet.h"

enum tg_mode { TG_MODE_OCTET = 0, TG_MODE_NETASCII = 1 };

/* Option bits, used for "accepted" and for per-route refusals. */
#define TG_OPT_BLKSIZE 0x1u
#define TG_OPT_TIMEOUT 0x2u
#define TG_OPT_TSIZE 0x4u
#define TG_OPT_WINDOWSIZE 0x8u

struct tg_opt_limits {
    unsigned max_blksize;    /* 8..65464: larger requests are answered with this */
    unsigned max_windowsize; /* 1..65535 */
    size_t max_window_bytes; /* windowsize is lowered so windowsize*blksize fits; 0 = no cap */
    unsigned refuse;         /* TG_OPT_* bits never accepted (tftp-hpa --refuse) */
};

struct tg_negotiated {
    enum tg_opcode op;   /* RRQ or WRQ */
    enum tg_mode mode;
    unsigned requested;  /* TG_OPT_* bits the client sent (any value) */
    unsigned accepted;   /* TG_OPT_* bits that go into the OACK */
    unsigned blksize;    /* 512 unless accepted */
    unsigned windowsize; /* 1 unless accepted */
    unsigned timeout_s;  /* 0 unless accepted (then 1..255, echoed as sent) */
    /* WRQ: the client's size, -1 if none or not accepted (an option left
     * out of the OACK is not used, RFC 2347, Negotiation Protocol); RRQ:
     * -1, set by the server before the OACK */
    int64_t tsize;
};

/* Check mode and options of a request against the limits.
 * Mode: "octet"/"netascii" in any case; "mail" or anything else fills err
 * with ERROR 4 and returns TG_EINVAL. Options: names case-insensitive,
 * unknown names ignored, the first of a repeated option wins, invalid
 * values left out (blksize < 8, timeout outside 1..255, windowsize 0,
 * tsize not a non-negative 64-bit decimal; docs/protocol.md, Option values),
 * oversize blksize/windowsize lowered to the caps. tsize is never accepted
 * in netascii (docs/protocol.md, Transfer size). */
int tg_opt_negotiate(enum tg_opcode op, const struct tg_request *req,
                     const struct tg_opt_limits *lim, struct tg_negotiated *out,
                     struct tg_error *err);

/* Build the OACK for n->accepted (names lower case, order blksize, timeout,
 * tsize, windowsize; tsize carries n->tsize, and is left out while it is
 * still negative: size unknown, docs/protocol.md, Transfer size). Returns
 * the datagram length, or 0 when nothing is left to acknowledge (then no
 * OACK is sent: docs/protocol.md, Options order and repeats) or cap is
 * short. */
size_t tg_opt_build_oack(const struct tg_negotiated *n, uint8_t *buf, size_t cap);

/* Strict decimal parse for option values and config: digits only, no sign,
 * no spaces, fits in int64. Returns 0 or TG_EINVAL/TG_ERANGE. */
int tg_parse_u64(const char *s, uint64_t max, uint64_t *out);

#endif
