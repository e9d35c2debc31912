/* include/tftpgw/life.h - when a backend's stream (or anything shaped like
 * one) may be freed: the one lifetime rule of backends/.
 *
 * Everything of the stream's own that is still running holds a reference:
 * a uv request or thread-pool job in flight, an upstream request, a call
 * into the owner's callback. The owner's close() only marks it closed.
 * Whichever comes last, the close or the release of the last hold, runs
 * `fin` exactly once. So close() is safe from inside the stream's own
 * callback (backend.h's contract), a completion never touches freed
 * memory, and a completion that finds the stream closed stops.
 *
 * Completions follow one pattern:
 *
 *     if (tg_life_release(&s->life))
 *         return;              closed: nothing more to do (maybe freed)
 *     ... carry on, the owner still wants the stream ...
 *
 * and a callback into the owner that must not lose the stream under its
 * feet brackets the call with tg_life_hold() and tg_life_release().
 */
#ifndef TFTPGW_LIFE_H
#define TFTPGW_LIFE_H

#include <stdbool.h>

struct tg_life {
    unsigned refs; /* holds: operations in flight, callbacks running */
    bool closed;   /* the owner let go; fin runs once refs reach 0 */
    void (*fin)(struct tg_life *l);
};

static inline void tg_life_init(struct tg_life *l, void (*fin)(struct tg_life *l))
{
    l->refs = 0;
    l->closed = false;
    l->fin = fin;
}

static inline void tg_life_hold(struct tg_life *l)
{
    l->refs++;
}

/* Let go of one hold. True when the owner has closed: the caller must not
 * touch the object any more (fin may have run). */
static inline bool tg_life_release(struct tg_life *l)
{
    if (--l->refs > 0 || !l->closed)
        return l->closed;
    l->fin(l);
    return true;
}

/* The owner's close (also from inside its own callback): fin runs now when
 * nothing holds the object, else when the last hold goes. Idempotent. */
static inline void tg_life_close(struct tg_life *l)
{
    if (l->closed)
        return;
    l->closed = true;
    if (l->refs == 0)
        l->fin(l);
}

/* Something of its own is still running. */
static inline bool tg_life_busy(const struct tg_life *l)
{
    return l->refs > 0;
}

#endif
