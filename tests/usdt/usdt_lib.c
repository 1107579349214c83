/* libusdt_target.so: a semaphore-guarded probe in a shared library. */
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>

unsigned short pybpf_lib_fire_semaphore __attribute__((section(".probes")));

__attribute__((noipa)) int pybpf_lib_fire(long a, short b)
{
	if (!pybpf_lib_fire_semaphore)
		return 0;
	DTRACE_PROBE2(pybpf_lib, fire, a, b);
	return 1;
}
