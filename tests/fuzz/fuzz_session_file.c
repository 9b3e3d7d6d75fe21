/* Saved session files: the input, with its trailing checksum recomputed (so mutations
 * reach the payload parser instead of stopping at the checksum), is written to a file and
 * loaded with qwen_session_load into the tiny Qwen v1 checkpoint (QWEN_FUZZ_CHECKPOINT);
 * a session that loads continues "a" by two greedy tokens and is saved again. Seeds:
 * sessions saved from that checkpoint (fuzz-seeds.py --sessions). */
#include "fuzz_common.h"

static qwen_model *model;
static char path[256], resaved[256];

/* Sources/QwenEmbed/Loading/Fingerprint.swift's Hash64. */
static uint64_t mix(uint64_t h, uint64_t word) {
    uint64_t m = (h ^ word) * 0x9E3779B97F4A7C15ull;
    return m << 27 | m >> 37;
}

static uint64_t hash64(const uint8_t *data, size_t size) {
    uint64_t h = 0x5157454E53455353ull, word;
    size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        memcpy(&word, data + i, 8);   /* little-endian hosts */
        h = mix(h, word);
    }
    if (i < size) {
        word = 0;
        memcpy(&word, data + i, size - i);
        h = mix(h, word);
    }
    uint64_t z = mix(h, (uint64_t)size);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    model = fuzz_load(fuzz_env("QWEN_FUZZ_CHECKPOINT"));
    if (!model) abort();
    snprintf(path, sizeof path, "/tmp/qwen-fuzz-session-%d.qsession", (int)getpid());
    snprintf(resaved, sizeof resaved, "/tmp/qwen-fuzz-session-%d-resaved.qsession", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *file = malloc(size + 1);
    if (!file) abort();
    if (size) memcpy(file, data, size);
    if (size >= 28) {
        uint64_t sum = hash64(file, size - 8);
        memcpy(file + size - 8, &sum, 8);
    }
    fuzz_write(path, file, size);
    free(file);
    qwen_session_params params;
    qwen_session_params_init(&params);
    params.n_ctx = (int32_t)(size % 3) * 128;   /* 0 = the file's */
    qwen_session *session = (qwen_session *)0x1;
    qwen_status status = qwen_session_load(model, path, size % 2 ? &params : NULL, &session);
    if (status != QWEN_OK) {
        if (!*qwen_last_error()) { fprintf(stderr, "fuzz: status %d without a message\n", status); abort(); }
        if (session != (qwen_session *)0x1) { fprintf(stderr, "fuzz: a failed load changed *out\n"); abort(); }
        return 0;
    }
    qwen_gen_params gen;
    qwen_gen_params_init(&gen);
    gen.max_tokens = 2;
    gen.temperature = 0;
    status = qwen_generate(session, "a", &gen, NULL, NULL, NULL);   /* raw: the 512-token vocabulary has no ChatML ids */
    if (status != QWEN_OK && !*qwen_last_error()) abort();
    if (qwen_session_save(session, resaved) != QWEN_OK && !*qwen_last_error()) abort();
    qwen_session_free(session);
    return 0;
}
