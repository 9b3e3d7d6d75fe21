/* ChatML and tool-prompt rendering (qwen_session_render_prompt) of arbitrary
 * conversations: the input is split at NUL bytes into segments; each one's first byte
 * picks what it is: a message of role system/user/assistant/tool or an invalid role, a
 * tool definition ("name\x01description\x01parameters JSON", qwen_session_set_tools), or
 * an assistant turn that called a tool ("thought\x01name\x01arguments",
 * qwen_session_add_message). Every refusal must carry a message. */
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

/* Splits `text` at \x01 into up to 3 fields (missing ones NULL). */
static void fields(char *text, char *out[3]) {
    out[0] = text;
    out[1] = out[2] = NULL;
    for (int i = 1; i < 3; i++) {
        char *sep = out[i - 1] ? strchr(out[i - 1], 1) : NULL;
        if (sep) { *sep = 0; out[i] = sep + 1; }
    }
}

static void expect_ok_or_message(qwen_status s) {
    if (s != QWEN_OK && !*qwen_last_error()) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *copy = malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = 0;
    qwen_message messages[16];
    qwen_tool tools[4];
    size_t n = 0, n_tools = 0;
    if (qwen_session_reset(session) != QWEN_OK) abort();
    for (char *p = copy; p < copy + size && n < 16; p += strlen(p) + 1) {
        if (!*p) continue;
        unsigned kind = (unsigned char)p[0] % 8;
        char *f[3];
        if (kind == 5 && n_tools < 4) {
            fields(p + 1, f);
            tools[n_tools++] = (qwen_tool){f[0], f[1], f[2]};
        } else if (kind == 6) {
            fields(p + 1, f);
            expect_ok_or_message(qwen_session_add_message(session, QWEN_ROLE_ASSISTANT, f[0],
                                                          f[1] ? f[1] : "", f[2]));
        } else {
            messages[n].role = (qwen_role)(kind == 7 ? 1 : kind);    /* 4: an invalid role */
            messages[n].content = p + 1;
            n++;
        }
    }
    expect_ok_or_message(qwen_session_set_tools(session, tools, n_tools));
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
