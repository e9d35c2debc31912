/* gateway/shared.h - what every worker's admission shares (docs/design.md,
 * "Workers"): the sessions counted against max_sessions and, per client
 * address, against max_sessions_per_client. A count is taken before a
 * session starts (a reservation) and given back when its registry entry
 * leaves, so two workers can never both admit the last free place.
 * Owner: gateway/shared.c. */
#ifndef TFTPGW_SHARED_H
#define TFTPGW_SHARED_H

#include <stdbool.h>
#include <uv.h>

struct tg_shared;

enum tg_admit {
    TG_ADMIT_OK,
    TG_ADMIT_FULL,   /* max_sessions reached */
    TG_ADMIT_CLIENT, /* max_sessions_per_client reached for this address */
    TG_ADMIT_ELSEWHERE /* full; another worker was asked to evict (gateway/listener.c) */
};

struct tg_shared *tg_shared_new(void);
void tg_shared_free(struct tg_shared *sh);
/* Count one session of client ip if there is room. per_client 0: no
 * per-client limit; not_counted: sessions of ip the caller knows should
 * not count against per_client (its own lingering uploads). */
enum tg_admit tg_shared_reserve(struct tg_shared *sh, const char *ip, unsigned max,
                                unsigned per_client, unsigned not_counted);
void tg_shared_release(struct tg_shared *sh, const char *ip);
unsigned tg_shared_sessions(struct tg_shared *sh);

#endif
