// SPDX-License-Identifier: GPL-2.0
/* USDT proof on Debian's /usr/bin/python3.11: python:function__entry fires at every
 * Python function call with (const char *filename, const char *funcname, int lineno).
 * Each call becomes one ring buffer record; the test runs a script with known
 * functions in a child interpreter (attached with its pid) and checks the names and
 * line numbers received.  Built against libbpf's own <bpf/usdt.bpf.h>, unchanged. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/usdt.bpf.h>

char LICENSE[] SEC("license") = "GPL";

#define PY_NAME_LEN 96

struct py_call {
	__u32 pid;
	__s32 lineno;
	__s32 arg_cnt;
	__s32 file_len;		/* bpf_probe_read_user_str() results: > 0 on success */
	__s32 func_len;
	__u32 pad;
	__u64 cookie;
	char filename[PY_NAME_LEN];
	char funcname[PY_NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} py_calls SEC(".maps");

__u64 dropped = 0;

SEC("usdt")
int BPF_USDT(py_entry, const char *filename, const char *funcname, int lineno)
{
	struct py_call *rec = bpf_ringbuf_reserve(&py_calls, sizeof(*rec), 0);

	if (!rec) {
		__sync_fetch_and_add(&dropped, 1);
		return 0;
	}
	rec->pid = bpf_get_current_pid_tgid() >> 32;
	rec->lineno = lineno;
	rec->arg_cnt = bpf_usdt_arg_cnt(ctx);
	rec->cookie = bpf_usdt_cookie(ctx);
	rec->pad = 0;
	rec->file_len = bpf_probe_read_user_str(rec->filename, sizeof(rec->filename), filename);
	rec->func_len = bpf_probe_read_user_str(rec->funcname, sizeof(rec->funcname), funcname);
	bpf_ringbuf_submit(rec, 0);
	return 0;
}

/* Auto-attached by obj.attach(), to every process running Debian's python3.11. */
const volatile __u32 target_pid = 0;
__u64 returns = 0;

SEC("usdt//usr/bin/python3.11:python:function__return")
int BPF_USDT(py_return, const char *filename, const char *funcname, int lineno)
{
	if (target_pid && (bpf_get_current_pid_tgid() >> 32) == target_pid)
		__sync_fetch_and_add(&returns, 1);
	return 0;
}
