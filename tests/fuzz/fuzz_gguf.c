/* The GGUF reader, config and tokenizer from GGUF metadata, weight mapping. */
#include "fuzz_common.h"

static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    snprintf(path, sizeof path, "/tmp/qwen-fuzz-gguf-%d.gguf", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_write(path, data, size);
    qwen_model *model = fuzz_load(path);
    if (model) {
        qwen_model_info info;
        if (qwen_model_get_info(model, &info) != QWEN_OK) abort();
        int32_t ids[64];
        size_t n = 0;
        qwen_tokenize(model, "Hello, <|im_start|>", 19, true, ids, 64, &n);
        qwen_model_free(model);
    }
    return 0;
}
