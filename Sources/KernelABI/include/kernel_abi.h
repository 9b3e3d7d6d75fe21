// The plain C types shared by the kernel table (Kernels) and the per-instruction-set
// kernel targets (KernelsAVX2, KernelsAVXVNNI, KernelsAVX512), plus CPUID. Types only,
// no vector code: every instruction set's code lives in its own target.
#ifndef QWEN_KERNEL_ABI_H
#define QWEN_KERNEL_ABI_H
#include <stdint.h>

/// One input vector x[cols] of a matrix-vector product, in every form a kernel reads.
/// Fields a format does not need may be NULL.
///
/// `lanes` is x's int8 values in the order of the interleaved weight layout (see
/// Kernels/Interleave.swift), one record per group of a row's 32-value blocks. A row of
/// cols / 32 blocks has groups of 8 blocks while 8 remain, then one group of 4 if 4
/// remain, then groups of 1; a group of G blocks (32 G values) has the record
///   bytes [0, 32 G)        int8 xi: code vector k (bytes 32 k ..< 32 k + 32) holds in its
///                          4-byte lane l (l in 0..<8) the values of block l % G at
///                          columns (l / G) * 4 G + 4 k ..< + 4 of that block
///   + 0   ..< + 32         f32 dl[8]: lane l's d8 (the scale of its block)
///   + 32  ..< + 64         f32 sl[8]: dl[l] * (sum of lane l's int8 values over all k)
///   + 64  ..< + 96         i32 [8]: -8 * (that sum)     (Q4_0's code offset)
///   + 96  ..< + 128        i32 [8]: -16 * (that sum)    (Q5_0)
///   + 128 ..< + 160        i32 [8]: -128 * (that sum)   (8-bit codes stored as c + 128)
///   + 160 ..< + 192        i32 [8]: -32 * (the sum over code vectors k < 4 only)   (Q6_K)
///   + 192 ..< + 224        i32 [8]: -32 * (the sum over code vectors k >= 4 only)
/// so a record is 32 G + 224 bytes and the records of a row's groups follow each other.
/// (The decode kernels start a lane's int32 sum at the offset's term, so a code offset
/// costs them nothing per vector.)
typedef struct {
    const float *x;        // [cols] f32: F32, F16, BF16 weights
    const int8_t *q8;      // [cols] int8, one scale per 32 values: every quantized format
    const float *d8;       // [cols / 32] scale of each 32-block (x ~ d8 * q8)
    const float *s8;       // [cols / 32] d8 * sum of the block's 32 int8 values
    const uint8_t *lanes;  // [qe_lane_record_bytes(cols)]: q8 interleaved per group, see above
} qe_vector;

/// Bytes of the `lanes` records of a vector of `cols` values (cols a multiple of 32).
static inline long qe_lane_record_bytes(long cols) {
    long blocks = cols / 32;
    long groups = blocks / 8 + (blocks % 8 >= 4 ? 1 : 0) + blocks % 4;
    return cols + 224 * groups;
}

/// Positions per tile of the prefill attention kernels (`AttendBlockKernel`): a tile's keys
/// and values are converted to f32 once for every query of the block.
#define QE_ATTENTION_TILE 64

/// Floats of scratch an `AttendBlockKernel` call takes for `queries` queries of `head_dim`
/// values: keys transposed [head_dim, tile], values [tile, head_dim], scores [4, tile] (up
/// to four queries' at a time), running maxima [queries], sums [queries] and outputs
/// [queries, head_dim].
static inline long qe_attend_block_scratch(long queries, long head_dim) {
    return 2 * head_dim * QE_ATTENTION_TILE + 4 * QE_ATTENTION_TILE + queries * (2 + head_dim);
}

/// Instruction-set features, as bits of qe_cpu_features().
enum {
    QE_CPU_AVX2 = 1 << 0,       // AVX2 + FMA + F16C + BMI1/2 + LZCNT + MOVBE, ymm state enabled by the OS
    QE_CPU_AVXVNNI = 1 << 1,    // AVX-VNNI (VEX vpdpbusd) on top of QE_CPU_AVX2, plus what alderlake code uses
    QE_CPU_AVX512 = 1 << 2,     // AVX-512 F/CD/BW/DQ/VL/VNNI, zmm and opmask state enabled by the OS
    QE_CPU_HALF_WIDTH_ZMM = 1 << 3, // with QE_CPU_AVX512: a core that runs each 512-bit operation as two
                                    // 256-bit halves (AMD Zen 4, family 0x19), where a zmm instruction
                                    // does no more work per cycle than two ymm ones
};

/// The QE_CPU_* bits this CPU and OS support (0 on other architectures).
uint32_t qe_cpu_features(void);

/// Asks for the 64-byte line at p in the caches ahead of its use (prefetcht0 on x86,
/// baseline since SSE; a no-op where the compiler has none).
static inline void qe_prefetch(const void *p) {
    __builtin_prefetch(p, 0, 3);
}

/// A spin-wait hint: `pause` on x86 (baseline since SSE2), `yield` on arm64.
static inline void qe_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ volatile("yield");
#endif
}

#endif
