/* include/tftpgw/log.h - leveled logging to stderr; client strings sanitised. */
#ifndef TFTPGW_LOG_H
#define TFTPGW_LOG_H

#include "tftpgw/config.h"

enum tg_log_level { TG_LOG_ERROR = 0, TG_LOG_WARN, TG_LOG_INFO, TG_LOG_DEBUG };

/* Target syslog: a datagram socket to /dev/log (or $TFTPGW_SYSLOG_SOCKET);
 * when it cannot be reached, lines go to stderr. */
void tg_log_init(int level, enum tg_log_format fmt, enum tg_log_target target);
bool tg_log_enabled(int level);
void tg_log(int level, const char *fmt, ...) TG_PRINTF(2, 3);

/* Copy a client-supplied string for a log line: printable ASCII kept,
 * '"' and '\\' escaped, everything else as \xNN; truncated with "..." to
 * fit cap. Returns out. */
char *tg_log_sanitize(const char *in, char *out, size_t cap);

#endif
