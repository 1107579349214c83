// SPDX-License-Identifier: GPL-2.0
/* A newcomer's ring buffer program: its record struct is used only through
 * bpf_ringbuf_reserve(), so clang leaves it out of the object's BTF (no anchor
 * such as `const struct event *unused __attribute__((unused));`).  `load`
 * prints its records as hex and says how to make the struct visible.  The
 * record carries control characters in its string, for the table's escaping. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct hidden_event {
	__u32 pid;
	__u32 magic;
	char note[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} hidden_rb SEC(".maps");

const volatile int target_pid = 0;

SEC("tp/syscalls/sys_enter_getpgid")
int emit_hidden(void *ctx)
{
	struct hidden_event *e;

	if ((int)(bpf_get_current_pid_tgid() >> 32) != target_pid)
		return 0;
	e = bpf_ringbuf_reserve(&hidden_rb, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = target_pid;
	e->magic = 0xabcd;
	__builtin_memcpy(e->note, "a\tb\nc\x01", 7);
	e->note[7] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
