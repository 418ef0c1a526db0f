// SPDX-License-Identifier: GPL-2.0 OR MIT
/* etok_amx_xcr0.c — test-only Linux module for the Bochs emulation harness (scripts/isa_emulate.sh).
 *
 * Linux enables the AMX tile states (XCR0 bits 17, 18) only on CPUs with XFD (extended feature
 * disable, CPUID.(EAX=0DH,ECX=1):EAX[4]); Bochs 3.0 emulates AMX but not XFD, so under it Linux
 * leaves XCR0 without the tile bits and AMX instructions fault. This module sets the two bits on
 * the (single) emulated CPU, so AMX code can be tested there. The kernel's own XSAVE masks stay
 * as they were: tile registers are then neither saved nor restored on context switch, which is
 * harmless only because the guest runs one program on one CPU. Never load it anywhere else.
 * arch_prctl(ARCH_REQ_XCOMP_PERM) still fails; the harness's /init tells the program through
 * the environment variable ETOK_ISA_AMX_XCR0=1 (docs/ISA_EMULATION.md).
 */
#include <linux/module.h>
#include <asm/cpufeature.h>
#include <asm/fpu/xcr.h>

#define TILE_BITS ((1ULL << 17) | (1ULL << 18))

static int __init etok_amx_xcr0_init(void)
{
	unsigned int eax, ebx, ecx, edx;
	u64 before, after;

	cpuid_count(7, 0, &eax, &ebx, &ecx, &edx);
	if (!(edx & (1U << 24))) {
		pr_err("etok_amx_xcr0: CPU does not claim AMX-TILE\n");
		return -ENODEV;
	}
	if (num_online_cpus() != 1) {
		pr_err("etok_amx_xcr0: refusing on %u CPUs (tile state is not context-switched)\n",
		       num_online_cpus());
		return -EINVAL;
	}
	before = xgetbv(XCR_XFEATURE_ENABLED_MASK);
	xsetbv(XCR_XFEATURE_ENABLED_MASK, before | TILE_BITS);
	after = xgetbv(XCR_XFEATURE_ENABLED_MASK);
	pr_info("etok_amx_xcr0: XCR0 0x%llx -> 0x%llx\n", before, after);
	return (after & TILE_BITS) == TILE_BITS ? 0 : -EIO;
}

static void __exit etok_amx_xcr0_exit(void)
{
}

module_init(etok_amx_xcr0_init);
module_exit(etok_amx_xcr0_exit);
MODULE_LICENSE("Dual MIT/GPL");
MODULE_DESCRIPTION("test only: enable AMX tile state in XCR0 under an emulator without XFD");
