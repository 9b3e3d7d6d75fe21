#include "kernel_abi.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

/// AMD family 0x19 (Zen 3 and Zen 4; of these only Zen 4 has AVX-512, on 256-bit units).
/// Zen 5 (family 0x1A) executes most 512-bit operations at full width.
static int is_amd_family_0x19(void) {
    uint32_t a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    if (!(b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163)) return 0;   // "AuthenticAMD"
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    uint32_t family = (a >> 8) & 0xF;
    if (family == 0xF) family += (a >> 20) & 0xFF;
    return family == 0x19;
}

uint32_t qe_cpu_features(void) {
    uint32_t a, b, c, d;
    if (!__get_cpuid_count(1, 0, &a, &b, &c, &d)) return 0;
    const uint32_t ecx1 = c;
    int osxsave = (ecx1 >> 27) & 1;
    if (!osxsave) return 0;
    uint64_t xcr0 = xgetbv0();
    int ymm = (xcr0 & 0x6) == 0x6;                 // SSE + AVX state
    int zmm = ymm && (xcr0 & 0xE0) == 0xE0;         // opmask + ZMM_Hi256 + Hi16_ZMM
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const uint32_t ebx7 = b, ecx7 = c;
    __get_cpuid_count(7, 1, &a, &b, &c, &d);
    const uint32_t eax71 = a;
    uint32_t ecx81 = 0;
    if (__get_cpuid_count(0x80000001, 0, &a, &b, &c, &d)) ecx81 = c;

    int fma = (ecx1 >> 12) & 1, movbe = (ecx1 >> 22) & 1, popcnt = (ecx1 >> 23) & 1;
    int avx = (ecx1 >> 28) & 1, f16c = (ecx1 >> 29) & 1;
    int bmi1 = (ebx7 >> 3) & 1, avx2 = (ebx7 >> 5) & 1, bmi2 = (ebx7 >> 8) & 1;
    int lzcnt = (ecx81 >> 5) & 1;
    int avx512f = (ebx7 >> 16) & 1, avx512dq = (ebx7 >> 17) & 1, avx512cd = (ebx7 >> 28) & 1;
    int avx512bw = (ebx7 >> 30) & 1, avx512vl = (ebx7 >> 31) & 1, avx512vnni = (ecx7 >> 11) & 1;
    int gfni = (ecx7 >> 8) & 1, vaes = (ecx7 >> 9) & 1, vpclmul = (ecx7 >> 10) & 1;
    int avxvnni = (eax71 >> 4) & 1;

    uint32_t features = 0;
    if (ymm && avx && avx2 && fma && f16c && bmi1 && bmi2 && lzcnt && movbe && popcnt) {
        features |= QE_CPU_AVX2;
        // alderlake code may also use GFNI, VAES and VPCLMULQDQ encodings.
        if (avxvnni && gfni && vaes && vpclmul) features |= QE_CPU_AVXVNNI;
        if (zmm && avx512f && avx512dq && avx512cd && avx512bw && avx512vl && avx512vnni) features |= QE_CPU_AVX512;
    }
    if ((features & QE_CPU_AVX512) && is_amd_family_0x19()) features |= QE_CPU_HALF_WIDTH_ZMM;
    return features;
}
#else
uint32_t qe_cpu_features(void) { return 0; }
#endif
