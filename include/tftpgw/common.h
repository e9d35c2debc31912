/* include/tftpgw/common.h - return codes, TFTP error codes, allocation. */
#ifndef TFTPGW_COMMON_H
#define TFTPGW_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TG_VERSION "0.1.0"

/* Internal functions that unit tests reach are static in the real build. */
#ifdef UNIT_TESTING
#define TG_STATIC
#else
#define TG_STATIC static
#endif

#define TG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TG_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define tg_container_of(ptr, type, member) \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Functions return 0 or a negated errno value, as libuv does. */
#define TG_OK 0
#define TG_EINVAL (-EINVAL)
#define TG_ENOMEM (-ENOMEM)
#define TG_EAGAIN (-EAGAIN)
#define TG_ERANGE (-ERANGE)
#define TG_ENOSPC (-ENOSPC)
#define TG_EACCES (-EACCES)
#define TG_ENOENT (-ENOENT)
#define TG_EEXIST (-EEXIST)
#define TG_ENAMETOOLONG (-ENAMETOOLONG)
#define TG_EIO (-EIO)

/* TFTP error codes on the wire (RFC 1350 appendix; 8 from RFC 2347). */
enum tg_tftp_code {
    TG_TFTP_EUNDEF = 0,    /* not defined, see message */
    TG_TFTP_ENOTFOUND = 1, /* file not found */
    TG_TFTP_EACCESS = 2,   /* access violation */
    TG_TFTP_ENOSPACE = 3,  /* disk full or allocation exceeded */
    TG_TFTP_EBADOP = 4,    /* illegal TFTP operation */
    TG_TFTP_EBADID = 5,    /* unknown transfer ID */
    TG_TFTP_EEXISTS = 6,   /* file already exists */
    TG_TFTP_ENOUSER = 7,   /* no such user */
    TG_TFTP_EOPTNEG = 8    /* option negotiation refused */
};

#define TG_ERRMSG_MAX 128

/* A protocol failure on its way to the wire: code plus human text. */
struct tg_error {
    uint16_t code;
    char msg[TG_ERRMSG_MAX];
};

void tg_error_set(struct tg_error *e, uint16_t code, const char *fmt, ...)
    TG_PRINTF(3, 4);

/* All allocation goes through these so tests can count live blocks and
 * inject failures. tg_free(NULL) is a no-op. */
void *tg_malloc(size_t n);
void *tg_calloc(size_t n, size_t size);
void *tg_realloc(void *p, size_t n);
char *tg_strdup(const char *s);
void tg_free(void *p);
long tg_alloc_live(void);
/* Make the n-th allocation from now fail (n >= 1); 0 disables. Tests only. */
void tg_alloc_fail_after(long n);

#endif
