/* kernel.c - the e2e test kernel: proves that what iPXE fetched through
 * tftpgw arrived intact by checksumming it after the boot.
 *
 * It prints, on COM1, one line for its own payload (the bulk of the kernel
 * file) and one per Multiboot module (the initrd), each with the length and
 * the CRC-32 (the zlib/IEEE one, so the host checks it with python's
 * zlib.crc32), then leaves QEMU through the isa-debug-exit device: QEMU's
 * exit status 33 tells the test the kernel ran to its end. Freestanding, no
 * interrupts, no paging: a few hundred bytes of code. */

typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned char u8;

#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_INFO_MODS (1u << 3)
#define COM1 0x3F8
/* run.sh gives QEMU -device isa-debug-exit,iobase=0xf4: value v -> exit (v << 1) | 1 */
#define EXIT_PORT 0xF4
#define EXIT_DONE 0x10
#define EXIT_BAD 0x11

extern const u8 payload_start[], payload_end[];

void kmain(u32 magic, const u32 *info);

static u32 crc_table[256];

static inline void outb(u16 port, u8 v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* iPXE leaves the UART as its console had it; set it again so the kernel
 * does not depend on that (115200 8N1, FIFO on). */
static void serial_init(void)
{
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x80);
    outb(COM1 + 0, 0x01);
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);
    outb(COM1 + 2, 0xC7);
    outb(COM1 + 4, 0x03);
}

static void putc_(char c)
{
    unsigned spins = 0;

    /* bounded: a missing UART must not hang the test, QEMU's timeout would */
    while (!(inb(COM1 + 5) & 0x20) && ++spins < 1000000u)
        ;
    outb(COM1, (u8)c);
}

static void puts_(const char *s)
{
    while (*s) {
        if (*s == '\n')
            putc_('\r');
        putc_(*s++);
    }
}

static void puthex(u32 v)
{
    int i;

    for (i = 28; i >= 0; i -= 4)
        putc_("0123456789abcdef"[(v >> i) & 0xF]);
}

static void putdec(u32 v)
{
    char buf[11];
    int n = 0;

    do {
        buf[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        putc_(buf[--n]);
}

static void crc_init(void)
{
    u32 i, c;
    int k;

    for (i = 0; i < 256; i++) {
        c = i;
        for (k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static u32 crc32(const u8 *p, u32 n)
{
    u32 c = 0xFFFFFFFFu;

    while (n--)
        c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

static void report(const char *what, const char *name, const u8 *p, u32 n)
{
    puts_(what);
    if (name) {
        puts_(" name=");
        puts_(name);
    }
    puts_(" len=");
    putdec(n);
    puts_(" crc32=");
    puthex(crc32(p, n));
    puts_("\n");
}

void kmain(u32 magic, const u32 *info)
{
    u32 i, count;
    const u32 *mod;

    serial_init();
    if (magic != MB_BOOT_MAGIC) {
        puts_("E2E-KERNEL bad multiboot magic ");
        puthex(magic);
        puts_("\n");
        outb(EXIT_PORT, EXIT_BAD);
        return;
    }
    puts_("E2E-KERNEL started\n");
    crc_init();
    report("E2E-PAYLOAD", 0, payload_start, (u32)(payload_end - payload_start));
    count = (info[0] & MB_INFO_MODS) ? info[5] : 0;
    mod = (const u32 *)info[6];
    for (i = 0; i < count; i++, mod += 4)
        report("E2E-MODULE", mod[2] ? (const char *)mod[2] : "-", (const u8 *)mod[0],
               mod[1] - mod[0]);
    puts_("E2E-KERNEL modules=");
    putdec(count);
    puts_(" end\n");
    outb(EXIT_PORT, EXIT_DONE);
}
