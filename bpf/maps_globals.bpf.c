// SPDX-License-Identifier: GPL-2.0
/* Map tests: globals of every shape GlobalData encodes through BTF (a struct,
 * an array, a string, a signed byte), a .bss of two pages and a section of a page and a byte, a struct in
 * .rodata, and a hidden-only section (not mmapable: read through the map). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define __hidden __attribute__((visibility("hidden")))

struct mg_pair {
	__u32 a;
	__s16 b;
	__u8 c;
	char tag[5];
};

struct mg_pair pair = { .a = 1, .b = -2, .c = 3, .tag = "abc" };
__u32 arr[3] = { 10, 20, 30 };
char name[8] = "init";
__s8 small = -1;
__u8 big[8184];
__s64 sum;
__u8 mid[4097] SEC(".data.mg_mid");
const volatile struct mg_pair cpair = { .a = 5 };
__hidden __u32 hid_a SEC(".data.mg_hidden") = 0x11111111;
__hidden __u32 hid_b SEC(".data.mg_hidden") = 0x22222222;

SEC("syscall")
int mg_run(void *ctx)
{
	sum = (__s64)pair.a + pair.b + pair.c + arr[0] + arr[1] + arr[2] + big[0]
	      + big[8183] + mid[4096] + cpair.a + name[0] + small + hid_a + hid_b;
	big[4097] = 0x5a;
	mid[4096] = 0x77;
	hid_b += 1;
	return 0;
}
