/* include/tftpgw/netascii.h - streaming netascii conversion (RFC 1350, RFC 764).
 * State is carried between calls, so a CR at the end of one block and its LF
 * or NUL at the start of the next are handled (docs/protocol.md,
 * Netascii). */
#ifndef TFTPGW_NETASCII_H
#define TFTPGW_NETASCII_H

#include "tftpgw/common.h"

/* Sending side (RRQ): LF -> CR LF, CR -> CR NUL. */
struct tg_na_enc {
    bool has_pending;  /* second byte of a pair that did not fit */
    uint8_t pending;
};

/* Encode from src into dst until one of them is exhausted. Returns the bytes
 * written to dst and sets *consumed to the bytes taken from src. A pair that
 * does not fit whole is split: its first byte is written, its second kept in
 * the state and written first by the next call (even with srclen == 0). */
size_t tg_na_encode(struct tg_na_enc *st, const uint8_t *src, size_t srclen,
                    size_t *consumed, uint8_t *dst, size_t dstcap);
/* True while a byte is held back, i.e. the encoded stream is not finished
 * even if the source is. */
bool tg_na_enc_pending(const struct tg_na_enc *st);

/* Receiving side (WRQ): CR LF -> LF, CR NUL -> CR; a CR followed by anything
 * else is kept as it is, with that byte. */
struct tg_na_dec {
    bool cr; /* the last byte seen was a CR not yet written */
};

/* Decode len bytes of src into dst, which must hold len + 1 bytes (a held
 * CR plus the whole input). Returns the bytes written. */
size_t tg_na_decode(struct tg_na_dec *st, const uint8_t *src, size_t len,
                    uint8_t *dst);
/* End of stream: writes a held CR (0 or 1 bytes) into dst. */
size_t tg_na_decode_finish(struct tg_na_dec *st, uint8_t *dst);

#endif
