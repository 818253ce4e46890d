/*
 * guest.S: a 64 KiB firmware image for QEMU's -bios that proves a guest's
 * RAM and CPU state survive a save and restore.
 *
 * From the reset vector it switches to 32-bit flat protected mode, fills
 * PATTERN_MIB MiB of RAM from 1 MiB up with a word per address that
 * depends on the address (address * 0x9e3779b1), prints
 *
 *	vmguest filled=<MiB> MiB
 *
 * and then loops forever: it increments a counter kept in RAM, checks one
 * MiB of the pattern (the next one each time, so that PATTERN_MIB lines
 * check every byte once), prints
 *
 *	vmguest count=<count> pass=<passes> bad=<mismatches>
 *
 * and busy-waits WAIT_LOOPS iterations (a copy kept in RAM, so a debugger
 * or a test may change it in a running guest). Numbers are 8 hex digits.
 * count is the number of lines so far, passes the number of full passes
 * over the pattern, mismatches the number of 4-byte words found wrong
 * (each time they are checked). The first mismatch also prints
 *
 *	vmguest bad at=<address>
 *
 * Every line goes to COM1 (0x3f8) and ends with a newline. The counters
 * live in RAM at STATE, the stack below STACK_TOP; the guest needs
 * PATTERN_MIB + 1 MiB of RAM. Only the reset vector fills: a guest
 * restored from a migration state goes on inside the loop with the RAM it
 * had, and its count goes on from the one in RAM.
 *
 * Built with --defsym PATTERN_MIB=N --defsym WAIT_LOOPS=N:
 *	as --32 -o guest.o guest.S
 *	ld -m elf_i386 -Ttext=0xf0000 -e reset -o guest.elf guest.o
 *	objcopy -O binary -j .text guest.elf guest.bin
 * The image is linked where QEMU maps the last 64 KiB of the BIOS below
 * 1 MiB (0xf0000), so absolute addresses in it are linear addresses there.
 */

	.ifndef PATTERN_MIB
	.error "PATTERN_MIB is not defined (--defsym PATTERN_MIB=N)"
	.endif
	.ifndef WAIT_LOOPS
	.error "WAIT_LOOPS is not defined (--defsym WAIT_LOOPS=N)"
	.endif
	.if PATTERN_MIB < 1 || PATTERN_MIB > 3000
	.error "PATTERN_MIB must be 1..3000"
	.endif
	.if WAIT_LOOPS < 1
	.error "WAIT_LOOPS must be at least 1"
	.endif

	.set MIB, 0x100000
	.set PATTERN, MIB		/* the pattern starts at 1 MiB */
	.set HASH, 0x9e3779b1
	.set STATE, 0x1000		/* the counters, in RAM */
	.set COUNT, STATE
	.set PASSES, STATE + 4
	.set BAD, STATE + 8
	.set CHUNK, STATE + 12		/* the MiB the next line checks */
	.set WAIT, STATE + 16
	.set STACK_TOP, 0x8000
	.set COM1, 0x3f8
	.set LSR_THRE, 0x20		/* line status: transmitter empty */

	.text
	.code16
base:
start16:
	cli
	cld
	inb $0x92, %al			/* fast A20 gate on */
	orb $2, %al
	andb $0xfe, %al
	outb %al, $0x92
	lgdtl %cs:gdt_desc - base
	movl %cr0, %eax
	orb $1, %al			/* PE */
	movl %eax, %cr0
	ljmpl $0x08, $start32

	.code32
start32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $STACK_TOP, %esp

	xorl %eax, %eax
	movl %eax, COUNT
	movl %eax, PASSES
	movl %eax, BAD
	movl %eax, CHUNK
	movl $WAIT_LOOPS, WAIT

	movl $PATTERN, %edi
	movl $PATTERN + PATTERN_MIB * MIB, %ecx
1:	imull $HASH, %edi, %eax
	stosl
	cmpl %ecx, %edi
	jb 1b

	movl $s_filled, %esi
	call puts
	movl $PATTERN_MIB, %eax
	call puthex
	movl $s_mib, %esi
	call puts

loop:
	incl COUNT
	movl CHUNK, %ebx
	movl %ebx, %edi
	shll $20, %edi
	addl $PATTERN, %edi
	leal MIB(%edi), %edx
2:	imull $HASH, %edi, %eax
	cmpl %eax, (%edi)
	jne mismatch
3:	addl $4, %edi
	cmpl %edx, %edi
	jb 2b
	incl %ebx
	cmpl $PATTERN_MIB, %ebx
	jb 4f
	xorl %ebx, %ebx
	incl PASSES
4:	movl %ebx, CHUNK

	movl $s_count, %esi
	call puts
	movl COUNT, %eax
	call puthex
	movl $s_pass, %esi
	call puts
	movl PASSES, %eax
	call puthex
	movl $s_bad, %esi
	call puts
	movl BAD, %eax
	call puthex
	movb $'\n', %al
	call putc

	movl WAIT, %ecx
5:	decl %ecx
	jnz 5b
	jmp loop

mismatch:
	cmpl $0, BAD
	jne 6f
	pushal
	movl $s_badat, %esi
	call puts
	movl %edi, %eax
	call puthex
	movb $'\n', %al
	call putc
	popal
6:	incl BAD
	jmp 3b

/* putc writes %al to COM1 once it can take it; it clobbers %ah. */
putc:
	pushl %edx
	movb %al, %ah
	movw $COM1 + 5, %dx
1:	inb %dx, %al
	testb $LSR_THRE, %al
	jz 1b
	movb %ah, %al
	movw $COM1, %dx
	outb %al, %dx
	popl %edx
	ret

/* puts writes the NUL-terminated string at %esi; it clobbers %eax, %esi. */
puts:
1:	lodsb
	testb %al, %al
	jz 2f
	call putc
	jmp 1b
2:	ret

/* puthex writes %eax as 8 hex digits; it clobbers %eax. */
puthex:
	pushl %ebx
	pushl %ecx
	movl %eax, %ebx
	movl $8, %ecx
1:	roll $4, %ebx
	movb %bl, %al
	andb $0xf, %al
	addb $'0', %al
	cmpb $'9', %al
	jbe 2f
	addb $'a' - '9' - 1, %al
2:	call putc
	loop 1b
	popl %ecx
	popl %ebx
	ret

s_filled:	.asciz "vmguest filled="
s_mib:		.asciz " MiB\n"
s_count:	.asciz "vmguest count="
s_pass:		.asciz " pass="
s_bad:		.asciz " bad="
s_badat:	.asciz "vmguest bad at="

/* Flat 4 GiB code (0x08) and data (0x10) segments. */
	.p2align 3
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff
	.quad 0x00cf92000000ffff
gdt_desc:
	.word gdt_desc - gdt - 1
	.long gdt

/* The CPU starts 16 bytes below the top of the image, with CS based at
 * 0xffff0000; the far jump moves CS to the copy below 1 MiB. */
	.code16
	.org 0xfff0
	.globl reset
reset:
	ljmp $0xf000, $start16 - base
	.org 0x10000

	.section .note.GNU-stack, "", @progbits
