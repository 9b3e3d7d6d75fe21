// Memory read bandwidth: T threads each sum their share of a 1 GiB buffer (AVX2 loads
// when compiled with -mavx2, SSE2 otherwise); prints the best of 5 passes in GB/s.
// Decode reads every weight once per token, so this is its speed limit.
//   cc -O2 -mavx2 -pthread scripts/bandwidth.c -o bandwidth && ./bandwidth 2
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BYTES (1UL << 30)
static char *buffer;
static long threads;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *sum_share(void *arg) {
    long id = (long)arg;
    size_t share = BYTES / threads;
    const __m128i *p = (const __m128i *)(buffer + id * share);
    __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
    for (size_t i = 0; i < share / 16; i += 4) {
        a = _mm_add_epi64(a, _mm_load_si128(p + i));
        b = _mm_add_epi64(b, _mm_load_si128(p + i + 1));
        c = _mm_add_epi64(c, _mm_load_si128(p + i + 2));
        d = _mm_add_epi64(d, _mm_load_si128(p + i + 3));
    }
    long long out[2];
    _mm_storeu_si128((__m128i *)out, _mm_add_epi64(_mm_add_epi64(a, b), _mm_add_epi64(c, d)));
    return (void *)(out[0] + out[1]);
}

int main(int argc, char **argv) {
    threads = argc > 1 ? atol(argv[1]) : 1;
    if (threads < 1 || threads > 256) return 2;
    buffer = aligned_alloc(64, BYTES);
    if (!buffer) return 1;
    memset(buffer, 1, BYTES);
    double best = 0;
    for (int pass = 0; pass < 5; pass++) {
        pthread_t workers[256];
        double start = now();
        for (long i = 0; i < threads; i++) pthread_create(&workers[i], NULL, sum_share, (void *)i);
        for (long i = 0; i < threads; i++) pthread_join(workers[i], NULL);
        double gbs = BYTES / (now() - start) / 1e9;
        if (gbs > best) best = gbs;
    }
    printf("%.1f\n", best);
    return 0;
}
