/* gateway/live.c - the live transfers view's JSON document: the registry's
 * running sessions (newest first, capped) and the ring of finished ones
 * that gateway/session.c keeps. gateway/metrics.c serves it through a
 * callback that gateway/server.c sets, so the HTTP endpoint never sees a
 * session. */
#include "live.h"
#include "session.h"
#include "tftpgw/json.h"

char *tg_live_json(struct tg_registry *r, uint64_t now, size_t *len)
{
    struct tg_jbuf b = {0};
    struct tg_reg_entry *e;
    unsigned n = 0;

    tg_jbuf_str(&b, "{\"active\":[");
    for (e = r->head; e && n < TG_LIVE_MAX_ACTIVE && b.len < TG_LIVE_MAX_ACTIVE_BYTES;
         e = e->next, n++) {
        if (n)
            tg_jbuf_str(&b, ",");
        tg_session_json(e->s, &b, now);
    }
    tg_jbuf_printf(&b, "],\"active_count\":%u,\"truncated\":%s,\"finished\":[", r->count,
                   e ? "true" : "false");
    tg_session_json_finished(&b);
    tg_jbuf_str(&b, "]}\n");
    if (b.oom) {
        tg_free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
