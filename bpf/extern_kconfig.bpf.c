// SPDX-License-Identifier: GPL-2.0
/* Externs test: __kconfig values, both libbpf's virtual LINUX_* ones and CONFIG_*
 * ones from the kernel's config, in each C type libbpf accepts (tristate enum,
 * bool, char, integers, char array).  read_kconfig copies them into .bss; the
 * tests run it with BPF_PROG_TEST_RUN. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern bool LINUX_HAS_BPF_COOKIE __kconfig;
extern bool LINUX_HAS_SYSCALL_WRAPPER __kconfig;
extern int CONFIG_HZ __kconfig;
extern unsigned long long CONFIG_PHYSICAL_START __kconfig __weak;	/* hex */
extern enum libbpf_tristate CONFIG_BPF_SYSCALL __kconfig;
extern bool CONFIG_BPF_JIT __kconfig;
extern char CONFIG_BPF_EVENTS __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig __weak;
extern bool CONFIG_KPROBES __kconfig __weak;			/* maybe "is not set" */
extern int CONFIG_PYBPF_NO_SUCH_OPTION __kconfig __weak;
extern unsigned int LINUX_PYBPF_UNKNOWN __kconfig __weak;

__u64 kernel_version;
__u64 has_bpf_cookie;
__u64 has_syscall_wrapper;
__u64 hz;
__u64 physical_start;
__u64 bpf_syscall;
__u64 bpf_jit;
__u64 bpf_events;
char hostname[16];
__u64 kprobes;
__u64 no_such_option;
__u64 unknown_virtual;

SEC("raw_tp")
int read_kconfig(void *ctx)
{
	kernel_version = LINUX_KERNEL_VERSION;
	has_bpf_cookie = LINUX_HAS_BPF_COOKIE;
	has_syscall_wrapper = LINUX_HAS_SYSCALL_WRAPPER;
	hz = CONFIG_HZ;
	physical_start = CONFIG_PHYSICAL_START;
	bpf_syscall = CONFIG_BPF_SYSCALL;
	bpf_jit = CONFIG_BPF_JIT;
	bpf_events = CONFIG_BPF_EVENTS;
	__builtin_memcpy(hostname, CONFIG_DEFAULT_HOSTNAME, sizeof(hostname));
	kprobes = CONFIG_KPROBES;
	no_such_option = CONFIG_PYBPF_NO_SUCH_OPTION;
	unknown_virtual = LINUX_PYBPF_UNKNOWN;
	return 0;
}
