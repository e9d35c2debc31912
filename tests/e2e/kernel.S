/* kernel.S - entry of the e2e test kernel (Multiboot v1, 32-bit).
 *
 * iPXE loads the ELF, finds this header in the first 8 KiB and jumps to
 * _start in protected mode with EAX = 0x2BADB002 and EBX = the info block.
 * Flag bit 0 asks for page-aligned modules; no other feature is needed, and
 * an unsupported one would make iPXE refuse the image. */
        .section .mbhdr, "a"
        .align 4
        .long 0x1BADB002
        .long 0x00000001
        .long -(0x1BADB002 + 0x00000001)

        .text
        .globl _start
_start:
        cli
        movl $stack_top, %esp
        pushl %ebx
        pushl %eax
        call kmain
1:      hlt
        jmp 1b

        .bss
        .align 16
        .space 16384
stack_top:

/* The kernel-sized random payload, checked by kmain; the file is named on
 * the assembler's include path (-Wa,-I) by run.sh. */
        .section .payload, "a"
        .globl payload_start, payload_end
payload_start:
        .incbin "payload.bin"
payload_end:

        .section .note.GNU-stack, "", @progbits
