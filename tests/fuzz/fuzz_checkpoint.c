/* A Hugging Face checkpoint directory: the first input byte picks the file the rest of
 * the input replaces in an otherwise valid tiny checkpoint (model.safetensors, a shard
 * index, config.json, quantize_config.json, generation_config.json, qwen.tiktoken). */
#include "fuzz_common.h"

static char dir[256];
static const char *const targets[] = {
    "model.safetensors", "model.safetensors.index.json", "config.json",
    "quantize_config.json", "generation_config.json", "qwen.tiktoken",
};
#define TARGETS (sizeof targets / sizeof targets[0])

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    fuzz_directory(dir, sizeof dir, "checkpoint");
    return 0;
}

/* Every file of the valid base checkpoint as a symbolic link (no copying per input). */
static void reset_directory(void) {
    for (size_t i = 0; i < TARGETS; i++) {
        char link[512], target[512];
        snprintf(link, sizeof link, "%s/%s", dir, targets[i]);
        unlink(link);
        if (strcmp(targets[i], "qwen.tiktoken") == 0) {
            snprintf(target, sizeof target, "%s", fuzz_env("QWEN_FUZZ_TIKTOKEN"));
        } else {
            snprintf(target, sizeof target, "%s/%s", fuzz_env("QWEN_FUZZ_CHECKPOINT"), targets[i]);
            if (access(target, F_OK) != 0) continue;
        }
        if (symlink(target, link) != 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *target = targets[data[0] % TARGETS];
    reset_directory();
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, target);
    unlink(path);
    fuzz_write(path, data + 1, size - 1);
    qwen_model *model = fuzz_load(dir);
    if (model) qwen_model_free(model);
    return 0;
}
