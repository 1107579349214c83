// SPDX-License-Identifier: GPL-2.0
/* biolatency: block I/O latency as log2 histograms, from issue (or, with -Q,
 * from insertion into the OS queue) to completion; per disk (-D) and per
 * operation (-F) on request. BTF tracepoints: the request is the argument. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "tools.h"

char LICENSE[] SEC("license") = "GPL";

const volatile bool targ_queued = false;
const volatile bool targ_per_disk = false;
const volatile bool targ_per_flag = false;

struct hist_key {
	__u32 dev;
	__u32 cmd_flags;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, __u64);
	__type(value, __u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct hist_key);
	__type(value, struct hist);
} hists SEC(".maps");

static __always_inline void started(struct request *rq, bool queued)
{
	__u64 key = (__u64)rq, ts;

	if (targ_dev && request_dev(rq) != targ_dev)
		return;
	/* without -Q only the issue counts; with -Q the insertion time stays */
	if (queued && !targ_queued)
		return;
	if (!queued && targ_queued && bpf_map_lookup_elem(&start, &key))
		return;
	ts = bpf_ktime_get_ns();
	bpf_map_update_elem(&start, &key, &ts, BPF_ANY);
}

SEC("tp_btf/block_rq_insert")
int BPF_PROG(block_rq_insert, struct request *rq)
{
	started(rq, true);
	return 0;
}

SEC("tp_btf/block_rq_issue")
int BPF_PROG(block_rq_issue, struct request *rq)
{
	started(rq, false);
	return 0;
}

SEC("tp_btf/block_rq_complete")
int BPF_PROG(block_rq_complete, struct request *rq, int error, unsigned int nr_bytes)
{
	__u64 key = (__u64)rq, *ts, delta;
	struct hist_key hk = {};
	struct hist *h;

	ts = bpf_map_lookup_elem(&start, &key);
	if (!ts)
		return 0;
	delta = (bpf_ktime_get_ns() - *ts) / targ_unit_ns;
	bpf_map_delete_elem(&start, &key);
	if (targ_per_disk)
		hk.dev = request_dev(rq);
	if (targ_per_flag)
		hk.cmd_flags = BPF_CORE_READ(rq, cmd_flags);
	h = hist_get(&hists, &hk);
	if (h)
		hist_add(h, delta);
	return 0;
}
