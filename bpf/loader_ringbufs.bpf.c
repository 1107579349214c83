// SPDX-License-Identifier: GPL-2.0
/* Loader test: ring buffer sizes that are not a power-of-two number of pages
 * are rounded up as libbpf does (kernel and user ring buffers alike). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 3 * 4096);
} odd_ring SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 100);
} tiny_user_ring SEC(".maps");

SEC("syscall")
int emit(void *ctx)
{
	__u64 v = 1;

	return bpf_ringbuf_output(&odd_ring, &v, sizeof(v), 0);
}
