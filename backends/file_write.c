/* backends/file_write.c - the file backend's write streams (invariant 3:
 * nothing visible before COMMITTED). The open job finds the target's
 * directory beneath the root (or its deepest existing ancestor when
 * create_dirs may make the rest), refuses what may not be replaced, checks
 * a tsize against the free space, and makes the temporary file
 * (gateway/localfs.c). Blocks go to the disk from two staging buffers.
 * The commit job fsyncs, makes the missing directories, publishes (link in
 * create mode, rename in overwrite mode) and fsyncs the directory. */
#define _FILE_OFFSET_BITS 64

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "file.h"

static int file_push(struct tg_stream *s, const uint8_t *src, size_t len);
static int file_commit(struct tg_stream *s);

static const struct tg_stream_ops file_write_ops = {
    .push = file_push,
    .commit = file_commit,
    .close = file_close,
};

/* ---- write streams: the open and commit jobs ---- */

/* Open the directory that will hold the file or, when create_dirs allows,
 * its deepest existing ancestor (commit makes the rest). Returns errno. */
static int open_parent(struct file_stream *fs)
{
    const struct file_backend *fb = fs->fb;
    size_t plen = fs->base_off ? fs->base_off - 1 : 0;
    char rel[PATH_MAX];
    int fd;

    memcpy(rel, fs->key, plen);
    rel[plen] = '\0';
    fd = tg_lfs_open_beneath(&fb->root, plen ? rel : ".", O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fs->dirfd = fd;
        fs->exist_len = plen;
        return 0;
    }
    if (fd != -ENOENT || !fb->create_dirs)
        return -fd;
    fd = tg_lfs_open_beneath(&fb->root, ".", O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -fd;
    fs->dirfd = fd;
    fs->exist_len = 0;
    for (size_t i = 1; i <= plen; i++) {
        if (i < plen && rel[i] != '/')
            continue;
        rel[i] = '\0';
        fd = tg_lfs_open_beneath(&fb->root, rel, O_RDONLY | O_DIRECTORY);
        if (i < plen)
            rel[i] = '/';
        if (fd == -ENOENT)
            break;
        if (fd < 0)
            return -fd;
        close(fs->dirfd);
        fs->dirfd = fd;
        fs->exist_len = i;
    }
    return 0;
}

static int write_open(struct file_stream *fs)
{
    const struct file_backend *fb = fs->fb;
    const char *base = fs->key + fs->base_off;
    size_t plen = fs->base_off ? fs->base_off - 1 : 0;
    struct tg_lfs_tmp_spec spec = {0};
    char prefix[NAME_MAX + 1];
    struct stat sb;
    int err;

    if (strlen(fs->key) >= PATH_MAX)
        return ENAMETOOLONG;
    /* The route normalises keys; this guards the backend on its own. */
    if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return EACCES;
    err = open_parent(fs);
    if (err)
        return err;
    if (fs->exist_len == plen) {
        if (fstatat(fs->dirfd, base, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
            /* A symlink counts as not regular: renaming over it would
             * replace the link, not the file other names reach through it. */
            if (!S_ISREG(sb.st_mode))
                return EACCES;
            if (!fs->overwrite)
                return EEXIST;
        } else if (errno != ENOENT) {
            return errno;
        }
    }
    /* A tsize that cannot fit gets ERROR 3 before the transfer starts
     *. Replacing a file needs the full new size too: the old
     * one stays until the rename. */
    if (fs->size_hint > 0) {
        struct statvfs sv;

        if (fstatvfs(fs->dirfd, &sv) == 0 && sv.f_frsize > 0 &&
            (uint64_t)fs->size_hint / sv.f_frsize >= (uint64_t)sv.f_bavail)
            return ENOSPC;
    }
    /* ".NAME.tftpgw-XXXXXX": hidden, and tied to its target for whoever
     * finds a leftover after a crash. */
    snprintf(prefix, sizeof(prefix), ".%.*s.tftpgw-", TMPNAME_BASE_MAX, base);
    spec.dirfd = fs->dirfd;
    spec.flags = O_WRONLY;
    spec.mode = 0644;
    spec.anon_ok = fb->proc_fd;
    spec.prefix = prefix;
    return tg_lfs_tmp_open(&fs->tmp, &spec);
}

static void write_open_work(uv_work_t *w)
{
    struct file_stream *fs = tg_container_of(w, struct file_stream, work);

    fs->werr = write_open(fs);
}

/* Make the directories open_parent found missing, one level at a time,
 * each reopened beneath the root so a swap for a symlink cannot lead out.
 * *dfd ends as the target's directory. Returns errno. */
static int make_dirs(struct file_stream *fs, int *dfd)
{
    const struct file_backend *fb = fs->fb;
    size_t plen = fs->base_off ? fs->base_off - 1 : 0;
    size_t i = fs->exist_len;
    char rel[PATH_MAX];
    char seg[NAME_MAX + 1];

    memcpy(rel, fs->key, plen);
    rel[plen] = '\0';
    while (i < plen) {
        size_t start = i == 0 ? 0 : i + 1;
        size_t end = start;
        int fd;

        while (end < plen && rel[end] != '/')
            end++;
        if (end - start > NAME_MAX)
            return ENAMETOOLONG;
        memcpy(seg, rel + start, end - start);
        seg[end - start] = '\0';
        if (mkdirat(*dfd, seg, 0755) == 0) {
            /* The new entry must survive a crash with the file in it. */
            if (fb->fsync && fsync(*dfd) < 0)
                return errno;
        } else if (errno != EEXIST) {
            return errno;
        }
        rel[end] = '\0';
        fd = tg_lfs_open_beneath(&fb->root, rel, O_RDONLY | O_DIRECTORY);
        if (end < plen)
            rel[end] = '/';
        if (fd < 0)
            return -fd;
        if (*dfd != fs->dirfd)
            close(*dfd);
        *dfd = fd;
        i = end;
    }
    return 0;
}

static void commit_work(uv_work_t *w)
{
    struct file_stream *fs = tg_container_of(w, struct file_stream, work);
    const struct file_backend *fb = fs->fb;
    int dfd = fs->dirfd;
    int err = 0;

    /* Data first, then the name, then the directory: after a crash the
     * name either is absent or points at complete contents. */
    if (fb->fsync && fsync(fs->tmp.fd) < 0)
        err = errno;
    if (!err)
        err = make_dirs(fs, &dfd);
    /* Create mode never replaces, even a file that appeared since open:
     * that is EEXIST, ERROR 6. */
    if (!err)
        err = tg_lfs_publish(&fs->tmp, dfd, fs->key + fs->base_off, fs->overwrite, fb->fsync);
    if (dfd != fs->dirfd)
        close(dfd);
    fs->werr = err;
}

/* A write-side job is over: report its failure, or move to `next` and
 * tell the session with `ev`. */
static void write_job_after(uv_work_t *w, int status, enum fstream_state next,
                            enum tg_stream_ev ev)
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
    fs->state = next;
    file_notify(fs, ev);
}

static void write_open_after(uv_work_t *w, int status)
{
    write_job_after(w, status, FS_OPEN, TG_STREAM_OPENED);
}

int file_open_write(struct tg_backend *b, const struct tg_open_args *a,
                           tg_stream_cb *cb, void *arg, struct tg_stream **out)
{
    struct file_backend *fb = tg_container_of(b, struct file_backend, base);
    struct file_stream *fs = file_stream_new(fb, a, cb, arg, &file_write_ops);
    const char *slash;
    int rc;

    if (!fs)
        return TG_ENOMEM;
    fs->overwrite = a->overwrite;
    fs->size_hint = a->size_hint;
    slash = strrchr(fs->key, '/');
    fs->base_off = slash ? (size_t)(slash - fs->key) + 1 : 0;
    rc = file_start_job(fs, write_open_work, write_open_after);
    if (rc < 0) {
        file_stream_free(fs);
        return rc;
    }
    *out = &fs->base;
    return 0;
}

/* ---- writing ---- */

static void on_write(uv_fs_t *req);

static int write_more(struct file_stream *fs, struct stage *st)
{
    uv_buf_t buf = uv_buf_init((char *)st->data + st->pos, (unsigned)(st->len - st->pos));
    int rc = uv_fs_write(fs->fb->base.loop, &st->req, fs->tmp.fd, &buf, 1,
                         st->off + (int64_t)st->pos, on_write);

    if (rc < 0)
        return file_fail(fs, -rc);
    tg_life_hold(&fs->life);
    return 0;
}

static int flush_stage(struct file_stream *fs, struct stage *st)
{
    st->off = fs->off;
    st->pos = 0;
    st->state = STAGE_BUSY;
    fs->off += (int64_t)st->len;
    return write_more(fs, st);
}

static bool writes_busy(const struct file_stream *fs)
{
    return fs->st[0].state == STAGE_BUSY || fs->st[1].state == STAGE_BUSY;
}

static void commit_after(uv_work_t *w, int status)
{
    write_job_after(w, status, FS_COMMITTED, TG_STREAM_COMMITTED);
}

static int start_commit(struct file_stream *fs)
{
    int rc = file_start_job(fs, commit_work, commit_after);

    return rc < 0 ? file_fail(fs, -rc) : 0;
}

static void on_write(uv_fs_t *req)
{
    struct stage *st = tg_container_of(req, struct stage, req);
    struct file_stream *fs = st->fs;
    ssize_t n = req->result;

    uv_fs_req_cleanup(req);
    if (file_req_done(fs) || fs->state == FS_FAILED)
        return;
    if (n <= 0) {
        /* A regular file never takes 0 bytes of a non-empty write. */
        file_fail(fs, n < 0 ? (int)-n : EIO);
        file_notify(fs, TG_STREAM_FAILED);
        return;
    }
    st->pos += (size_t)n;
    if (st->pos < st->len) {
        if (write_more(fs, st) < 0)
            file_notify(fs, TG_STREAM_FAILED);
        return;
    }
    st->state = STAGE_EMPTY;
    st->len = 0;
    st->pos = 0;
    if (fs->state == FS_COMMITTING) {
        if (!writes_busy(fs) && start_commit(fs) < 0)
            file_notify(fs, TG_STREAM_FAILED);
        return;
    }
    if (fs->waiting) {
        fs->waiting = false;
        file_notify(fs, TG_STREAM_WRITABLE);
    }
}

static int file_push(struct tg_stream *s, const uint8_t *src, size_t len)
{
    struct file_stream *fs = tg_container_of(s, struct file_stream, base);
    struct stage *a, *b;
    size_t room;

    if (fs->state == FS_FAILED)
        return fs->fail_rc;
    if (fs->state != FS_OPEN || fs->life.closed)
        return TG_EINVAL;
    /* All-or-nothing with two stages only works for blocks that fit one;
     * a stage is never smaller than blksize. */
    if (len > fs->cap)
        return file_fail_msg(fs, TG_TFTP_EUNDEF, TG_EINVAL, "block larger than staging");
    if (file_stages_alloc(fs) < 0)
        return fs->fail_rc;
    /* Writes run concurrently, so the second may finish first. */
    if (fs->st[fs->cur].state == STAGE_BUSY)
        fs->cur ^= 1;
    a = &fs->st[fs->cur];
    b = &fs->st[fs->cur ^ 1];
    room = a->state == STAGE_BUSY ? 0 : fs->cap - a->len;
    if (b->state != STAGE_BUSY)
        room += fs->cap - b->len;
    if (len > room) {
        fs->waiting = true;
        return TG_EAGAIN;
    }
    while (len > 0) {
        struct stage *st = &fs->st[fs->cur];
        size_t n = fs->cap - st->len;

        if (n > len)
            n = len;
        memcpy(st->data + st->len, src, n);
        st->len += n;
        src += n;
        len -= n;
        if (st->len == fs->cap) {
            int rc = flush_stage(fs, st);

            if (rc < 0)
                return rc;
            fs->cur ^= 1;
        }
    }
    return 0;
}

static int file_commit(struct tg_stream *s)
{
    struct file_stream *fs = tg_container_of(s, struct file_stream, base);

    if (fs->state == FS_FAILED)
        return fs->fail_rc;
    if (fs->state != FS_OPEN || fs->life.closed)
        return TG_EINVAL;
    fs->state = FS_COMMITTING;
    fs->waiting = false;
    for (int i = 0; i < 2; i++) {
        struct stage *st = &fs->st[i];

        if (st->state != STAGE_BUSY && st->len > 0) {
            int rc = flush_stage(fs, st);

            if (rc < 0)
                return rc;
        }
    }
    /* With writes in flight the last on_write starts the job. */
    return writes_busy(fs) ? 0 : start_commit(fs);
}

