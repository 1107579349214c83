// SPDX-License-Identifier: GPL-2.0
/* USDT argument test: one program attached to each probe of tests/usdt/usdt_target
 * (and its shared library) records what libbpf's bpf_usdt_arg() returns for every
 * argument, the argument count, the USDT cookie and the probe address, so the test
 * can compare each value with what the C code passed.  Built against libbpf's own
 * <bpf/usdt.bpf.h>, unchanged. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

#define MAX_ARGS 12

struct usdt_rec {
	__u64 cookie;
	__u64 ip;
	__u32 pid;
	__s32 arg_cnt;
	__u32 failed;		/* bit i: bpf_usdt_arg(ctx, i) failed */
	__s32 past_end;		/* bpf_usdt_arg(ctx, arg_cnt): -ENOENT */
	__s64 args[MAX_ARGS];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} usdt_recs SEC(".maps");

const volatile __u32 target_pid = 0;
__u64 dropped = 0;

static __always_inline int record(struct pt_regs *ctx)
{
	struct usdt_rec *rec;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	long v;
	int i;

	if (target_pid && pid != target_pid)
		return 0;
	rec = bpf_ringbuf_reserve(&usdt_recs, sizeof(*rec), 0);
	if (!rec) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	rec->cookie = bpf_usdt_cookie(ctx);
	rec->ip = PT_REGS_IP(ctx);
	rec->pid = pid;
	rec->arg_cnt = bpf_usdt_arg_cnt(ctx);
	rec->failed = 0;
	for (i = 0; i < MAX_ARGS; i++) {
		rec->args[i] = 0;
		if (i >= rec->arg_cnt)
			continue;
		if (bpf_usdt_arg(ctx, i, &v))
			rec->failed |= 1u << i;
		rec->args[i] = v;
	}
	rec->past_end = bpf_usdt_arg(ctx, rec->arg_cnt < 0 ? 0 : rec->arg_cnt, &v);
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

/* attached explicitly: attach(binary=, provider=, name=, pid=, cookie=) */
SEC("usdt")
int usdt_record(struct pt_regs *ctx)
{
	return record(ctx);
}

/* BPF_USDT's typed arguments, through the same bpf_usdt_arg() */
__s64 typed_sum = 0;
__u64 typed_calls = 0;

SEC("usdt")
int BPF_USDT(usdt_typed, long a, short b)
{
	__sync_fetch_and_add(&typed_calls, 1);
	__sync_fetch_and_add(&typed_sum, a + b);
	return 0;
}

/* SEC("usdt.s"): a sleepable USDT program may read user memory with faults allowed */
__s64 sleepable_sum = 0;

SEC("usdt.s")
int BPF_USDT(usdt_sleepable, long a, short b)
{
	long copy = 0;

	if (bpf_copy_from_user(&copy, sizeof(copy), (void *)PT_REGS_SP(ctx)) == 0)
		__sync_fetch_and_add(&sleepable_sum, a + b);
	return 0;
}
