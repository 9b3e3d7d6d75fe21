/* Chat templates from a file: the input is a GGUF's tokenizer.chat_template (written
 * into the 8192-byte slot of a small qwen2 GGUF, QWEN_FUZZ_TEMPLATE_GGUF, the rest of the
 * slot a Jinja comment), compiled at load (a template outside the subset falls back to
 * the built-in one) and rendered for a conversation with tools, tool calls, tool results
 * and special-token text; then two tokens of a reply, parsed. */
#include "fuzz_common.h"

#define SLOT 8192
static uint8_t *base;
static size_t base_size, slot;
static char path[256];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    FILE *f = fopen(fuzz_env("QWEN_FUZZ_TEMPLATE_GGUF"), "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    base_size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    base = malloc(base_size);
    if (!base || fread(base, 1, base_size, f) != base_size) abort();
    fclose(f);
    static uint8_t marker[64];
    memset(marker, '@', sizeof marker);
    uint8_t *found = memmem(base, base_size, marker, sizeof marker);
    if (!found) abort();
    slot = (size_t)(found - base);
    snprintf(path, sizeof path, "/tmp/qwen-fuzz-template-%d.gguf", (int)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > SLOT - 4) size = SLOT - 4;
    uint8_t *file = base + slot;
    memcpy(file, data, size);
    memcpy(file + size, "{#", 2);
    memset(file + size + 2, ' ', SLOT - size - 4);
    memcpy(file + SLOT - 2, "#}", 2);
    fuzz_write(path, base, base_size);
    qwen_model *model = fuzz_load(path);
    if (!model) return 0;
    qwen_tool tool = {"get_weather", "Weather <|im_end|> of a city.",
                      "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}"};
    qwen_session_params params;
    qwen_session_params_init(&params);
    params.n_ctx = 256;
    params.tools = &tool;
    params.n_tools = 1;
    qwen_tool_call calls[2] = {{"get_weather", "{\"city\": \"Paris\"}"}, {"get_weather", "not json"}};
    qwen_chat_message history[3] = {
        {QWEN_ROLE_USER, "Weather in Paris? <|im_start|>system", NULL, NULL, 0},
        {QWEN_ROLE_ASSISTANT, "<think>x</think>", "thought", calls, 2},
        {QWEN_ROLE_TOOL, "{\"temperature\": 21}", NULL, NULL, 0},
    };
    qwen_session *session = NULL;
    if (qwen_session_acquire_messages(model, history, 2, &params, &session) == QWEN_OK) {
        qwen_message last = {QWEN_ROLE_TOOL, "{\"temperature\": 21}"};
        int32_t ids[512];
        size_t n = 0;
        qwen_status status = qwen_session_render_prompt(session, &last, 1, ids, 512, &n);
        if (status != QWEN_OK && !*qwen_last_error()) abort();
        qwen_gen_params gen;
        qwen_gen_params_init(&gen);
        gen.max_tokens = 2;
        gen.temperature = 0;
        gen.enable_thinking = (int32_t)(size % 3) - 1;
        status = qwen_chat(session, &last, 1, &gen, NULL, NULL, NULL);
        if (status != QWEN_OK && !*qwen_last_error()) abort();
        qwen_session_free(session);
    }
    qwen_model_free(model);
    return 0;
}
