/* gateway/log.c - leveled logging to stderr or syslog, text or JSON lines. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tftpgw/log.h"

#define LOG_MSG_MAX 2048
/* Every message byte may become a 6-byte \u00XX escape in JSON. */
#define LOG_LINE_MAX (6 * LOG_MSG_MAX + 96)

/* Process-wide by nature: one stderr, one operator choice. Atomic: a
 * reload on worker 0 changes them while other worker loops log. */
static _Atomic int log_level = TG_LOG_INFO;
static _Atomic enum tg_log_format log_format = TG_LOG_TEXT;
static _Atomic enum tg_log_target log_target = TG_LOG_STDERR;
static _Atomic int syslog_fd = -1;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* syslog(3) sends on a blocking socket, and a stuck syslog daemon would
 * stall the loop (invariant 1): our own non-blocking datagram socket drops
 * a line instead. TFTPGW_SYSLOG_SOCKET points elsewhere than /dev/log
 * (tests, containers). */
static void syslog_open(void)
{
    struct sockaddr_un sun;
    const char *path = getenv("TFTPGW_SYSLOG_SOCKET");

    if (syslog_fd >= 0)
        return;
    memset(&sun, 0, sizeof(sun));
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path && *path ? path : "/dev/log");
    syslog_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (syslog_fd >= 0 && connect(syslog_fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
        close(syslog_fd);
        syslog_fd = -1;
    }
}

void tg_log_init(int level, enum tg_log_format fmt, enum tg_log_target target)
{
    log_target = target == TG_LOG_SYSLOG ? TG_LOG_SYSLOG : TG_LOG_STDERR;
    if (log_target == TG_LOG_SYSLOG)
        syslog_open();
    if (level < TG_LOG_ERROR)
        level = TG_LOG_ERROR;
    if (level > TG_LOG_DEBUG)
        level = TG_LOG_DEBUG;
    log_level = level;
    log_format = fmt == TG_LOG_JSON ? TG_LOG_JSON : TG_LOG_TEXT;
}

bool tg_log_enabled(int level)
{
    return level <= log_level;
}

static const char hexdig[] = "0123456789abcdef";

/* Text lines: control bytes become \xNN so a message can never split its
 * line or smuggle terminal escapes; everything else is copied. */
static size_t put_text(char *dst, const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch < 0x20 || ch == 0x7f) {
            dst[n++] = '\\';
            dst[n++] = 'x';
            dst[n++] = hexdig[ch >> 4];
            dst[n++] = hexdig[ch & 0xf];
        } else {
            dst[n++] = (char)ch;
        }
    }
    return n;
}

/* JSON strings (RFC 8259 7). Bytes >= 0x80 are escaped too, as U+0080..
 * U+00FF: the message is not known to be UTF-8, and an invalid sequence
 * would make the whole line unparseable. Client strings arrive through
 * tg_log_sanitize and are ASCII anyway. */
static size_t put_json(char *dst, const char *s)
{
    size_t n = 0;

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;

        if (ch == '"' || ch == '\\') {
            dst[n++] = '\\';
            dst[n++] = (char)ch;
        } else if (ch == '\n') {
            dst[n++] = '\\';
            dst[n++] = 'n';
        } else if (ch == '\t') {
            dst[n++] = '\\';
            dst[n++] = 't';
        } else if (ch == '\r') {
            dst[n++] = '\\';
            dst[n++] = 'r';
        } else if (ch < 0x20 || ch >= 0x7f) {
            memcpy(dst + n, "\\u00", 4);
            n += 4;
            dst[n++] = hexdig[ch >> 4];
            dst[n++] = hexdig[ch & 0xf];
        } else {
            dst[n++] = (char)ch;
        }
    }
    return n;
}

void tg_log(int level, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX];
    char line[LOG_LINE_MAX];
    char ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    const char *lname;
    size_t n;
    ssize_t w;

    if (!tg_log_enabled(level))
        return;
    if (level < TG_LOG_ERROR)
        level = TG_LOG_ERROR;
    lname = level_names[level];

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", now.tv_nsec / 1000000L);

    if (log_target == TG_LOG_SYSLOG && syslog_fd >= 0) {
        /* RFC 3164 as the local daemon expects it: facility daemon (3),
         * our level as severity; the daemon adds host and time. */
        static const int sev[] = { 3, 4, 6, 7 };
        char stamp[32];

        strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", localtime_r(&now.tv_sec, &tm));
        n = (size_t)snprintf(line, sizeof(line), "<%d>%s tftpgw[%ld]: ", 3 * 8 + sev[level],
                             stamp, (long)getpid());
        if (log_format == TG_LOG_JSON) {
            n += (size_t)snprintf(line + n, sizeof(line) - n, "{\"level\":\"%s\",\"msg\":\"", lname);
            n += put_json(line + n, msg);
            memcpy(line + n, "\"}", 2);
            n += 2;
        } else {
            n += put_text(line + n, msg);
        }
        (void)send(syslog_fd, line, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        return;
    }
    if (log_format == TG_LOG_JSON) {
        n = (size_t)snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                             ts, lname);
        n += put_json(line + n, msg);
        memcpy(line + n, "\"}\n", 3);
        n += 3;
    } else {
        n = (size_t)snprintf(line, sizeof(line), "%s %s ", ts, lname);
        n += put_text(line + n, msg);
        line[n++] = '\n';
    }
    /* One write(2) per line, so lines from a forked helper or a second
     * process on the same stderr never interleave mid-line. */
    do {
        w = write(STDERR_FILENO, line, n);
    } while (w < 0 && errno == EINTR);
}

/* One input byte as it appears in a sanitised string. */
static size_t sanitize_byte(unsigned char ch, char esc[4])
{
    if (ch == '"' || ch == '\\') {
        esc[0] = '\\';
        esc[1] = (char)ch;
        return 2;
    }
    if (ch >= 0x20 && ch < 0x7f) {
        esc[0] = (char)ch;
        return 1;
    }
    esc[0] = '\\';
    esc[1] = 'x';
    esc[2] = hexdig[ch >> 4];
    esc[3] = hexdig[ch & 0xf];
    return 4;
}

char *tg_log_sanitize(const char *in, char *out, size_t cap)
{
    const unsigned char *p;
    size_t total = 0, n = 0, room;
    char esc[4];

    if (!out || cap == 0)
        return out;
    if (!in)
        in = "";
    for (p = (const unsigned char *)in; *p; p++)
        total += sanitize_byte(*p, esc);
    /* Cut only when the whole does not fit, and then leave room for "...";
     * an escape is never split, so the output stays unambiguous. */
    room = total < cap ? total : (cap > 4 ? cap - 4 : 0);
    for (p = (const unsigned char *)in; *p; p++) {
        size_t elen = sanitize_byte(*p, esc);

        if (n + elen > room)
            break;
        memcpy(out + n, esc, elen);
        n += elen;
    }
    if (total >= cap)
        for (int i = 0; i < 3 && n + 1 < cap; i++)
            out[n++] = '.';
    out[n] = '\0';
    return out;
}
