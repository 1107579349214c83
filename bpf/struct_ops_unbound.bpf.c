// SPDX-License-Identifier: GPL-2.0
/* A struct_ops program that no struct_ops map binds: nothing says which struct
 * and member it implements, so (as with libbpf) the object loads only once the
 * program's autoload is turned off or it is given an attach target. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

__u64 ticks = 0;

SEC("struct_ops/orphan")
void BPF_PROG(orphan, struct sock *sk)
{
}

SEC("tp/syscalls/sys_enter_getppid")
int tick(void *ctx)
{
	ticks++;
	return 0;
}
