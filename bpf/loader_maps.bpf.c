// SPDX-License-Identifier: GPL-2.0
/* Loader test: map kinds and declarations the loader has to understand. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct point {
	int x;
	int y;
	char tag[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct point);
} points SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned_counts SEC(".maps");

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &inner_a, [1] = &inner_b },
};

int tail_hits;

SEC("tp/syscalls/sys_enter_getsid")
int tail_target(void *ctx)
{
	tail_hits++;
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, int (void *));
} jumps SEC(".maps") = {
	.values = { [1] = (void *)&tail_target },
};

const volatile int target_tgid = 0;

SEC("tp/syscalls/sys_enter_getsid")
int entry(void *ctx)
{
	__u32 key = 1;
	__u64 *v, *inner_v;
	void *inner;

	if ((int)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	v = bpf_map_lookup_elem(&percpu, &key);
	if (v)
		(*v)++;
	v = bpf_map_lookup_elem(&pinned_counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	inner = bpf_map_lookup_elem(&outer, &key);     /* inner_b */
	if (inner) {
		__u32 zero = 0;
		inner_v = bpf_map_lookup_elem(inner, &zero);
		if (inner_v)
			*inner_v += 5;
	}
	bpf_tail_call(ctx, &jumps, 1);
	return 0;
}
