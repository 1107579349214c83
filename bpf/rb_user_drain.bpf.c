// SPDX-License-Identifier: GPL-2.0
/* A user ring buffer drained by BPF: every 16-byte message {seq, value} that
 * Python produces is echoed as {seq, value * 2} into a kernel ring buffer. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct rb_msg {
	__u64 seq;
	__u64 value;
};

struct {
	__uint(type, BPF_MAP_TYPE_USER_RINGBUF);
	__uint(max_entries, 4096);
} user_rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} echo_rb SEC(".maps");

__u64 drained;          /* messages seen by on_msg, all runs */
__u64 bad_size;         /* messages that were not 16 bytes */
long last_ret;          /* bpf_user_ringbuf_drain()'s return of the last run */

static long on_msg(struct bpf_dynptr *dynptr, void *ctx)
{
	struct rb_msg m;

	if (bpf_dynptr_read(&m, sizeof(m), dynptr, 0, 0)) {
		bad_size++;
		return 0;
	}
	m.value *= 2;
	bpf_ringbuf_output(&echo_rb, &m, sizeof(m), 0);
	drained++;
	return 0;
}

SEC("syscall")
int drain(void *ctx)
{
	last_ret = bpf_user_ringbuf_drain(&user_rb, on_msg, NULL, 0);
	return 0;
}
