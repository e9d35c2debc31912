/* include/tftpgw/localfs.h - the local storage steps that the file backend,
 * the cache and the s3 upload spool share (owner: gateway/localfs.c):
 * opening beneath a root, temporary files that become visible only when
 * published, publishing, and closing off the loop.
 *
 * Functions marked "blocking" make system calls that may wait for the
 * disk: call them from a thread-pool job (uv_queue_work) or before the
 * loop runs, never on the loop (invariant 1). They do not allocate and
 * touch no loop state, so a job may call them freely.
 */
#ifndef TFTPGW_LOCALFS_H
#define TFTPGW_LOCALFS_H

#include <limits.h>
#include <sys/types.h>
#include <uv.h>

#include "tftpgw/common.h"

/* ---- confinement (invariant 5) ---- */

/* A directory that every name is resolved beneath. */
struct tg_lfs_root {
    int fd;     /* O_DIRECTORY, also fsync()able; -1 when closed */
    char *real; /* its realpath(), for kernels without openat2 */
};

/* Start-up, blocking: open dir as a root. 0, -errno (open or realpath),
 * or TG_ENOMEM. */
int tg_lfs_root_open(struct tg_lfs_root *r, const char *dir);
void tg_lfs_root_close(struct tg_lfs_root *r);

/* Blocking: open rel ("a/b", or "." for the root itself) without ever
 * resolving outside the root: openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS); an absolute symlink that leads back into the
 * root is followed through a second confined open of where it leads;
 * before Linux 5.6, realpath() plus a prefix check. An fd, or -errno
 * (EXDEV or ELOOP when the path leads out). */
int tg_lfs_open_beneath(const struct tg_lfs_root *r, const char *rel, int flags);

/* Blocking: the name under which rel exists beneath the root when the
 * (ASCII) case of its components is ignored, into out ("Boot/BCD" for
 * "boot/bcd"). Component by component: each directory is opened with
 * tg_lfs_open_beneath and listed; a name equal to the component wins,
 * otherwise the byte-wise smallest (strcmp) of the names that differ from
 * it only in case, so the choice never depends on directory order. rel is
 * normalised ("a/b", no "." or ".." segments); "." and ".." entries never
 * match. The caller opens out with tg_lfs_open_beneath again, so nothing
 * found here can lead outside the root. 0, -ENOENT when some component has
 * no match, -ENAMETOOLONG, or the -errno of opening a directory (EXDEV,
 * ELOOP: it leads out; ENOTDIR). Allocates nothing. */
int tg_lfs_resolve_nocase(const struct tg_lfs_root *r, const char *rel, char *out, size_t cap);

/* Start-up, blocking: can an anonymous file made in dirfd be given a name?
 * Only through /proc/self/fd (linkat with AT_EMPTY_PATH needs
 * CAP_DAC_READ_SEARCH), which a chroot may hide. */
bool tg_lfs_can_link_anon(int dirfd);

/* ---- temporary files ---- */

/* How a temporary file is made. The named fallback is PREFIX, six random
 * letters and SUFFIX, so whoever finds a leftover after a crash (or a
 * start-up scan) can tell whose it is. */
struct tg_lfs_tmp_spec {
    int dirfd;          /* where the file is made */
    const char *dir;    /* NULL: dirfd itself; else a directory path (absolute
                         * or relative to dirfd), only for files that are
                         * never published (unlink_named) */
    int flags;          /* O_WRONLY or O_RDWR */
    mode_t mode;
    bool anon_ok;       /* an O_TMPFILE may be used (tg_lfs_can_link_anon) */
    bool unlink_named;  /* scratch space: a named fallback loses its name at once */
    const char *prefix, *suffix;
};

/* A temporary file. Nothing in it is visible under its final name before
 * tg_lfs_publish (invariant 3); an anonymous one (O_TMPFILE) leaves nothing
 * behind even after a crash. */
struct tg_lfs_tmp {
    int fd;                     /* -1 when none */
    int dirfd;                  /* the spec's (not owned) */
    bool anon;                  /* O_TMPFILE */
    char name[NAME_MAX + 1];    /* named: its name in dirfd; "" when it has none */
    char prefix[NAME_MAX + 1];  /* for the names publish needs */
    char suffix[32];
};

/* Blocking: an O_TMPFILE where the spec and the file system allow it, else
 * a named file (O_EXCL, retried on a name clash). 0, or an errno value:
 * the O_TMPFILE's own unless the file system lacks O_TMPFILE (EOPNOTSUPP,
 * EISDIR, EINVAL), the named file's, EBUSY when no free name was found
 * (never EEXIST, which callers read as "the target exists"). */
int tg_lfs_tmp_open(struct tg_lfs_tmp *t, const struct tg_lfs_tmp_spec *spec);

/* Blocking: give the finished temporary the name `name` in dfd (the same
 * file system as its own directory). Create mode (!overwrite) never
 * replaces: EEXIST when the name exists, even if it appeared only now.
 * Overwrite mode replaces atomically (rename). With sync, dfd is fsynced
 * after, and its failure reported: success promises durability. The
 * data's own fsync is the caller's, before. 0 or an errno value. */
int tg_lfs_publish(struct tg_lfs_tmp *t, int dfd, const char *name, bool overwrite, bool sync);

/* Blocking: let go of a temporary that was not published (an abort):
 * close it and remove its name if it has one. */
void tg_lfs_tmp_discard(struct tg_lfs_tmp *t);

/* Blocking: write all n bytes at off (EINTR retried). Returns the bytes
 * written; fewer means *err says why (ENOSPC for a write that took none). */
size_t tg_lfs_pwrite_all(int fd, const void *buf, size_t n, off_t off, int *err);

/* Loop: tg_lfs_tmp_open on the thread pool. cb runs on the loop with
 * req->err (0 or an errno value) and, on success, req->tmp; the strings
 * of req->spec must live until then. Returns 0 or a uv error (no cb). */
struct tg_lfs_tmp_req;
typedef void tg_lfs_tmp_cb(struct tg_lfs_tmp_req *req);
struct tg_lfs_tmp_req {
    uv_work_t work;
    struct tg_lfs_tmp_spec spec;
    struct tg_lfs_tmp tmp;
    int err;
    tg_lfs_tmp_cb *cb;
};
int tg_lfs_tmp_open_async(uv_loop_t *loop, struct tg_lfs_tmp_req *req, tg_lfs_tmp_cb *cb);

/* Loop: the bytes at off that the page cache holds, into iov[0..n) cut
 * at limit bytes (at most 64 buffers), with preadv2(RWF_NOWAIT): the
 * kernel answers EAGAIN rather than wait for the disk (invariant 1), and a
 * hit costs no thread-pool round trip (docs/profile.md). > 0 bytes, 0 at
 * the end of the file, or < 0 when the thread pool has to read them (a
 * miss, or a kernel or file system without RWF_NOWAIT, remembered for the
 * process). */
ssize_t tg_lfs_read_nowait(int fd, const struct iovec *iov, unsigned n, int64_t off,
                           int64_t limit);
#ifdef UNIT_TESTING
/* Tests of the waiting paths need reads that do not complete at once. */
void tg_lfs_nowait_for_tests(bool on);
#endif

/* Loop: close a descriptor on the thread pool. The last close of a big
 * unlinked file frees its blocks, which is disk work the loop must not
 * wait for. */
void tg_lfs_close_async(uv_loop_t *loop, int fd);

#endif
