/* ChatML rendering (qwen_session_render_prompt) of arbitrary conversations: the input is
 * split at NUL bytes into messages; each one's first byte picks its role. */
#include "fuzz_common.h"

static qwen_model *model;
static qwen_session *session;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    model = fuzz_load(fuzz_env("QWEN_FUZZ_CHECKPOINT"));
    qwen_session_params params;
    qwen_session_params_init(&params);
    params.n_ctx = 512;
    params.max_window_size = 256;
    params.n_threads = 1;
    if (!model || qwen_session_create(model, &params, &session) != QWEN_OK) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = 0;
    qwen_message messages[16];
    size_t n = 0;
    for (char *p = copy; p < copy + size && n < 16; p += strlen(p) + 1) {
        if (!*p) continue;
        messages[n].role = (qwen_role)((unsigned char)p[0] % 4);    /* 3: an invalid role */
        messages[n].content = p + 1;
        n++;
    }
    size_t count = 0;
    qwen_status s = qwen_session_render_prompt(session, messages, n, NULL, 0, &count);
    if (s == QWEN_OK || s == QWEN_ERR_BUFFER_TOO_SMALL) {
        int32_t *ids = malloc((count + 1) * sizeof *ids);
        if (qwen_session_render_prompt(session, messages, n, ids, count, &count) != QWEN_OK) abort();
        free(ids);
    } else if (!*qwen_last_error()) {
        abort();
    }
    free(copy);
    return 0;
}
