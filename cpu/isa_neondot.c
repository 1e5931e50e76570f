/* AArch64 dot-product kernel table (level "neondot": Advanced SIMD + the Armv8.2 dot-product
 * extension, as on Cortex-A55/A76, Neoverse N1, Apple M1 and later): the NEON kernels compiled with
 * +dotprod, so each 16-byte int8 dot of the ternary product, the certified head's shadow and the
 * compute probe is one sdot instead of two widening multiplies and two pairwise adds (see
 * isa_neon.c). A build for plain Armv8 then runs sdot wherever the CPU has it. */
#define TERN_NEONDOT 1
#include "isa_neon.c"
