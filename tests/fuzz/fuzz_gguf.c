/* The GGUF reader, config and tokenizer from GGUF metadata, weight mapping, and a short
 * generation on whatever loads (a file the reader accepts must also run: NaN weights
 * are a BAD_MODEL reply, not a trap). */
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
        qwen_session_params params;
        qwen_session_params_init(&params);
        params.n_ctx = 16;
        params.n_threads = 1;
        qwen_session *session = NULL;
        if (qwen_session_create(model, &params, &session) == QWEN_OK) {
            qwen_gen_params gen;
            qwen_gen_params_init(&gen);
            gen.max_tokens = 2;
            gen.temperature = 0;
            qwen_status status = qwen_generate(session, "a", &gen, NULL, NULL, NULL);
            if (status != QWEN_OK && !*qwen_last_error()) abort();
            qwen_session_free(session);
        }
        qwen_model_free(model);
    }
    return 0;
}
