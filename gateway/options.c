/* gateway/options.c - option negotiation (RFC 2347, 2348, 2349, 7440).
 *
 * The rule throughout is the gentle reading of RFC 2347 that tftp-hpa
 * follows: an option we cannot honour is left out of the OACK (RFC 2347,
 * Negotiation Protocol: an option not acknowledged is not used by either
 * side), so the client falls back to RFC 1350 behaviour instead of
 * failing; only the transfer mode, which has no fallback, can make a
 * request fail here. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tftpgw/options.h"

#define TIMEOUT_MIN 1u       /* RFC 2349, Timeout Interval Option Specification */
#define TIMEOUT_MAX 255u
#define WINDOWSIZE_MAX 65535u /* RFC 7440 section 3 */

static const struct {
    const char *name;
    unsigned bit;
} known_opts[] = {
    { "blksize", TG_OPT_BLKSIZE },
    { "timeout", TG_OPT_TIMEOUT },
    { "tsize", TG_OPT_TSIZE },
    { "windowsize", TG_OPT_WINDOWSIZE },
};

int tg_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    const char *p;
    bool overflow = false;

    if (!s || !*s)
        return TG_EINVAL;
    /* Values go into an int64_t (tsize, byte counts), whatever max says. */
    if (max > (uint64_t)INT64_MAX)
        max = (uint64_t)INT64_MAX;
    /* strtoull would take a sign, blanks and "0x"; peers get none of those.
     * Every byte is checked before range, so "99...9x" is EINVAL, not
     * ERANGE: only a well-formed number can be "too big". */
    for (p = s; *p; p++) {
        unsigned d;

        if (*p < '0' || *p > '9')
            return TG_EINVAL;
        d = (unsigned)(*p - '0');
        if (d > max || v > (max - d) / 10)
            overflow = true;
        else
            v = v * 10 + d;
    }
    if (overflow)
        return TG_ERANGE;
    *out = v;
    return 0;
}

static unsigned clamp_u(unsigned v, unsigned lo, unsigned hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* blksize and windowsize share one shape: below `min` (or not a number) is
 * left out, above `cap` is answered with the cap, since RFC 2348 and RFC
 * 7440 section 3 let the OACK offer less than was asked. A digit
 * string too long for 64 bits is just a very large request, so it is capped
 * too. Returns false when the option must be left out. */
static bool negotiate_capped(const char *value, unsigned min, unsigned cap,
                             unsigned *out)
{
    uint64_t v;
    int rc = tg_parse_u64(value, UINT64_MAX, &v);

    if (rc == TG_ERANGE)
        v = cap;
    else if (rc < 0)
        return false;
    if (v < min)
        return false;
    *out = v > cap ? cap : (unsigned)v;
    return true;
}

static void apply_option(const struct tg_opt_pair *o, unsigned bit,
                         const struct tg_opt_limits *lim,
                         struct tg_negotiated *n)
{
    uint64_t v;
    unsigned u;

    switch (bit) {
    case TG_OPT_BLKSIZE:
        if (negotiate_capped(o->value, TG_BLKSIZE_MIN,
                             clamp_u(lim->max_blksize, TG_BLKSIZE_MIN,
                                     TG_BLKSIZE_MAX),
                             &u)) {
            n->blksize = u;
            n->accepted |= bit;
        }
        break;
    case TG_OPT_TIMEOUT:
        /* RFC 2349, Timeout Interval Option Specification: the OACK must
         * echo the client's value, so out of range means left out. */
        if (tg_parse_u64(o->value, TIMEOUT_MAX, &v) == 0 && v >= TIMEOUT_MIN) {
            n->timeout_s = (unsigned)v;
            n->accepted |= bit;
        }
        break;
    case TG_OPT_TSIZE:
        /* The converted netascii size is not known before sending
         * (docs/protocol.md, Transfer size). */
        if (n->mode != TG_MODE_OCTET)
            break;
        if (tg_parse_u64(o->value, (uint64_t)INT64_MAX, &v) != 0)
            break;
        /* RFC 2349, Transfer Size Option Specification: on RRQ the
         * client's value (normally "0") is only a question;
         * the server fills in the real size before building the OACK. */
        if (n->op == TG_OP_WRQ)
            n->tsize = (int64_t)v;
        n->accepted |= bit;
        break;
    case TG_OPT_WINDOWSIZE:
        if (negotiate_capped(o->value, 1,
                             clamp_u(lim->max_windowsize, 1, WINDOWSIZE_MAX),
                             &u)) {
            n->windowsize = u;
            n->accepted |= bit;
        }
        break;
    default:
        break;
    }
}

int tg_opt_negotiate(enum tg_opcode op, const struct tg_request *req,
                     const struct tg_opt_limits *lim, struct tg_negotiated *out,
                     struct tg_error *err)
{
    static const struct tg_opt_limits no_limits = {
        TG_BLKSIZE_MAX, WINDOWSIZE_MAX, 0, 0
    };
    struct tg_error scratch;
    unsigned seen = 0;
    size_t i, nopts;

    memset(out, 0, sizeof(*out));
    out->op = op;
    out->mode = TG_MODE_OCTET;
    out->blksize = TG_SEGSIZE;   /* RFC 1350 section 2 */
    out->windowsize = 1;         /* RFC 1350 lock-step */
    out->tsize = -1;
    if (!err)
        err = &scratch;
    if (!lim)
        lim = &no_limits;

    if (op != TG_OP_RRQ && op != TG_OP_WRQ) {
        tg_error_set(err, TG_TFTP_EBADOP, "not a read or write request");
        return TG_EINVAL;
    }
    /* RFC 1350 section 5: mode names are case-insensitive. */
    if (req->mode && strcasecmp(req->mode, "octet") == 0) {
        out->mode = TG_MODE_OCTET;
    } else if (req->mode && strcasecmp(req->mode, "netascii") == 0) {
        out->mode = TG_MODE_NETASCII;
    } else if (req->mode && strcasecmp(req->mode, "mail") == 0) {
        /* mail mode is obsolete (RFC 1350 section 1, RFC 1123 4.2.2.1);
         * say so rather than "unknown". */
        tg_error_set(err, TG_TFTP_EBADOP, "mail mode is not supported");
        return TG_EINVAL;
    } else {
        /* Illegal TFTP operation, RFC 1350 Appendix, Error Codes. */
        tg_error_set(err, TG_TFTP_EBADOP, "unknown transfer mode");
        return TG_EINVAL;
    }

    nopts = req->nopts < TG_MAX_OPTS ? req->nopts : TG_MAX_OPTS;
    for (i = 0; i < nopts; i++) {
        const struct tg_opt_pair *o = &req->opts[i];
        unsigned bit = 0;
        size_t k;

        if (!o->name || !o->value)
            continue;
        for (k = 0; k < TG_ARRAY_LEN(known_opts); k++) {
            if (strcasecmp(o->name, known_opts[k].name) == 0) {
                bit = known_opts[k].bit;
                break;
            }
        }
        /* Unknown options are ignored (RFC 2347, Negotiation Protocol).
         * An option may appear only once (RFC 2347, Packet Formats); like
         * tftp-hpa, the first one decides, even when its value is
         * unusable, so a repeat cannot override a refusal
         * (docs/protocol.md, Options order and repeats). */
        if (!bit || (seen & bit))
            continue;
        seen |= bit;
        out->requested |= bit;
        /* A route's refusal is as silent as an unknown option
         * (docs/protocol.md, Per-route refused options). */
        if (lim->refuse & bit)
            continue;
        apply_option(o, bit, lim, out);
    }

    /* Done after the loop because option order does not matter (RFC 2347,
     * Packet Formats) and the ring costs windowsize * blksize bytes, which
     * RFC 7440 section 3 lets us lower (docs/protocol.md, Window size and
     * memory). */
    if ((out->accepted & TG_OPT_WINDOWSIZE) && lim->max_window_bytes) {
        size_t fit = lim->max_window_bytes / out->blksize;

        if (fit < 1)
            fit = 1;
        if (out->windowsize > fit)
            out->windowsize = (unsigned)fit;
    }
    return 0;
}

size_t tg_opt_build_oack(const struct tg_negotiated *n, uint8_t *buf, size_t cap)
{
    char bs[12], to[12], ts[24], ws[12];
    struct tg_opt_pair pairs[4];
    size_t cnt = 0;

    if (n->accepted & TG_OPT_BLKSIZE) {
        snprintf(bs, sizeof(bs), "%u", n->blksize);
        pairs[cnt++] = (struct tg_opt_pair){ "blksize", bs };
    }
    if (n->accepted & TG_OPT_TIMEOUT) {
        snprintf(to, sizeof(to), "%u", n->timeout_s);
        pairs[cnt++] = (struct tg_opt_pair){ "timeout", to };
    }
    /* A size still unknown (-1) cannot be announced; leave it out rather
     * than send a made-up value (docs/protocol.md, Transfer size). */
    if ((n->accepted & TG_OPT_TSIZE) && n->tsize >= 0) {
        snprintf(ts, sizeof(ts), "%" PRId64, n->tsize);
        pairs[cnt++] = (struct tg_opt_pair){ "tsize", ts };
    }
    if (n->accepted & TG_OPT_WINDOWSIZE) {
        snprintf(ws, sizeof(ws), "%u", n->windowsize);
        pairs[cnt++] = (struct tg_opt_pair){ "windowsize", ws };
    }
    /* Nothing accepted: no OACK at all, never an empty one
     * (docs/protocol.md, Options order and repeats). */
    if (cnt == 0)
        return 0;
    return tg_pkt_build_oack(buf, cap, pairs, cnt);
}
