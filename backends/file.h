/* backends/file.h - the file backend's own parts, shared by its files:
 *   backends/file.c        the backend, read streams, what every stream
 *                          shares (lifetime, failures, jobs)
 *   backends/file_write.c  write streams: a temporary file published on
 *                          commit */
#ifndef TFTPGW_FILE_H
#define TFTPGW_FILE_H

#include <limits.h>

#include "tftpgw/backend.h"
#include "tftpgw/life.h"
#include "tftpgw/localfs.h"

/* Staging is max(STAGE_MIN, blksize) per buffer: a read stream has one,
 * loaded from the disk ahead of small asks (a window's worth goes straight
 * into the caller's buffers instead); a write stream two, one being filled
 * while the other is on its way to the disk. Small, because a transfer may
 * hold its window plus about 16 KiB (the memory target); the thread pool
 * keeps up with 8 KiB reads. */
#define STAGE_MIN (16 * 1024)
/* Most buffers one read takes straight from the page cache (a read may
 * always fill fewer than asked). */
#define FILE_IOV_MAX 64
/* Room left in NAME_MAX for ".", ".tftpgw-" and six random characters. */
#define TMPNAME_BASE_MAX (NAME_MAX - 16)

struct file_backend {
    struct tg_backend base;
    struct tg_lfs_root root;
    char *root_dir;   /* `root` as configured */
    bool public_only;
    bool create_dirs;
    bool fsync;
    bool proc_fd;     /* /proc/self/fd works: an O_TMPFILE can be linked */
    struct tg_life life; /* held by every stream, closed ones still draining too */
};

enum stage_state { STAGE_EMPTY, STAGE_BUSY, STAGE_READY };

struct file_stream;

struct stage {
    struct file_stream *fs;
    uv_fs_t req;
    uint8_t *data;
    int64_t off;  /* write: file offset of data[0] */
    size_t len;   /* read: bytes loaded; write: bytes staged */
    size_t pos;   /* read: bytes consumed; write: bytes written */
    enum stage_state state;
};

enum fstream_state {
    FS_OPENING,
    FS_OPEN,
    FS_COMMITTING,
    FS_COMMITTED,
    FS_FAILED
};

struct file_stream {
    struct tg_stream base;
    struct file_backend *fb;
    char *key;
    enum fstream_state state;
    struct tg_life life; /* held by each uv request in flight */
    bool waiting;     /* a read/push said TG_EAGAIN: READABLE/WRITABLE is owed */
    int fail_rc;      /* what read/push/commit return once FAILED */
    uv_work_t work;   /* open, commit or clean-up; never two at once */
    bool work_busy;
    int werr;         /* errno left by the last job, 0 for success */
    int fd;           /* read: the file */
    bool nocase;      /* read: route case = insensitive (tg_open_args) */
    size_t cap;
    struct stage st[2]; /* read: st[0] only */
    int cur;          /* write: stage filled next */
    int64_t off;      /* read: next offset to ask for; write: next staged byte */
    /* Write only. */
    bool overwrite;
    int64_t size_hint;
    int dirfd;        /* the target's directory or its deepest existing ancestor */
    size_t exist_len; /* key[0..exist_len) names dirfd; 0 is the root */
    size_t base_off;  /* key + base_off is the file's own name */
    struct tg_lfs_tmp tmp; /* the upload, in dirfd */
};

/* backends/file.c */
/* A new stream on key a->key with these operations, holding the backend;
 * NULL when out of memory. */
struct file_stream *file_stream_new(struct file_backend *fb, const struct tg_open_args *a,
                                    tg_stream_cb *cb, void *arg, const struct tg_stream_ops *ops);
/* Free a stream at once: its open failed, nothing runs, no callback came. */
void file_stream_free(struct file_stream *fs);
/* Queue the stream's one job (open, commit); it holds the stream. */
int file_start_job(struct file_stream *fs, uv_work_cb work, uv_after_work_cb after);
/* Every completion starts here: true when the owner has closed the stream
 * and the caller must stop. */
bool file_req_done(struct file_stream *fs);
void file_notify(struct file_stream *fs, enum tg_stream_ev ev);
/* Record a failure (errno, or a code and text); returns what read, push
 * and commit answer from now on. FAILED is the caller's to send. */
int file_fail(struct file_stream *fs, int err);
int file_fail_msg(struct file_stream *fs, uint16_t code, int rc, const char *msg);
/* Both staging buffers of a write stream, allocated on first use. */
int file_stages_alloc(struct file_stream *fs);
void file_close(struct tg_stream *s);

/* backends/file_write.c */
int file_open_write(struct tg_backend *b, const struct tg_open_args *a, tg_stream_cb *cb,
                    void *arg, struct tg_stream **out);

#endif
