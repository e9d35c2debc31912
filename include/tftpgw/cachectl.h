/* include/tftpgw/cachectl.h - HTTP caching rules for a shared cache
 * (RFC 9111), pure functions: the response header fields that decide
 * whether a response may be stored and for how long it stays fresh.
 * Owner: gateway/cachectl.c; tested in tests/unit/test_cachectl.c. */
#ifndef TFTPGW_CACHECTL_H
#define TFTPGW_CACHECTL_H

#include <stddef.h>
#include <stdint.h>

#include "tftpgw/backend.h"

/* Nothing said yet: every number absent. */
void tg_cc_init(struct tg_cache_control *c);
/* Fold one header line ("Name: value", CRLF or not) into c: Cache-Control
 * (any number of lines; directives accumulate), Expires, Date, Age and
 * Vary. Other fields are ignored. */
void tg_cc_header(struct tg_cache_control *c, const char *line, size_t len);
/* How long a response received at now_s (Unix seconds) stays fresh, in
 * milliseconds (RFC 9111 section 4.2): s-maxage, else max-age, else
 * Expires minus Date, each less the response's age (Age, or how far Date
 * lies behind now_s); no-cache is 0. -1: the origin said nothing about
 * freshness (the cache's default applies). */
int64_t tg_cc_fresh_ms(const struct tg_cache_control *c, int64_t now_s);
/* Why the response must not be stored by a shared cache, or NULL when it
 * may: no-store, private, Vary: *, or a Vary on a field the request sent
 * differently per client (X-TFTP-Client, X-TFTP-File, when client_headers).
 * Fields tftpgw sends the same for every client (configured `header`
 * lines) or not at all do not prevent storing. */
const char *tg_cc_unstorable(const struct tg_cache_control *c, bool client_headers);

#endif
