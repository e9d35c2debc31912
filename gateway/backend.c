/* gateway/backend.c - from a [backend NAME] section to a live backend. */
#include <stdio.h>
#include <string.h>

#include "tftpgw/backend.h"

#define TYPE_OPS(t) &tg_##t##_backend_ops,
static const struct tg_backend_ops *const backend_types[] = { TG_BACKEND_TYPES(TYPE_OPS) };

bool tg_backend_check_only;
unsigned tg_backend_workers = 1;

int tg_backend_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                      struct tg_backend **out, char *err, size_t errlen)
{
    const char *type = cfg->type ? cfg->type : "";

    for (size_t i = 0; i < TG_ARRAY_LEN(backend_types); i++)
        if (strcmp(type, backend_types[i]->type) == 0)
            return backend_types[i]->create(loop, cfg, out, err, errlen);
    /* The type key is not kept with a line of its own: name the section's. */
    snprintf(err, errlen, "line %d: type: unknown backend type '%s'", cfg->line, type);
    return TG_EINVAL;
}

void tg_backend_destroy(struct tg_backend *b)
{
    if (b)
        b->ops->destroy(b);
}

void tg_backend_drop_held(struct tg_backend *b)
{
    if (b && b->ops->drop_held)
        b->ops->drop_held(b);
}

size_t tg_iov_copy(const struct iovec *iov, unsigned n, size_t at, const void *src, size_t len)
{
    const uint8_t *p = src;
    size_t done = 0;

    for (unsigned i = 0; i < n && done < len; i++) {
        size_t room, take;

        if (at >= iov[i].iov_len) {
            at -= iov[i].iov_len;
            continue;
        }
        room = iov[i].iov_len - at;
        take = len - done < room ? len - done : room;
        memcpy((uint8_t *)iov[i].iov_base + at, p + done, take);
        done += take;
        at = 0;
    }
    return done;
}
