/* gateway/netascii.c - streaming netascii conversion (RFC 1350 section 5,
 * RFC 764; docs/protocol.md, Netascii). */
#include "tftpgw/netascii.h"

#define CR 0x0d
#define LF 0x0a
#define NUL 0x00

size_t tg_na_encode(struct tg_na_enc *st, const uint8_t *src, size_t srclen,
                    size_t *consumed, uint8_t *dst, size_t dstcap)
{
    size_t in = 0;
    size_t out = 0;

    /* The held second byte belongs before anything new, or the pair would
     * be torn apart on the wire (docs/protocol.md, Netascii). */
    if (st->has_pending && out < dstcap) {
        dst[out++] = st->pending;
        st->has_pending = false;
    }
    /* A byte still held means dst is full, so no source is taken. */
    while (in < srclen && out < dstcap) {
        uint8_t c = src[in++];
        uint8_t second;

        if (c == LF)
            second = LF;        /* LF -> CR LF */
        else if (c == CR)
            second = NUL;       /* bare CR -> CR NUL */
        else {
            dst[out++] = c;
            continue;
        }
        dst[out++] = CR;
        if (out < dstcap) {
            dst[out++] = second;
        } else {
            st->pending = second;
            st->has_pending = true;
        }
    }
    *consumed = in;
    return out;
}

bool tg_na_enc_pending(const struct tg_na_enc *st)
{
    return st->has_pending;
}

size_t tg_na_decode(struct tg_na_dec *st, const uint8_t *src, size_t len,
                    uint8_t *dst)
{
    size_t out = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = src[i];

        if (st->cr) {
            st->cr = false;
            if (c == LF) {
                dst[out++] = LF;        /* CR LF -> LF */
                continue;
            }
            if (c == NUL) {
                dst[out++] = CR;        /* CR NUL -> CR */
                continue;
            }
            /* A stray CR is kept rather than dropped (OpenBSD drops it):
             * losing bytes from a malformed upload is worse than keeping
             * them. The byte after it is then read afresh, so CR CR LF
             * gives CR LF. */
            dst[out++] = CR;
        }
        if (c == CR)
            st->cr = true;
        else
            dst[out++] = c;
    }
    return out;
}

size_t tg_na_decode_finish(struct tg_na_dec *st, uint8_t *dst)
{
    if (!st->cr)
        return 0;
    st->cr = false;
    dst[0] = CR;
    return 1;
}
