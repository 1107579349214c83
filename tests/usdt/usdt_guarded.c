/* The semaphore-guarded probe of usdt_target: it fires only while a tracer holds the
 * semaphore (the kernel counts it for uprobes with a ref_ctr_offset). */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short pybpf_guarded_semaphore __attribute__((section(".probes")));

__attribute__((noipa)) int pybpf_guarded(int x)
{
	if (!pybpf_guarded_semaphore)
		return 0;
	DTRACE_PROBE1(pybpf, guarded, x);
	return 1;
}
