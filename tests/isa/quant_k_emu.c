/* quant_k_emu.c — src/engine/quant_k.c with its AVX-512 intrinsics emulated in C
 * (avx512_emu.h), for isa_kernels_emu only (see quant_avx512_emu.c for why a wrapper). */
#include "avx512_emu.h"
#include "engine/quant_k.c"
