/* include/tftpgw/packet.h - pure TFTP packet codec: no allocation, no I/O.
 * Parsed strings point into the caller's buffer and live as long as it. */
#ifndef TFTPGW_PACKET_H
#define TFTPGW_PACKET_H

#include "tftpgw/common.h"

enum tg_opcode {
    TG_OP_RRQ = 1,
    TG_OP_WRQ = 2,
    TG_OP_DATA = 3,
    TG_OP_ACK = 4,
    TG_OP_ERROR = 5,
    TG_OP_OACK = 6 /* RFC 2347 */
};

#define TG_MAX_OPTS 16          /* pairs kept from one request; extras ignored */
#define TG_SEGSIZE 512          /* RFC 1350 block size */
#define TG_BLKSIZE_MIN 8        /* RFC 2348 */
#define TG_BLKSIZE_MAX 65464    /* RFC 2348 */
#define TG_HDR 4                /* opcode + block number / error code */

struct tg_opt_pair {
    const char *name;
    const char *value;
};

struct tg_request {
    const char *filename;
    const char *mode;
    size_t nopts;
    struct tg_opt_pair opts[TG_MAX_OPTS];
};

struct tg_packet {
    enum tg_opcode op;
    union {
        struct tg_request req; /* RRQ, WRQ */
        struct {
            uint16_t block;
            const uint8_t *data;
            size_t len;
        } data;
        struct {
            uint16_t block;
        } ack;
        struct {
            uint16_t code;
            const char *msg; /* "" when the sender left it out */
        } error;
        struct {
            size_t nopts;
            struct tg_opt_pair opts[TG_MAX_OPTS];
        } oack;
    } u;
};

/* Parse one datagram. Returns 0, or TG_EINVAL when it is malformed (unknown
 * opcode, too short, filename or mode without NUL, DATA/ACK/ERROR shorter
 * than 4 bytes; bytes after an ACK's block number are ignored, as some
 * clients pad). Request and OACK options stop at the first incomplete pair
 * or empty name (OpenFirmware sends trailing garbage); pairs beyond
 * TG_MAX_OPTS are ignored. An ERROR without a NUL-terminated message gets
 * msg "". The buffer is read, never written. */
int tg_pkt_parse(const uint8_t *buf, size_t len, struct tg_packet *out);

/* The words RFC 1350 section 5 gives error codes 1 to 7 ("File not
 * found", "Access violation", ...); NULL for 0 and any other code, whose
 * text is the sender's own. The one table of them: every ERROR tftpgw
 * sends goes through tg_pkt_build_error, which puts these words on the
 * wire whatever detail the caller had; the detail belongs in the log. */
const char *tg_tftp_error_text(uint16_t code);

/* Builders write into buf and return the datagram length, or 0 when cap is
 * too small. tg_pkt_build_error sends tg_tftp_error_text(code) when there
 * is one, else msg (which may be NULL), truncated to keep the datagram
 * under 512 bytes and within cap; it returns 0 only when cap < 5.
 * tg_pkt_build_request accepts only RRQ and WRQ. */
size_t tg_pkt_build_ack(uint8_t *buf, size_t cap, uint16_t block);
size_t tg_pkt_build_data_hdr(uint8_t *buf, size_t cap, uint16_t block);
size_t tg_pkt_build_error(uint8_t *buf, size_t cap, uint16_t code,
                          const char *msg);
size_t tg_pkt_build_oack(uint8_t *buf, size_t cap,
                         const struct tg_opt_pair *opts, size_t nopts);
/* Client side, for tests and the benchmark load generator. */
size_t tg_pkt_build_request(uint8_t *buf, size_t cap, enum tg_opcode op,
                            const char *filename, const char *mode,
                            const struct tg_opt_pair *opts, size_t nopts);

const char *tg_pkt_opname(unsigned op); /* "RRQ"... or "?" */

#endif
