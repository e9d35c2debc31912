/* backends/file.c - a local directory as a backend: the backend type, its
 * read streams, and what every stream shares. Write streams:
 * backends/file_write.c.
 *
 * Invariant 1 (the loop never blocks): every disk call runs on libuv's
 * thread pool. Opening, committing and cleaning up are uv_queue_work jobs;
 * block reads and writes are uv_fs_read/uv_fs_write at explicit 64-bit
 * offsets (or preadv2(RWF_NOWAIT) on the loop, which never waits). Only
 * create() blocks, at start-up. A job touches its own stream's fields and
 * the backend's read-only ones, never tg_malloc (util.c counts allocations
 * without a lock).
 *
 * Invariant 5 (confinement): every name is resolved beneath the root
 * (tg_lfs_open_beneath, gateway/localfs.c), so a symlink inside the root
 * may point anywhere inside it and nowhere else.
 *
 * Lifetime (include/tftpgw/life.h): each uv request in flight holds the
 * stream. close() only marks it; the last completion starts a clean-up
 * job (close the fds, discard an unpublished upload) whose completion
 * frees it. So no callback can follow close(), and close() is safe from
 * inside the stream's own callback. Callbacks only ever come from uv
 * completions, never from inside an API call, which is how the contract's
 * "never synchronous" rule is kept.
 */
#define _FILE_OFFSET_BITS 64

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "file.h"
#include "tftpgw/keys.h"
#include "tftpgw/window.h"

static ssize_t file_read(struct tg_stream *s, const struct iovec *iov, unsigned n);

static const struct tg_stream_ops file_read_ops = {
    .read = file_read,
    .close = file_close,
};

/* ---- read streams: the open job ---- */

static void read_open_work(uv_work_t *w)
{
    struct file_stream *fs = tg_container_of(w, struct file_stream, work);
    const struct file_backend *fb = fs->fb;
    const char *key = fs->key;
    char alt[PATH_MAX];
    struct stat sb;
    int fd;

    if (fs->key[0] == '\0') {
        fs->werr = ENOENT;
        return;
    }
    if (strlen(fs->key) >= PATH_MAX) {
        fs->werr = ENAMETOOLONG;
        return;
    }
    /* Look before opening: opening a device can have side effects (a tape
     * rewinds, a modem hangs up), and an O_PATH open has none. */
    fd = tg_lfs_open_beneath(&fb->root, key, O_PATH);
    if (fd < 0 && fs->nocase && (fd == -ENOENT || fd == -ENOTDIR)) {
        /* case = insensitive: the exact name is the fast path; only a miss
         * lists directories. What is found is opened beneath the root like
         * any other name (invariant 5). */
        int rc = tg_lfs_resolve_nocase(&fb->root, fs->key, alt, sizeof(alt));

        if (rc < 0) {
            fs->werr = -rc;
            return;
        }
        key = alt;
        fd = tg_lfs_open_beneath(&fb->root, key, O_PATH);
    }
    if (fd < 0) {
        fs->werr = -fd;
        return;
    }
    if (fstat(fd, &sb) < 0) {
        fs->werr = errno;
        close(fd);
        return;
    }
    close(fd);
    /* Not a regular file: ERROR 2, not 1. The name exists, so "not found"
     * would be false; what is refused is publishing a directory, device or
     * fifo as if it were a file, a policy decision like classic tftpd's. */
    if (!S_ISREG(sb.st_mode)) {
        fs->werr = EACCES;
        return;
    }
    /* O_NONBLOCK: if a fifo was swapped in since the look, the open must
     * not wait for a writer; the fstat below then refuses it. */
    fd = tg_lfs_open_beneath(&fb->root, key, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        fs->werr = -fd;
        return;
    }
    fs->fd = fd; /* from here the clean-up job closes it */
    if (fstat(fd, &sb) < 0) {
        fs->werr = errno;
        return;
    }
    if (!S_ISREG(sb.st_mode) || (fb->public_only && !(sb.st_mode & S_IROTH))) {
        fs->werr = EACCES;
        return;
    }
    fs->base.size = (int64_t)sb.st_size;
    /* Read front to back: a larger kernel read-ahead means fewer of the
     * thread-pool reads that wait on the disk when the page cache is cold
     * (a boot storm's first clients). */
    (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    /* No data yet: the staging is allocated on the first read that needs
     * it, so a request nobody answers holds no buffers (invariant 2). */
}

static void cleanup_work(uv_work_t *w)
{
    struct file_stream *fs = tg_container_of(w, struct file_stream, work);

    if (fs->fd >= 0)
        close(fs->fd);
    /* An upload that was not published is an abort (invariant 3). */
    tg_lfs_tmp_discard(&fs->tmp);
    if (fs->dirfd >= 0)
        close(fs->dirfd);
}

/* ---- loop-thread side ---- */

static void backend_free(struct file_backend *fb)
{
    tg_lfs_root_close(&fb->root);
    tg_free(fb->root_dir);
    tg_free(fb->base.name);
    tg_free(fb);
}

void file_stream_free(struct file_stream *fs)
{
    struct file_backend *fb = fs->fb;

    tg_free(fs->st[0].data);
    tg_free(fs->st[1].data);
    tg_free(fs->key);
    tg_free(fs);
    tg_life_release(&fb->life);
}

static void cleanup_after(uv_work_t *w, int status)
{
    (void)status; /* never cancelled: close() cancels before queueing it */
    file_stream_free(tg_container_of(w, struct file_stream, work));
}

static void start_cleanup(struct file_stream *fs)
{
    if (uv_queue_work(fs->fb->base.loop, &fs->work, cleanup_work, cleanup_after) < 0) {
        /* Only invalid arguments make uv_queue_work fail; should it ever,
         * blocking once beats leaking fds. */
        cleanup_work(&fs->work);
        file_stream_free(fs);
    }
}

/* Every completion starts here. True when the owner has closed the stream
 * and the caller must stop; the last one out starts the clean-up. */
bool file_req_done(struct file_stream *fs)
{
    return tg_life_release(&fs->life);
}

void file_notify(struct file_stream *fs, enum tg_stream_ev ev)
{
    if (!fs->life.closed && fs->base.cb)
        fs->base.cb(&fs->base, ev, fs->base.arg);
}

/* Record a failure; the caller decides whether FAILED is sent (not from
 * inside an API call) or the code returned. */
int file_fail_msg(struct file_stream *fs, uint16_t code, int rc, const char *msg)
{
    fs->state = FS_FAILED;
    fs->waiting = false;
    fs->fail_rc = rc;
    tg_error_set(&fs->base.err, code, "%s", msg);
    return rc;
}

int file_fail(struct file_stream *fs, int err)
{
    switch (err) {
    case ENOENT:
    case ENOTDIR:
        return file_fail_msg(fs, TG_TFTP_ENOTFOUND, -err, "file not found");
    case EACCES:
    case EPERM:
    case EXDEV: /* openat2: the path leads out of the root */
    case ELOOP: /* a magic link, a symlink as last component, or a loop */
        return file_fail_msg(fs, TG_TFTP_EACCESS, -err, "access violation");
    case ENAMETOOLONG: /* a segment over NAME_MAX: as the path layer says */
        return file_fail_msg(fs, TG_TFTP_EACCESS, -err, "file name too long");
    case ENOSPC:
    case EDQUOT:
        return file_fail_msg(fs, TG_TFTP_ENOSPACE, -err, "disk full");
    case EEXIST:
        return file_fail_msg(fs, TG_TFTP_EEXISTS, -err, "file already exists");
    default:
        return file_fail_msg(fs, TG_TFTP_EUNDEF, -err, strerror(err));
    }
}

int file_start_job(struct file_stream *fs, uv_work_cb work, uv_after_work_cb after)
{
    int rc = uv_queue_work(fs->fb->base.loop, &fs->work, work, after);

    if (rc < 0)
        return rc;
    fs->work_busy = true;
    tg_life_hold(&fs->life);
    return 0;
}

/* Both staging buffers of a write stream, allocated on first use. */
int file_stages_alloc(struct file_stream *fs)
{
    for (int i = 0; i < 2; i++)
        if (!fs->st[i].data && !(fs->st[i].data = tg_malloc(fs->cap)))
            return file_fail_msg(fs, TG_TFTP_EUNDEF, TG_ENOMEM, "out of memory");
    return 0;
}

static void stream_fin(struct tg_life *l)
{
    start_cleanup(tg_container_of(l, struct file_stream, life));
}

static void backend_fin(struct tg_life *l)
{
    backend_free(tg_container_of(l, struct file_backend, life));
}

struct file_stream *file_stream_new(struct file_backend *fb,
                                      const struct tg_open_args *a,
                                      tg_stream_cb *cb, void *arg, const struct tg_stream_ops *ops)
{
    struct file_stream *fs = tg_calloc(1, sizeof(*fs));

    if (!fs)
        return NULL;
    fs->fb = fb;
    tg_life_init(&fs->life, stream_fin);
    tg_life_hold(&fb->life);
    fs->base.backend = &fb->base;
    fs->base.cb = cb;
    fs->base.arg = arg;
    fs->base.size = -1;
    fs->base.ops = ops;
    fs->state = FS_OPENING;
    fs->fd = -1;
    fs->dirfd = -1;
    fs->tmp.fd = -1;
    fs->cap = a->blksize > STAGE_MIN ? a->blksize : STAGE_MIN;
    fs->key = tg_strdup(a->key);
    fs->st[0].fs = fs->st[1].fs = fs;
    if (!fs->key) {
        file_stream_free(fs);
        return NULL;
    }
    return fs;
}

static void read_open_after(uv_work_t *w, int status)
{
    struct file_stream *fs = tg_container_of(w, struct file_stream, work);

    fs->work_busy = false;
    if (file_req_done(fs))
        return;
    if (status < 0 && !fs->werr)
        fs->werr = -status;
    if (fs->werr) {
        file_fail(fs, fs->werr);
        file_notify(fs, TG_STREAM_FAILED);
        return;
    }
    fs->off = 0;
    fs->state = FS_OPEN;
    file_notify(fs, TG_STREAM_OPENED);
}

/* Process-wide: whether the kernel takes RWF_NOWAIT for these files. */
#ifdef UNIT_TESTING
void tg_file_nowait_for_tests(bool on)
{
    tg_lfs_nowait_for_tests(on);
}
#endif

static int file_open_read(struct tg_backend *b, const struct tg_open_args *a,
                          tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct file_backend *fb = tg_container_of(b, struct file_backend, base);
    struct file_stream *fs = file_stream_new(fb, a, cb, arg, &file_read_ops);
    int rc;

    if (!fs)
        return TG_ENOMEM;
    fs->nocase = a->nocase;
    rc = file_start_job(fs, read_open_work, read_open_after);
    if (rc < 0) {
        file_stream_free(fs);
        return rc;
    }
    *out = &fs->base;
    return 0;
}

/* ---- reading ---- */

static int shrank(struct file_stream *fs)
{
    return file_fail_msg(fs, TG_TFTP_EUNDEF, TG_EIO, "file shrank while being read");
}

static void on_stage_read(uv_fs_t *req)
{
    struct stage *st = tg_container_of(req, struct stage, req);
    struct file_stream *fs = st->fs;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    if (file_req_done(fs) || fs->state == FS_FAILED)
        return;
    if (n <= 0) {
        if (n < 0)
            file_fail(fs, (int)-n);
        else
            shrank(fs);
        file_notify(fs, TG_STREAM_FAILED);
        return;
    }
    st->state = STAGE_READY;
    st->len = (size_t)n;
    st->pos = 0;
    fs->off += n;
    if (fs->waiting) {
        fs->waiting = false;
        file_notify(fs, TG_STREAM_READABLE);
    }
}

#define MISS (-1000000) /* stage_load: not in the page cache, and not allowed to wait */

/* The next part of the file into the staging: from the page cache at once
 * (> 0 bytes), or, when may_wait, through the thread pool (TG_EAGAIN,
 * READABLE follows). The staging reads ahead of a small ask (lock-step),
 * so each block does not cost a read of its own. */
static ssize_t stage_load(struct file_stream *fs, bool may_wait)
{
    struct stage *st = &fs->st[0];
    int64_t left = fs->base.size - fs->off;
    size_t want = left < (int64_t)fs->cap ? (size_t)left : fs->cap;
    struct iovec iov;
    uv_buf_t buf;
    ssize_t n;
    int rc;

    if (!st->data && !(st->data = tg_malloc(fs->cap)))
        return file_fail_msg(fs, TG_TFTP_EUNDEF, TG_ENOMEM, "out of memory");
    st->len = st->pos = 0;
    iov.iov_base = st->data;
    iov.iov_len = want;
    n = tg_lfs_read_nowait(fs->fd, &iov, 1, fs->off, INT64_MAX);
    if (n == 0)
        return shrank(fs);
    if (n > 0) {
        st->state = STAGE_READY;
        st->len = (size_t)n;
        fs->off += n;
        return n;
    }
    if (!may_wait)
        return MISS;
    buf = uv_buf_init((char *)st->data, (unsigned)want);
    rc = uv_fs_read(fs->fb->base.loop, &st->req, fs->fd, &buf, 1, fs->off, on_stage_read);
    if (rc < 0)
        return file_fail(fs, -rc);
    tg_life_hold(&fs->life);
    st->state = STAGE_BUSY;
    fs->waiting = true;
    return TG_EAGAIN;
}

/* A window's worth asked: straight from the page cache into the caller's
 * buffers from byte `at` on, cut at the size seen at OPENED (it went out
 * as tsize). > 0 bytes, 0 when the file ended early, < 0 on a miss. */
static ssize_t read_straight(struct file_stream *fs, const struct iovec *iov, unsigned n,
                             size_t at)
{
    struct iovec cut[FILE_IOV_MAX];
    int64_t left = fs->base.size - fs->off;
    unsigned k = 0;
    ssize_t got;

    for (unsigned i = 0; i < n && k < FILE_IOV_MAX && left > 0; i++) {
        if (at >= iov[i].iov_len) {
            at -= iov[i].iov_len;
            continue;
        }
        cut[k].iov_base = (uint8_t *)iov[i].iov_base + at;
        cut[k].iov_len = iov[i].iov_len - at;
        at = 0;
        if ((int64_t)cut[k].iov_len > left)
            cut[k].iov_len = (size_t)left;
        left -= (int64_t)cut[k++].iov_len;
    }
    got = tg_lfs_read_nowait(fs->fd, cut, k, fs->off, INT64_MAX);
    if (got > 0)
        fs->off += got;
    return got;
}

/* Fills every buffer while the bytes are at hand (staged, or in the page
 * cache: no copy for a window's worth); waits only when nothing was read,
 * so READABLE follows only a TG_EAGAIN. A failure after some bytes is the
 * next read's answer. */
static ssize_t file_read(struct tg_stream *s, const struct iovec *iov, unsigned n)
{
    struct file_stream *fs = tg_container_of(s, struct file_stream, base);
    struct stage *st = &fs->st[0];
    size_t total = 0, got = 0;
    ssize_t r;

    if (fs->state == FS_FAILED)
        return fs->fail_rc;
    if (fs->state != FS_OPEN || fs->life.closed)
        return TG_EINVAL;
    if (st->state == STAGE_BUSY) {
        fs->waiting = true;
        return TG_EAGAIN;
    }
    for (unsigned i = 0; i < n; i++)
        total += iov[i].iov_len;
    while (got < total) {
        if (st->pos < st->len) {
            r = (ssize_t)tg_iov_copy(iov, n, got, st->data + st->pos, st->len - st->pos);
            st->pos += (size_t)r;
            got += (size_t)r;
            continue;
        }
        st->state = STAGE_EMPTY;
        if (fs->off >= fs->base.size)
            break; /* never past the size seen at OPENED */
        r = total - got >= fs->cap ? read_straight(fs, iov, n, got) : -1;
        if (r == 0)
            r = shrank(fs);
        else if (r < 0)
            r = stage_load(fs, got == 0);
        else {
            got += (size_t)r;
            /* Window-sized asks are served without it: a staging kept from
             * a first small ask would only add to every session's cost. */
            if (st->data) {
                tg_free(st->data);
                st->data = NULL;
                st->len = st->pos = 0;
            }
            continue;
        }
        if (r < 0)
            return got ? (ssize_t)got : r;
    }
    return (ssize_t)got;
}

void file_close(struct tg_stream *s)
{
    struct file_stream *fs = tg_container_of(s, struct file_stream, base);

    if (fs->life.closed)
        return;
    fs->base.cb = NULL;
    /* What has not started need not run; what has finishes and is reaped
     * by req_done. uv_cancel fails harmlessly for those. */
    if (fs->work_busy)
        uv_cancel((uv_req_t *)&fs->work);
    for (int i = 0; i < 2; i++)
        if (fs->st[i].state == STAGE_BUSY)
            uv_cancel((uv_req_t *)&fs->st[i].req);
    tg_life_close(&fs->life); /* the last request out starts the clean-up */
}

/* ---- the backend ---- */

#define ROOT_MISSING "missing (a file backend needs a directory)"
#define FB(f) TG_KEY_AT(struct file_backend, f)

static const struct tg_key file_keys[] = {
    {.name = "root", .type = TG_KEY_STRING, FB(root_dir), .flags = TG_KEY_REQUIRED,
     .bad = ROOT_MISSING, .missing = ROOT_MISSING},
    {.name = "public_only", .type = TG_KEY_BOOL, FB(public_only), .def = "no",
     .flags = TG_KEY_GOT, .bad = "expected yes or no"},
    {.name = "create_dirs", .type = TG_KEY_BOOL, FB(create_dirs), .def = "yes",
     .flags = TG_KEY_GOT, .bad = "expected yes or no"},
    {.name = "fsync", .type = TG_KEY_BOOL, FB(fsync), .def = "yes", .flags = TG_KEY_GOT,
     .bad = "expected yes or no"},
};

static int file_create(uv_loop_t *loop, const struct tg_backend_cfg *cfg,
                       struct tg_backend **out, char *err, size_t errlen)
{
    struct tg_key_table tab = {file_keys, TG_ARRAY_LEN(file_keys), NULL};
    struct file_backend *fb = tg_calloc(1, sizeof(*fb));
    int rc;

    if (!fb || !(fb->base.name = tg_strdup(cfg->name ? cfg->name : "file"))) {
        snprintf(err, errlen, "line %d: out of memory", cfg->line);
        tg_free(fb);
        return TG_ENOMEM;
    }
    tg_life_init(&fb->life, backend_fin);
    fb->root.fd = -1;
    tab.obj = fb;
    rc = tg_key_parse_backend(&tab, 1, cfg, "a file backend", err, errlen);
    if (rc < 0) {
        backend_free(fb);
        return rc;
    }
    /* Start-up: the only place this backend may block. */
    rc = tg_lfs_root_open(&fb->root, fb->root_dir);
    if (rc < 0) {
        if (rc == TG_ENOMEM)
            snprintf(err, errlen, "line %d: out of memory", cfg->line);
        else
            snprintf(err, errlen, "line %d: root: %s: %s", tg_config_kv(cfg, "root")->line,
                     fb->root_dir, strerror(-rc));
        backend_free(fb);
        return rc;
    }
    fb->base.ops = &tg_file_backend_ops;
    fb->base.loop = loop;
    /* Without /proc an O_TMPFILE could never be given a name: named temps. */
    fb->proc_fd = tg_lfs_can_link_anon(fb->root.fd);
    *out = &fb->base;
    return 0;
}

static void file_destroy(struct tg_backend *b)
{
    struct file_backend *fb = tg_container_of(b, struct file_backend, base);

    /* Closed streams may still be draining jobs that use rootfd. */
    tg_life_close(&fb->life);
}

const struct tg_backend_ops tg_file_backend_ops = {
    .type = "file",
    .create = file_create,
    .destroy = file_destroy,
    .open_read = file_open_read,
    .open_write = file_open_write,
};
