/* include/tftpgw/ratelimit.h - the per-client request rate limit
 * (rate_limit, rate_burst): a token bucket per client address in a fixed
 * table. Pure: no libuv, no clock; the caller passes the time in
 * milliseconds, so unit tests drive it.
 *
 * Fairness against a spoofing sender (docs/security.md, "Fair limits"):
 * - a slot belongs to one address and stores it whole, so two addresses
 *   never share a bucket;
 * - an address lives in one set of TG_RATE_WAYS slots chosen by SipHash-2-4
 *   under a per-process random key, so a sender who does not know the key
 *   cannot pick addresses that crowd a victim's set;
 * - a newcomer takes an empty slot, else the least recently used slot whose
 *   bucket is full again (its owner idle long enough: forgetting a full
 *   bucket changes nothing); when every slot of its set is busy, the
 *   newcomer is refused, never the owner of a slot. */
#ifndef TFTPGW_RATELIMIT_H
#define TFTPGW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TG_RATE_SLOTS 4096 /* addresses tracked at once */
#define TG_RATE_WAYS 8     /* slots probed per address */
#define TG_RATE_SETS (TG_RATE_SLOTS / TG_RATE_WAYS)
#define TG_RATE_KEYLEN 16  /* SipHash key */

struct tg_ratelimit;

enum tg_rate_verdict {
    TG_RATE_PASS,      /* a token taken */
    TG_RATE_LIMITED,   /* the address's own bucket is empty */
    TG_RATE_NO_SLOT,   /* every slot of the address's set is busy */
};

/* A table keyed with key (TG_RATE_KEYLEN bytes), or with fresh random
 * bytes when key is NULL. NULL when out of memory. */
struct tg_ratelimit *tg_ratelimit_new(const uint8_t *key);
void tg_ratelimit_free(struct tg_ratelimit *rl);

/* One request from peer's address (AF_INET or AF_INET6; the port is
 * ignored) at now_ms (any monotonic millisecond clock). rate: tokens per
 * second, 0 = no limit (always TG_RATE_PASS); burst: bucket size, 0 = twice
 * rate. A NULL table passes everything. */
enum tg_rate_verdict tg_ratelimit_check(struct tg_ratelimit *rl, const struct sockaddr *peer,
                                        uint64_t now_ms, unsigned rate, unsigned burst);

/* The same for `cost` tokens at once (cost <= the bucket size): the send
 * rate (client_rate) counts bytes, in KiB. */
enum tg_rate_verdict tg_ratelimit_take(struct tg_ratelimit *rl, const struct sockaddr *peer,
                                       uint64_t now_ms, unsigned rate, unsigned burst,
                                       unsigned cost);

/* The set (0 .. TG_RATE_SETS-1) peer's address probes under rl's key. */
unsigned tg_ratelimit_set_of(const struct tg_ratelimit *rl, const struct sockaddr *peer);

/* SipHash-2-4 of data under a 16-byte key (64-bit result). */
uint64_t tg_siphash24(const uint8_t key[TG_RATE_KEYLEN], const void *data, size_t len);

#endif
