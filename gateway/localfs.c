/* gateway/localfs.c - local storage steps for the file backend, the cache
 * and the s3 spool (include/tftpgw/localfs.h).
 *
 * Invariant 5 (confinement): names are resolved from a directory fd of the
 * root with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS), so a symlink
 * inside the root may point anywhere inside it and nowhere else. A kernel
 * without openat2 (before 5.6) gets realpath() plus a prefix check
 * instead, which someone able to write inside the root could race; it is
 * the best such a kernel offers.
 *
 * Invariant 3 (nothing visible before it is complete): data goes to an
 * anonymous O_TMPFILE, or a named temporary where that is unsupported, and
 * gets its name only by tg_lfs_publish, after the caller's fsync.
 *
 * Everything here but tg_lfs_tmp_open_async and tg_lfs_close_async runs on
 * the thread pool (or at start-up) and allocates nothing after start-up:
 * util.c counts allocations without a lock.
 */
#define _FILE_OFFSET_BITS 64

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/localfs.h"

/* openat2 says EAGAIN when a rename raced the lookup; retrying is the
 * documented answer (openat2(2)). */
#define OPENAT2_RETRIES 16
#define TMPNAME_TRIES 64
#define RAND_CHARS 6

/* Test hooks: pretend openat2 or O_TMPFILE are missing, so the fallbacks
 * run on a modern kernel. Set only while no job is in flight. */
TG_STATIC bool tg_lfs_force_no_openat2;
TG_STATIC bool tg_lfs_force_no_tmpfile;

/* ---- confinement ---- */

int tg_lfs_root_open(struct tg_lfs_root *r, const char *dir)
{
    char real[PATH_MAX];
    int rc;

    r->real = NULL;
    r->fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->fd < 0 || !realpath(dir, real)) {
        rc = -errno;
        tg_lfs_root_close(r);
        return rc;
    }
    if (!(r->real = tg_strdup(real))) {
        tg_lfs_root_close(r);
        return TG_ENOMEM;
    }
    return 0;
}

void tg_lfs_root_close(struct tg_lfs_root *r)
{
    /* A directory fd has nothing to flush: closing it cannot block. */
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    tg_free(r->real);
    r->real = NULL;
}

/* p relative to root when p lies beneath it ("." for root itself), else
 * NULL. Both are absolute and fully resolved. */
static const char *rel_beneath(const char *root, const char *p)
{
    size_t n = strlen(root);

    if (n == 1 && root[0] == '/')
        return p[0] != '/' ? NULL : p[1] ? p + 1 : ".";
    if (strncmp(p, root, n) != 0 || (p[n] != '\0' && p[n] != '/'))
        return NULL;
    return p[n] ? p + n + 1 : ".";
}

static int resolve_full(const struct tg_lfs_root *r, const char *rel, char *real)
{
    char path[PATH_MAX];

    if ((size_t)snprintf(path, sizeof(path), "%s/%s", r->real, rel) >= sizeof(path))
        return -ENAMETOOLONG;
    return realpath(path, real) ? 0 : -errno;
}

/* Kernels before openat2: resolve everything, then check the prefix. The
 * final open refuses a symlink, so a swap after realpath() at least cannot
 * redirect the last component. */
static int fallback_open(const struct tg_lfs_root *r, const char *rel, int flags)
{
    char real[PATH_MAX];
    int fd, rc;

    rc = resolve_full(r, rel, real);
    if (rc < 0)
        return rc;
    if (!rel_beneath(r->real, real))
        return -EXDEV;
    fd = open(real, flags | O_CLOEXEC | O_NOFOLLOW);
    return fd < 0 ? -errno : fd;
}

/* -errno, or -ENOSYS when the kernel lacks openat2 (or a test says so). */
static int openat2_beneath(const struct tg_lfs_root *r, const char *rel, int flags)
{
    struct open_how how;
    long fd;

    if (tg_lfs_force_no_openat2)
        return -ENOSYS;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int tries = 0;; tries++) {
        fd = syscall(SYS_openat2, r->fd, rel, &how, sizeof(how));
        if (fd >= 0)
            return (int)fd;
        if (errno == EINTR || (errno == EAGAIN && tries < OPENAT2_RETRIES))
            continue;
        return -errno;
    }
}

int tg_lfs_open_beneath(const struct tg_lfs_root *r, const char *rel, int flags)
{
    char real[PATH_MAX];
    const char *inside;
    int fd = openat2_beneath(r, rel, flags);

    if (fd == -ENOSYS)
        return fallback_open(r, rel, flags);
    if (fd != -EXDEV)
        return fd;
    /* RESOLVE_BENEATH refuses every absolute symlink, even one into the
     * root, and boot trees have those (pxelinux.cfg/default ->
     * /srv/tftp/menus/x). realpath() proposes where it leads; when that
     * lies beneath the root, a second openat2 of the resolved path is
     * what guarantees confinement, however the tree changes meanwhile. */
    if (resolve_full(r, rel, real) < 0)
        return -EXDEV;
    inside = rel_beneath(r->real, real);
    if (!inside)
        return -EXDEV;
    return openat2_beneath(r, inside, flags);
}

/* ---- names whatever their case ---- */

struct dirent64_hdr { /* getdents64(2)'s record, without the name */
    uint64_t ino;
    int64_t off;
    unsigned short reclen;
    unsigned char type;
    char name[];
};

/* ASCII only: strcasecmp() follows the locale. */
static bool same_ignoring_case(const char *a, const char *b, size_t blen)
{
    size_t i;

    for (i = 0; i < blen && a[i]; i++) {
        char x = a[i], y = b[i];

        if (x >= 'A' && x <= 'Z')
            x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z')
            y = (char)(y - 'A' + 'a');
        if (x != y)
            return false;
    }
    return i == blen && a[i] == '\0';
}

/* In directory fd, the entry for component comp[0..len): exact, else the
 * smallest case-variant, into best. 0, -ENOENT, or -errno of the listing. */
static int find_variant(int fd, const char *comp, size_t len, char *best)
{
    /* getdents64 rather than readdir: the thread pool must not allocate
     * through tg_malloc, and a stack buffer needs no allocation at all. */
    char buf[8192] __attribute__((aligned(8)));
    bool found = false;
    long n;

    while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
        for (long at = 0; at < n;) {
            const struct dirent64_hdr *d = (const struct dirent64_hdr *)(void *)(buf + at);

            at += d->reclen;
            if (!strcmp(d->name, ".") || !strcmp(d->name, ".."))
                continue;
            if (!same_ignoring_case(d->name, comp, len))
                continue;
            if (strncmp(d->name, comp, len) == 0) {
                memcpy(best, comp, len);
                best[len] = '\0';
                return 0; /* the exact name always wins */
            }
            if (!found || strcmp(d->name, best) < 0) {
                memcpy(best, d->name, len + 1); /* same length as comp */
                found = true;
            }
        }
    }
    if (n < 0)
        return -errno;
    return found ? 0 : -ENOENT;
}

int tg_lfs_resolve_nocase(const struct tg_lfs_root *r, const char *rel, char *out, size_t cap)
{
    char name[NAME_MAX + 1];
    size_t len = 0;

    if (cap < 2)
        return -ENAMETOOLONG;
    out[0] = '\0';
    while (*rel) {
        size_t clen = strcspn(rel, "/");
        int fd, rc;

        if (clen == 0 || clen > NAME_MAX)
            return clen ? -ENAMETOOLONG : -ENOENT;
        fd = tg_lfs_open_beneath(r, len ? out : ".", O_RDONLY | O_DIRECTORY);
        if (fd < 0)
            return fd;
        rc = find_variant(fd, rel, clen, name);
        close(fd);
        if (rc < 0)
            return rc;
        if (len + (len ? 1 : 0) + clen >= cap)
            return -ENAMETOOLONG;
        if (len)
            out[len++] = '/';
        memcpy(out + len, name, clen + 1);
        len += clen;
        rel += clen;
        rel += *rel == '/';
    }
    return len ? 0 : -ENOENT;
}

bool tg_lfs_can_link_anon(int dirfd)
{
    char proc[64];

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
    return access(proc, F_OK) == 0;
}

/* ---- temporary files ---- */

/* PREFIX + six random letters + SUFFIX: random so that O_EXCL rarely
 * needs a retry. */
static void tmp_name(char *out, size_t cap, const char *prefix, const char *suffix)
{
    static const char set[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[RAND_CHARS];
    char sfx[RAND_CHARS + 1];

    if (getrandom(r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r)) {
        /* No entropy yet (early boot): O_EXCL keeps a guess safe. */
        struct timespec ts;
        uint64_t x;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
            ((uint64_t)getpid() << 12) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof(r); i++)
            r[i] = (unsigned char)(x >> (8 * i));
    }
    for (size_t i = 0; i < sizeof(r); i++)
        sfx[i] = set[r[i] % (sizeof(set) - 1)];
    sfx[RAND_CHARS] = '\0';
    snprintf(out, cap, "%s%s%s", prefix, sfx, suffix);
}

/* A named file in the spec's directory; its name (relative to dirfd)
 * lands in path. Returns an fd or -errno. */
static int open_named(const struct tg_lfs_tmp *t, const struct tg_lfs_tmp_spec *spec,
                      char *path, size_t cap)
{
    char name[NAME_MAX + 1];

    for (int tries = 0; tries < TMPNAME_TRIES; tries++) {
        int fd;

        tmp_name(name, sizeof(name), t->prefix, t->suffix);
        if ((size_t)snprintf(path, cap, "%s%s%s", spec->dir ? spec->dir : "",
                             spec->dir ? "/" : "", name) >= cap)
            return -ENAMETOOLONG;
        fd = openat(spec->dirfd, path,
                    spec->flags | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, spec->mode);
        if (fd >= 0 || errno != EEXIST)
            return fd >= 0 ? fd : -errno;
    }
    return -EBUSY; /* not EEXIST: that would say ERROR 6 about the target */
}

int tg_lfs_tmp_open(struct tg_lfs_tmp *t, const struct tg_lfs_tmp_spec *spec)
{
    char path[PATH_MAX];
    int fd;

    t->fd = -1;
    t->dirfd = spec->dirfd;
    t->anon = false;
    t->name[0] = '\0';
    snprintf(t->prefix, sizeof(t->prefix), "%s", spec->prefix ? spec->prefix : "");
    snprintf(t->suffix, sizeof(t->suffix), "%s", spec->suffix ? spec->suffix : "");
    if (spec->anon_ok && !tg_lfs_force_no_tmpfile) {
        fd = openat(spec->dirfd, spec->dir ? spec->dir : ".", O_TMPFILE | spec->flags | O_CLOEXEC,
                    spec->mode);
        if (fd >= 0) {
            t->fd = fd;
            t->anon = true;
            return 0;
        }
        /* Not every file system (or old kernel) has O_TMPFILE. */
        if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
            return errno;
    }
    fd = open_named(t, spec, path, sizeof(path));
    if (fd < 0)
        return -fd;
    if (spec->unlink_named || strlen(path) >= sizeof(t->name)) {
        /* Scratch space: nothing may outlive us. (A name too long to keep
         * comes only with spec->dir, which is for scratch space.) */
        unlinkat(spec->dirfd, path, 0);
        if (!spec->unlink_named) {
            close(fd);
            return ENAMETOOLONG;
        }
    } else {
        memcpy(t->name, path, strlen(path) + 1);
    }
    t->fd = fd;
    return 0;
}

/* An anonymous file's name: a link through /proc, under a temporary name
 * first when it must replace (linkat cannot). */
static int publish_anon(struct tg_lfs_tmp *t, int dfd, const char *name, bool overwrite)
{
    char proc[64], link[NAME_MAX + 1];
    int err;

    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
    if (!overwrite)
        return linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) < 0 ? errno : 0;
    for (int tries = 0;; tries++) {
        tmp_name(link, sizeof(link), t->prefix, t->suffix);
        if (linkat(AT_FDCWD, proc, dfd, link, AT_SYMLINK_FOLLOW) == 0)
            break;
        if (errno != EEXIST)
            return errno;
        if (tries == TMPNAME_TRIES)
            return EBUSY;
    }
    if (renameat(dfd, link, dfd, name) < 0) {
        err = errno;
        unlinkat(dfd, link, 0);
        return err;
    }
    return 0;
}

static int publish_named(struct tg_lfs_tmp *t, int dfd, const char *name, bool overwrite)
{
    if (!overwrite) {
        if (renameat2(t->dirfd, t->name, dfd, name, RENAME_NOREPLACE) < 0) {
            if (errno != EINVAL && errno != ENOSYS)
                return errno;
            /* No RENAME_NOREPLACE here; a hard link is as atomic about it. */
            if (linkat(t->dirfd, t->name, dfd, name, 0) < 0)
                return errno;
            /* The name is published; a stray temp would only be litter. */
            unlinkat(t->dirfd, t->name, 0);
        }
    } else if (renameat(t->dirfd, t->name, dfd, name) < 0) {
        return errno;
    }
    t->name[0] = '\0';
    return 0;
}

int tg_lfs_publish(struct tg_lfs_tmp *t, int dfd, const char *name, bool overwrite, bool sync)
{
    int err = t->anon ? publish_anon(t, dfd, name, overwrite)
                      : publish_named(t, dfd, name, overwrite);

    /* Reported even though the name is now visible: success promises
     * durability, and a false success is worse than a retry. */
    if (!err && sync && fsync(dfd) < 0)
        err = errno;
    return err;
}

void tg_lfs_tmp_discard(struct tg_lfs_tmp *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    /* A name still here means no publish: abort (invariant 3). An
     * O_TMPFILE needs nothing: closing it frees it. */
    if (t->name[0])
        unlinkat(t->dirfd, t->name, 0);
    t->name[0] = '\0';
}

size_t tg_lfs_pwrite_all(int fd, const void *buf, size_t n, off_t off, int *err)
{
    size_t done = 0;

    *err = 0;
    while (done < n) {
        ssize_t k = pwrite(fd, (const char *)buf + done, n - done, off + (off_t)done);

        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            *err = k < 0 ? errno : ENOSPC;
            break;
        }
        done += (size_t)k;
    }
    return done;
}

/* ---- from the loop ---- */

static void tmp_open_work(uv_work_t *w)
{
    struct tg_lfs_tmp_req *req = tg_container_of(w, struct tg_lfs_tmp_req, work);

    req->err = tg_lfs_tmp_open(&req->tmp, &req->spec);
}

static void tmp_open_after(uv_work_t *w, int status)
{
    struct tg_lfs_tmp_req *req = tg_container_of(w, struct tg_lfs_tmp_req, work);

    if (status < 0 && !req->err)
        req->err = -status; /* cancelled: uv errors are negated errno values */
    req->cb(req);
}

int tg_lfs_tmp_open_async(uv_loop_t *loop, struct tg_lfs_tmp_req *req, tg_lfs_tmp_cb *cb)
{
    req->cb = cb;
    req->err = 0;
    req->tmp.fd = -1;
    req->tmp.name[0] = '\0';
    return uv_queue_work(loop, &req->work, tmp_open_work, tmp_open_after);
}

static void on_closed_fd(uv_fs_t *req)
{
    uv_fs_req_cleanup(req);
    tg_free(req);
}

void tg_lfs_close_async(uv_loop_t *loop, int fd)
{
    uv_fs_t *req;

    if (fd < 0)
        return;
    req = tg_malloc(sizeof(*req));
    if (!req || uv_fs_close(loop, req, fd, on_closed_fd) != 0) {
        tg_free(req);
        close(fd);
    }
}

static _Atomic bool nowait_usable = true;

#ifdef UNIT_TESTING
void tg_lfs_nowait_for_tests(bool on)
{
    nowait_usable = on;
}
#endif

ssize_t tg_lfs_read_nowait(int fd, const struct iovec *iov, unsigned n, int64_t off,
                           int64_t limit)
{
#ifdef RWF_NOWAIT
    struct iovec cut[64];
    unsigned k = 0;
    ssize_t got;

    if (!nowait_usable)
        return -1;
    for (unsigned i = 0; i < n && k < TG_ARRAY_LEN(cut) && limit > 0; i++) {
        cut[k] = iov[i];
        if ((int64_t)cut[k].iov_len > limit)
            cut[k].iov_len = (size_t)limit;
        limit -= (int64_t)cut[k++].iov_len;
    }
    got = preadv2(fd, cut, (int)k, off, RWF_NOWAIT);
    if (got < 0 && (errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL))
        nowait_usable = false;
    return got;
#else
    (void)fd, (void)iov, (void)n, (void)off, (void)limit;
    return -1;
#endif
}
