/* include/tftpgw/remap.h - tftpd-hpa's filename remapping rules (owner:
 * gateway/remap.c). Pure: the caller reads the file; parsing and applying
 * take strings, so both are unit-tested (tests/unit/test_remap.c).
 *
 * One rule a line, `FLAGS REGEX [REPLACEMENT]`, '#' starts a comment, a
 * backslash keeps the next character in its field (docs/migrating-from-
 * tftpd-hpa.md, Remap rules). The regex is POSIX extended (regcomp(3),
 * REG_EXTENDED). Flags:
 *   r  replace the matched part by REPLACEMENT      g  repeat r until no match
 *   i  match case-insensitively                     e  stop after this rule if it matched
 *   s  start again from the first rule if it matched
 *   a  refuse the request if it matched (REPLACEMENT, expanded, is the message)
 *   G  RRQ only   P  WRQ only   4  IPv4 clients only   6  IPv6 clients only
 *   ~  the rule matches when the regex does not (not with r)
 * REPLACEMENT escapes: \0 the match, \1..\9 its groups, \i the client
 * address, \x the client address in upper-case hex (8 or 32 digits),
 * \U \L \E upper / lower / as-is from there on, \\ \# \SPACE and any other
 * \c the character c. */
#ifndef TFTPGW_REMAP_H
#define TFTPGW_REMAP_H

#include <sys/socket.h>

#include "tftpgw/common.h"
#include "tftpgw/packet.h"

/* Bounds: what one admin-written file may cost per request. */
#define TG_REMAP_MAX_RULES 1024     /* rules in a file */
#define TG_REMAP_MAX_LINE 4096      /* bytes in one line */
#define TG_REMAP_MAX_FILE (1 << 20) /* bytes read from the file */
/* Rules tried per request (every rule tried counts one, every repeat of a
 * g rule one more); tftpd-hpa's own limit. Past it the request is refused
 * with REMAP_FAILURE, as tftpd-hpa does. */
#define TG_REMAP_MAX_STEPS 1024
#define TG_REMAP_DENIED "Access denied"        /* an `a` rule without a message */
#define TG_REMAP_FAILURE "Remap table failure" /* step limit, name too long */

struct tg_remap;

/* Parse rule text (a whole file). 0 and *out, or TG_EINVAL with
 * "line N: what is wrong" in err, or TG_ENOMEM. A file without rules is
 * valid (it changes nothing). */
int tg_remap_parse(const char *text, size_t len, struct tg_remap **out, char *err,
                   size_t errlen);
/* Read FILE (at most TG_REMAP_MAX_FILE bytes) and parse it; messages are
 * "FILE: ..." or "FILE:N: ...". Blocking: config load and reload only,
 * never on the event loop. */
int tg_remap_load(const char *file, struct tg_remap **out, char *err, size_t errlen);
void tg_remap_free(struct tg_remap *rm);
size_t tg_remap_count(const struct tg_remap *rm);

/* Apply the rules to a filename as the client sent it. 0: out holds the
 * new name (maybe unchanged). TG_EACCES: refused by an `a` rule or the
 * step limit, msg holds the ERROR text. TG_ENAMETOOLONG: a result did not
 * fit in cap (msg is REMAP_FAILURE). The client address gives \i, \x and
 * the 4/6 flags (IPv4-mapped IPv6 is IPv4). */
int tg_remap_apply(const struct tg_remap *rm, const char *in, enum tg_opcode op,
                   const struct sockaddr *client, char *out, size_t cap, char *msg,
                   size_t msgcap);

#endif
