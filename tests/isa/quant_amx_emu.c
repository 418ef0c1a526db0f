/* quant_amx_emu.c — src/engine/quant_amx.c with its tile operations done in C (ETOK_AMX_EMULATED,
 * set for isa_kernels_emu) and its AVX-512 float step emulated in C (avx512_emu.h), for
 * isa_kernels_emu only: the kernel's logic checked on any AVX2 CPU (a wrapper file, as
 * quant_avx512_emu.c, so that libetokcore's quant_amx.c is never compiled this way). */
#include "avx512_emu.h"
#include "engine/quant_amx.c"
