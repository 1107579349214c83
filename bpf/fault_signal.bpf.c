// SPDX-License-Identifier: GPL-2.0
/* The object of the signal trials (tests/test_runtime_faults.py): every kind of
 * map a reader takes, global data, and two programs to attach, all with
 * names no other object uses, so that a trial can tell that none survives. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

const volatile int sigt_pid = 0;
__u64 sigt_hits = 0;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} sigt_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} sigt_urb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} sigt_pb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} sigt_hash SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int sigt_tp(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == sigt_pid)
		__sync_fetch_and_add(&sigt_hits, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int sigt_raw(void *ctx)
{
	if ((bpf_get_current_pid_tgid() >> 32) == sigt_pid)
		__sync_fetch_and_add(&sigt_hits, 1);
	return 0;
}
