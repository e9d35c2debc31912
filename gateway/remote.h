/* gateway/remote.h - a stand-in on worker i > 0 for a backend that runs on
 * worker 0's loop (a cache: one index, one fill per key, one directory
 * owner for the whole process). docs/design.md, "Workers". Owner:
 * gateway/remote.c. */
#ifndef TFTPGW_REMOTE_H
#define TFTPGW_REMOTE_H

#include "workers.h"
#include "tftpgw/backend.h"

/* A backend on w's loop whose reads are the owner's (worker 0's backend
 * `target`, the same configuration section cfg), relayed through a
 * window-sized staging per stream; its writes go to w's own instance of
 * cfg's `upstream`, after target forgot the key (ops->invalidate). Fails
 * when target is NULL (worker 0 runs no such backend). */
int tg_remote_create(struct tg_worker *w, struct tg_backend *target,
                     const struct tg_backend_cfg *cfg, struct tg_backend **out, char *err,
                     size_t errlen);

#endif
