// SPDX-License-Identifier: GPL-2.0
/* Producer for tools/bench_cli.py (the CLI's printing speed): every getpgid()
 * of the producer process writes `batch_cnt` exec-snoop-like records into the
 * ring.  seq numbers the records written; ring-full failures go to `dropped`. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define MAX_BATCH 1024

struct cli_event {
	__u64 ts_ns;
	__u32 pid;
	__u32 seq;
	char comm[16];
	char path[32];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 32 * 1024 * 1024);
} events SEC(".maps");

const struct cli_event *unused_cli_event __attribute__((unused));

const volatile __u32 batch_cnt = 256;
__u32 producer_tgid;
__u32 next_seq;
__u64 dropped;

SEC("tp/syscalls/sys_enter_getpgid")
int emit_events(void *ctx)
{
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	if (!producer_tgid || pid != producer_tgid)
		return 0;
	for (__u32 i = 0; i < MAX_BATCH && i < batch_cnt; i++) {
		struct cli_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

		if (!e) {
			dropped++;
			continue;
		}
		e->ts_ns = bpf_ktime_get_ns();
		e->pid = pid;
		e->seq = next_seq++;
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		__builtin_memcpy(e->path, "/usr/lib/bench/producer\0\0\0\0\0\0\0\0", 32);
		bpf_ringbuf_submit(e, 0);
	}
	return 0;
}
