/* USDT test target: probes with every argument kind (constants, registers, memory
 * operands with and without offsets, signed and unsigned 1/2/4/8-byte values), one
 * probe name at three sites (two sharing an argument string), a semaphore-guarded
 * probe (usdt_guarded.c) and a probe in a shared library (usdt_lib.c).
 *
 * usage: usdt_target ROUNDS [wait]   ("wait": print "ready", read one line from stdin)
 * prints "guarded=G lib=L": how many rounds saw the semaphores set. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sdt.h>

int pybpf_guarded(int x);
int pybpf_lib_fire(long a, short b);

struct rec {
	int8_t s8;
	uint8_t u8;
	int16_t s16;
	uint16_t u16;
	int32_t s32;
	uint32_t u32;
	int64_t s64;
	uint64_t u64;
};

__attribute__((noipa)) void probe_regs(int8_t a, uint8_t b, int16_t c, uint16_t d, int32_t e,
				       uint32_t f, int64_t g, uint64_t h)
{
	DTRACE_PROBE8(pybpf, regs, a, b, c, d, e, f, g, h);
}

__attribute__((noipa)) void probe_mem(volatile struct rec *r)
{
	DTRACE_PROBE8(pybpf, mem, r->s8, r->u8, r->s16, r->u16, r->s32, r->u32, r->s64, r->u64);
}

__attribute__((noipa)) void probe_consts(void)
{
	DTRACE_PROBE6(pybpf, consts, 42, -7, (unsigned char)200, (short)-300, (uint16_t)65535,
		      (int8_t)-1);
}

/* one probe, three sites: a and c have the same argument string */
__attribute__((noipa)) void multi_a(int x) { DTRACE_PROBE2(pybpf, multi, 1, x); }
__attribute__((noipa)) void multi_b(int x) { DTRACE_PROBE2(pybpf, multi, 2, x); }
__attribute__((noipa)) void multi_c(int x) { DTRACE_PROBE2(pybpf, multi, 1, x); }

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1, guarded = 0, lib = 0;
	char line[16];

	if (argc > 2 && strcmp(argv[2], "wait") == 0) {
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			return 2;
	}
	for (int i = 0; i < rounds; i++) {
		volatile struct rec r = { -5, 250, -3000, 60000, -100000, 4000000000u,
					  -(1LL << 40) - i, 0xfedcba9876543210ull };

		probe_consts();
		probe_regs(r.s8, r.u8, r.s16, r.u16, r.s32, r.u32, r.s64, r.u64);
		probe_mem(&r);
		multi_a(100 + i);
		multi_b(200 + i);
		multi_c(300 + i);
		guarded += pybpf_guarded(i);
		lib += pybpf_lib_fire(-1000000000000L - i, (short)-2 - i);
	}
	printf("guarded=%d lib=%d\n", guarded, lib);
	return 0;
}
