/* quant_avx512_emu.c — src/engine/quant_avx512.c with its AVX-512 intrinsics emulated in C
 * (avx512_emu.h), for isa_kernels_emu only. A wrapper file rather than a source-file compile
 * option: CMake's source properties belong to a directory, not a target, and an option set on
 * quant_avx512.c for isa_kernels_emu emulated the kernels in libetokcore too (every AVX-512
 * CPU ran C emulation, ~25x slower; found on a Xeon with AVX-512 in 2026-11). */
#include "avx512_emu.h"
#include "engine/quant_avx512.c"
