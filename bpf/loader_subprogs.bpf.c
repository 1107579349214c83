// SPDX-License-Identifier: GPL-2.0
/* Loader test: static and global subprograms, a callback (bpf_loop), two programs
 * sharing .text code, and every kind of global data section. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int target_tgid = 0;            /* .rodata */
const volatile long multiplier = 3;            /* .rodata */
int data_counter = 7;                          /* .data */
long bss_sum;                                  /* .bss */
long bss_loop_total;                           /* .bss */
int bss_calls[2];                              /* .bss */
int custom_value SEC(".data.custom") = 42;     /* .data.custom */
const char greeting[8] SEC(".rodata.str") = "hello"; /* .rodata.str */

static __noinline long twice(long x)           /* static subprogram (.text) */
{
	return x * 2;
}

__noinline long scaled(long x)                 /* global subprogram: verified alone */
{
	return x * multiplier;
}

int table[4] = { 11, 22, 33, 44 };           /* .data */
long bss_hidden;                               /* .bss */

/* Global but hidden: verified as a static subprogram (with the caller's constant
 * index), so the unchecked table[i] is safe; as a global function it is not. */
__attribute__((visibility("hidden"))) __noinline int pick(int i)
{
	return table[i];
}

static long add_index(__u32 index, void *ctx)  /* bpf_loop callback */
{
	*(long *)ctx += index;
	return 0;
}

static __always_inline int mine(void)
{
	return (int)(bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tp/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	long total = 0;

	if (!mine())
		return 0;
	bss_sum += twice(5) + scaled(10);          /* 10 + 30 = 40 per call */
	bpf_loop(4, add_index, &total, 0);         /* 0+1+2+3 = 6 */
	bss_loop_total += total;
	data_counter++;
	custom_value += greeting[0];               /* 'h' = 104 */
	bss_calls[0]++;
	return 0;
}

SEC("tp/syscalls/sys_enter_getpgid")
int on_getpgid(void *ctx)
{
	if (!mine())
		return 0;
	bss_sum += twice(100);                     /* the same static subprogram */
	bss_hidden += pick(2);
	bss_calls[1]++;
	return 0;
}
