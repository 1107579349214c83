// SPDX-License-Identifier: GPL-2.0
/* Loader test: which global data maps are BPF_F_MMAPABLE (libbpf: those with a
 * non-static variable; __hidden globals count as static), a data section holding
 * a spin lock (the kernel refuses to mmap it), a static-only section, and a
 * string literal's .rodata.str1.1 (no DATASEC at all). */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define __hidden __attribute__((visibility("hidden")))
#define private(name) SEC(".data." #name) __hidden __attribute__((aligned(8)))

/* .bss: one visible, one hidden global: mmapable */
__u64 visible_count = 0;
__hidden __u64 hidden_count = 0;

/* .data.locked: only hidden globals, one of them a spin lock */
private(locked) struct bpf_spin_lock lock;
private(locked) __u64 locked_total = 0;

/* .data.hidden: only hidden globals, plain values */
private(hidden) __u64 hidden_only = 40;

/* .data.statics: only static variables */
static __u64 static_only SEC(".data.statics") = 7;

/* .data.vislock: a visible spin lock: libbpf makes the map mmapable, the
 * kernel still refuses to mmap it */
struct bpf_spin_lock vis_lock SEC(".data.vislock");
__u64 vis_total SEC(".data.vislock") = 0;

char match[8] = {};
int literal_cmp = -1;

SEC("syscall")
int bump(void *ctx)
{
	visible_count += 1;
	hidden_count += 2;
	bpf_spin_lock(&lock);
	locked_total += 5;
	bpf_spin_unlock(&lock);
	bpf_spin_lock(&vis_lock);
	vis_total += 7;
	bpf_spin_unlock(&vis_lock);
	hidden_only += 1;
	static_only += 3;
	/* the literal lives in .rodata.str1.1, frozen and read-only to programs */
	literal_cmp = bpf_strncmp(match, sizeof(match), "pybpf");
	return 0;
}
