/* gateway/heldmap.h - which worker holds a UEFI client's probe GET
 * (probe_hold), so that the client's download, which comes from a new port
 * and may reach any worker's listener, is handed to that worker
 * (docs/design.md, "Workers"). Shared by every worker, under its own lock.
 *
 * An entry is a keyed hash of (client address, requested name), a worker
 * index and whether the probe is held yet, kept until it is dropped,
 * replaced or its time is up. A wrong answer
 * (a hash collision, a hold that already ended) costs only a hand-off:
 * the worker it goes to serves the request as any other. A fixed number
 * of slots, the oldest replaced when all are used (invariant 6: what a
 * sender can store here stays bounded). Owner: gateway/heldmap.c. */
#ifndef TFTPGW_HELDMAP_H
#define TFTPGW_HELDMAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define TG_HELDMAP_KEYLEN 16
/* How long a note lasts: the probe's own exchange, then probe_hold (at
 * most 60 s) */
#define TG_HELDMAP_SPAN_MS (70 * 1000)

struct tg_heldmap;

/* cap slots (at least 1); key: the hash's secret, random per process. */
struct tg_heldmap *tg_heldmap_new(unsigned cap, const uint8_t key[TG_HELDMAP_KEYLEN]);
void tg_heldmap_free(struct tg_heldmap *m);
/* Worker may hold a probe of name for peer's address (its port is
 * ignored) until until_ms (any monotonic clock, the same for every call).
 * Returns the note's token (never 0). */
uint64_t tg_heldmap_put(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                        unsigned worker, uint64_t until_ms);
/* The note is no longer true (the request was no probe): gone, unless a
 * later put replaced it (another token). */
void tg_heldmap_drop(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                     uint64_t token);
/* The probe was declined and its GET is held, until until_ms: the note
 * becomes firm (unless a later put replaced it). */
void tg_heldmap_held(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                     uint64_t token, uint64_t until_ms);
/* The worker of the note for peer's address and name, and whether its
 * probe is held (else it may still be one); -1 when there is none or its
 * time is up at now_ms. The note stays. */
int tg_heldmap_find(struct tg_heldmap *m, const struct sockaddr *peer, const char *name,
                    uint64_t now_ms, bool *held);

#endif
