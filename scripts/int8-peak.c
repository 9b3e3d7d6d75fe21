// One core's peak int8 multiply-add rate: 12 independent chains of the integer dot
// product the prefill kernels are built on, operands in registers (no memory, no
// decoding), best of 3 passes. AVX-512 VNNI: vpdpbusd on zmm (64 u8 x s8 products each);
// AVX2 without VNNI: vpmaddubsw + vpmaddwd + vpaddd on ymm (32 products per three
// instructions). The ceiling any int8 GEMM on this core can reach, against which
// BENCHMARKS.md compares the GPTQ prefill's int8 work per token. `avx2` measures the
// AVX2 form on a CPU that has both.
//   cc -O2 scripts/int8-peak.c -o int8-peak && ./int8-peak [avx2]
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#define STEPS 240000000L   /* dot steps per pass (one instruction; AVX2: three), a multiple of 12 */
#define CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
/* STEPS steps of the 12 chains (STEP, SUM defined by the caller); the empty asm keeps
   the named operands live in registers and changing, so nothing is hoisted. */
#define RUN_CHAINS(...)                                  \
    for (long i = 0; i < STEPS; i += 12) {               \
        __asm__ volatile("" : __VA_ARGS__);              \
        CHAINS(STEP)                                     \
    }                                                    \
    int s = 0;                                           \
    CHAINS(SUM)                                          \
    __asm__ volatile("" : : "r"(s));

/* Both return the multiply-adds they did. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double vnni512(void) {
#define DECLARE(i) __m512i a##i = _mm512_set1_epi32(i);
#define STEP(i) a##i = _mm512_dpbusd_epi32(a##i, x, w);
#define SUM(i) s += _mm512_reduce_add_epi32(a##i);
    CHAINS(DECLARE)
    __m512i x = _mm512_set1_epi8(3), w = _mm512_set1_epi8(5);
    RUN_CHAINS("+v"(x), "+v"(w))
    return STEPS * 64.0;
#undef DECLARE
#undef STEP
#undef SUM
}

__attribute__((target("avx2"))) static double avx2(void) {
#define DECLARE(i) __m256i a##i = _mm256_set1_epi32(i);
/* each chain's own sums as the s8 operand: no two steps alike */
#define STEP(i) a##i = _mm256_add_epi32(a##i, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a##i), ones));
#define SUM(i) s += _mm256_extract_epi32(a##i, 0);
    CHAINS(DECLARE)
    __m256i w = _mm256_set1_epi8(5), ones = _mm256_set1_epi16(1);
    RUN_CHAINS("+v"(w))
    return STEPS * 32.0;
#undef DECLARE
#undef STEP
#undef SUM
}

int main(int argc, char **argv) {
    __builtin_cpu_init();
    int vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")
               && !(argc > 1 && strcmp(argv[1], "avx2") == 0);
    if (!vnni && !__builtin_cpu_supports("avx2")) {
        puts("int8-peak: this CPU has neither AVX-512 VNNI nor AVX2");
        return 0;
    }
    double best = 0;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = now(), products = vnni ? vnni512() : avx2(), rate = products / (now() - t0);
        if (rate > best) best = rate;
    }
    printf("%s: %.1f G int8 multiply-adds/s on one core\n",
           vnni ? "vpdpbusd zmm" : "vpmaddubsw+vpmaddwd ymm", best / 1e9);
    return 0;
}
