/* gateway/live.c - the live transfers view's JSON document: the registry's
 * running sessions (newest first, capped) and the ring of finished ones
 * that gateway/liveview.c keeps. gateway/metrics.c serves it through a
 * callback that gateway/server.c sets, so the HTTP endpoint never sees a
 * session. */
#include <string.h>

#include "live.h"
#include "liveview.h"
#include "session.h"
#include "tftpgw/json.h"

int tg_live_part(struct tg_registry *r, uint64_t now, struct tg_live_part *p)
{
    struct tg_jbuf a = {0}, f = {0};
    struct tg_reg_entry *e;
    unsigned n = 0;

    memset(p, 0, sizeof(*p));
    for (e = r->head; e && n < TG_LIVE_MAX_ACTIVE && a.len < TG_LIVE_MAX_ACTIVE_BYTES;
         e = e->next, n++) {
        if (n)
            tg_jbuf_str(&a, ",");
        tg_session_json(e->s, &a, now);
    }
    tg_liveview_json_finished(&f);
    if (a.oom || f.oom) {
        tg_free(a.p);
        tg_free(f.p);
        return TG_ENOMEM;
    }
    *p = (struct tg_live_part){.active = a.p, .finished = f.p, .alen = a.len, .flen = f.len,
                               .count = r->count, .truncated = e != NULL};
    return 0;
}

void tg_live_part_free(struct tg_live_part *p)
{
    tg_free(p->active);
    tg_free(p->finished);
    memset(p, 0, sizeof(*p));
}

char *tg_live_merge(struct tg_live_part *parts, size_t n, size_t *len)
{
    struct tg_jbuf b = {0};
    unsigned count = 0;
    bool trunc = false, first = true;

    tg_jbuf_str(&b, "{\"active\":[");
    for (size_t i = 0; i < n; i++) {
        count += parts[i].count;
        trunc |= parts[i].truncated;
        if (!parts[i].alen)
            continue;
        if (!first)
            tg_jbuf_str(&b, ",");
        tg_jbuf_add(&b, parts[i].active, parts[i].alen);
        first = false;
    }
    tg_jbuf_printf(&b, "],\"active_count\":%u,\"truncated\":%s,\"finished\":[", count,
                   trunc ? "true" : "false");
    first = true;
    for (size_t i = 0; i < n; i++) {
        if (!parts[i].flen)
            continue;
        if (!first)
            tg_jbuf_str(&b, ",");
        tg_jbuf_add(&b, parts[i].finished, parts[i].flen);
        first = false;
    }
    tg_jbuf_str(&b, "]}\n");
    if (b.oom) {
        tg_free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

char *tg_live_json(struct tg_registry *r, uint64_t now, size_t *len)
{
    struct tg_live_part p;
    char *out;

    if (tg_live_part(r, now, &p) != 0)
        return NULL;
    out = tg_live_merge(&p, 1, len);
    tg_live_part_free(&p);
    return out;
}
