// SPDX-License-Identifier: GPL-2.0
/* Loader test: a pinning value libbpf does not know (2): open() must refuse it. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, 2);
} pinned_wrong SEC(".maps");

SEC("syscall")
int touch(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&pinned_wrong, &key);

	return v ? 1 : 0;
}
