/* include/tftpgw/uri.h - URL path encoding for HTTP and S3 keys. */
#ifndef TFTPGW_URI_H
#define TFTPGW_URI_H

#include "tftpgw/common.h"

/* Percent-encode a normalised key ("a/b c") for a URL path: every byte
 * outside RFC 3986's unreserved set (A-Z a-z 0-9 - . _ ~) becomes %XX with
 * upper-case hex, and '/' separators are kept. That is also SigV4's
 * canonical URI encoding for S3. A filename can therefore never add a query
 * ('?'), a fragment ('#') or change the host. Returns the length written
 * (NUL-terminated) or TG_ENAMETOOLONG. */
int tg_uri_encode_path(const char *key, char *out, size_t cap);

/* The same, for a query value: '/' is encoded too (SigV4 canonical query). */
int tg_uri_encode_component(const char *s, char *out, size_t cap);

#endif
