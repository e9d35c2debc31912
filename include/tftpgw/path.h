/* include/tftpgw/path.h - turning a client's filename into a safe relative path. */
#ifndef TFTPGW_PATH_H
#define TFTPGW_PATH_H

#include "tftpgw/common.h"

#define TG_PATH_MAX 1024

/* Normalise a client filename into "a/b/c": leading '/' stripped, '\\' read
 * as '/' (Windows boot programs; docs/protocol.md, File names), empty and
 * "." segments dropped.
 * Refused with TG_EACCES: a ".." segment, control characters (< 0x20, 0x7f),
 * invalid or overlong UTF-8. TG_ENAMETOOLONG when the result does not fit in
 * cap (or exceeds TG_PATH_MAX - 1), TG_ENOENT when nothing is left ("", "/").
 * The result never starts with '/', never contains "//", "." or ".." segments.
 * On any error out holds "" (when cap > 0); TG_EINVAL for a NULL argument. */
int tg_path_normalize(const char *in, char *out, size_t cap);

/* ASCII letters of s to lower case, in place (UTF-8 bytes >= 0x80 are
 * left as they are, so the result is still valid UTF-8). */
void tg_path_lower(char *s);

/* Last segment of a normalised path (points into it). */
const char *tg_path_basename(const char *norm);

#endif
