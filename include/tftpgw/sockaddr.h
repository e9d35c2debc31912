/* include/tftpgw/sockaddr.h - socket addresses as the gateway reads, prints
 * and compares them. Owner: gateway/sockaddr.c. */
#ifndef TFTPGW_SOCKADDR_H
#define TFTPGW_SOCKADDR_H

#include <netinet/in.h>
#include <sys/socket.h>

#include "tftpgw/common.h"

/* "ADDR:PORT" or "[ADDR6]:PORT", numeric; port 0 (any) only when port0_ok.
 * TG_EINVAL when malformed. */
int tg_sockaddr_parse(const char *spec, bool port0_ok, struct sockaddr_storage *out);
/* "192.0.2.1:69", "[2001:db8::1]:69"; "?" for other families. */
void tg_sockaddr_str(const struct sockaddr *sa, char *out, size_t cap);
/* Same family, address and port. */
bool tg_sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b);
/* Address text without port; IPv4-mapped IPv6 as plain IPv4. TG_EINVAL for
 * other families, TG_ENOSPC when cap is short. */
int tg_sockaddr_ip(const struct sockaddr *sa, char *out, size_t cap);
/* The length a system call wants for sa (IPv4 or IPv6). */
socklen_t tg_sockaddr_len(const struct sockaddr *sa);
/* ::ffff:a.b.c.d, as a dual-stack socket shows an IPv4 client. */
bool tg_sockaddr_v4mapped(const struct sockaddr_in6 *sin6);

#endif
