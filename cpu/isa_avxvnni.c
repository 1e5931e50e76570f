/* AVX-VNNI kernel table (level "avxvnni": AVX2 + FMA + F16C + AVX-VNNI, as on Intel's AVX2-only
 * client cores from Alder Lake on): the AVX2 kernels, compiled with -mavxvnni so the ternary product
 * uses the 256-bit VEX vpdpbusd instead of maddubs + madd (see isa_avx2.c). */
#define TERN_AVXVNNI 1
#include "isa_avx2.c"
