// SPDX-License-Identifier: GPL-2.0
/* Externs test: __ksym variables (typed ones through kernel BTF, untyped ones
 * through kallsyms), kfunc calls, and __weak ones this kernel lacks, probed
 * with bpf_ksym_exists().  Each program writes what it saw into .bss. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

#ifndef bpf_ksym_exists		/* libbpf >= 1.2's bpf_helpers.h has it */
#define bpf_ksym_exists(sym) ({							\
	_Static_assert(!__builtin_constant_p(!!sym), #sym " should be marked as __weak"); \
	!!sym;									\
})
#endif

extern const struct rq runqueues __ksym;			/* typed, per-CPU */
extern const int pybpf_no_such_var __ksym __weak;		/* typed, missing */
extern const void _text __ksym;					/* untyped */
extern const void pybpf_no_such_symbol __ksym __weak;		/* untyped, missing */

extern struct task_struct *bpf_task_acquire(struct task_struct *p) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void bpf_rcu_read_lock(void) __ksym __weak;		/* exists */
extern void bpf_pybpf_no_such_kfunc(void) __ksym __weak;	/* missing */

__u32 target_pid;
__u64 rq_cpu = ~0ULL;
__u64 text_addr;
__u64 missing_symbol_addr = ~0ULL;
__u64 missing_var_exists = ~0ULL;
__u64 task_tgid;
__u64 kfunc_exists;
__u64 missing_kfunc_exists = ~0ULL;
__u64 missing_kfunc_called;

SEC("raw_tp")
int typed_ksym(void *ctx)
{
	const struct rq *rq = bpf_per_cpu_ptr(&runqueues, 1);

	if (rq)
		rq_cpu = rq->cpu;
	return 0;
}

SEC("raw_tp")
int untyped_ksym(void *ctx)
{
	text_addr = (__u64)&_text;
	missing_symbol_addr = (__u64)&pybpf_no_such_symbol;
	missing_var_exists = bpf_ksym_exists(&pybpf_no_such_var);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(kfuncs, struct pt_regs *regs, long id)
{
	struct task_struct *task;

	if (bpf_get_current_pid_tgid() >> 32 != target_pid)
		return 0;
	task = bpf_task_acquire(bpf_get_current_task_btf());
	if (task) {
		task_tgid = task->tgid;
		bpf_task_release(task);
	}
	kfunc_exists = bpf_ksym_exists(bpf_rcu_read_lock);
	missing_kfunc_exists = bpf_ksym_exists(bpf_pybpf_no_such_kfunc);
	if (bpf_ksym_exists(bpf_pybpf_no_such_kfunc)) {
		bpf_pybpf_no_such_kfunc();
		missing_kfunc_called = 1;
	}
	return 0;
}
