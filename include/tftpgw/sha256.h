/* include/tftpgw/sha256.h - SHA-256 (FIPS 180-4 section 6.2), small and
 * self-contained: the cache names its files by the digest of the key. */
#ifndef TFTPGW_SHA256_H
#define TFTPGW_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define TG_SHA256_LEN 32

struct tg_sha256 {
    uint32_t h[8];
    uint64_t bits;    /* message length so far */
    uint8_t buf[64];  /* a block being gathered */
    size_t nbuf;
};

void tg_sha256_init(struct tg_sha256 *c);
void tg_sha256_update(struct tg_sha256 *c, const void *data, size_t len);
void tg_sha256_final(struct tg_sha256 *c, uint8_t out[TG_SHA256_LEN]);
/* One call: the digest of data. */
void tg_sha256(const void *data, size_t len, uint8_t out[TG_SHA256_LEN]);
/* The same as 64 lower-case hex digits and a NUL. */
void tg_sha256_hex(const void *data, size_t len, char out[2 * TG_SHA256_LEN + 1]);

#endif
