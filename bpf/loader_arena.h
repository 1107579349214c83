/* SPDX-License-Identifier: GPL-2.0 */
/* Loader test: an ARENA map and __arena globals (clang >= 19, address_space(1)),
 * shared by loader_arena.bpf.c (kernel-chosen address) and
 * loader_arena_fixed.bpf.c (map_extra fixes the address). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define __arena __attribute__((address_space(1)))

struct {
	__uint(type, BPF_MAP_TYPE_ARENA);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 4);		/* pages */
#ifdef ARENA_ADDRESS
	/* libbpf's __ulong(): the value of a 64-bit enum (Debian's headers lack it) */
	enum { arena_address = ARENA_ADDRESS } map_extra;
#endif
} arena SEC(".maps");

int __arena arena_counter = 7;
__u64 __arena arena_values[4] = { 1, 2, 3, 4 };

__u64 seen_counter = 0;
__u64 page_address = 0;

/* a page allocated by the program: its pointer is a user-space address */
void __arena *bpf_arena_alloc_pages(void *map, void __arena *addr, __u32 page_cnt,
				    int node_id, __u64 flags) __ksym;

SEC("syscall")
int arena_bump(void *ctx)
{
	seen_counter = arena_counter;
	arena_counter += 1;
	arena_values[2] *= 10;
	return arena_counter;
}

SEC("syscall")
int arena_alloc(void *ctx)
{
	__u64 __arena *page = bpf_arena_alloc_pages(&arena, 0, 1, -1, 0);

	if (!page)
		return 1;
	page[0] = 0xfeedbeefcafeull;
	page[1] = arena_counter;
	page_address = (__u64)page;
	return 0;
}
