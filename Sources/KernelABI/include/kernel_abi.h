// The plain C types shared by the kernel table (Kernels) and the per-instruction-set
// kernel targets (KernelsAVX2, KernelsAVXVNNI, KernelsAVX512), plus CPUID. Types only,
// no vector code: every instruction set's code lives in its own target.
#ifndef QWEN_KERNEL_ABI_H
#define QWEN_KERNEL_ABI_H
#include <stdint.h>

/// One input vector x[cols] of a matrix-vector product, in every form a kernel reads.
/// Fields a format does not need may be NULL.
typedef struct {
    const float *x;        // [cols] f32: F32, F16, BF16 weights
    const int8_t *q8;      // [cols] int8, one scale per 32 values: every quantized format
    const float *d8;       // [cols / 32] scale of each 32-block (x ~ d8 * q8)
    const float *s8;       // [cols / 32] d8 * sum of the block's 32 int8 values
} qe_vector;

/// Instruction-set features, as bits of qe_cpu_features().
enum {
    QE_CPU_AVX2 = 1 << 0,       // AVX2 + FMA + F16C + BMI1/2 + LZCNT + MOVBE, ymm state enabled by the OS
    QE_CPU_AVXVNNI = 1 << 1,    // AVX-VNNI (VEX vpdpbusd) on top of QE_CPU_AVX2, plus what alderlake code uses
    QE_CPU_AVX512 = 1 << 2,     // AVX-512 F/CD/BW/DQ/VL/VNNI, zmm and opmask state enabled by the OS
};

/// The QE_CPU_* bits this CPU and OS support (0 on other architectures).
uint32_t qe_cpu_features(void);

/// A spin-wait hint: `pause` on x86 (baseline since SSE2), `yield` on arm64.
static inline void qe_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

#endif
