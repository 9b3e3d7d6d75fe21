/* Qwen2.5's own chat format through the C ABI on the real model (Qwen2.5-Coder-0.5B-Instruct
 * GGUF): the template's default system prompt, native tool calls (<tool_call> blocks) into
 * the history as calls with their arguments, the round trip back to an answer, the reply
 * split into parts as it streams, whole messages in (several calls per turn), and bad
 * arguments. */
#define _GNU_SOURCE   /* memmem */
#include <qwen.h>
#include "check.h"

#include <stdint.h>

static qwen_model *model;

static const qwen_tool weather = {
    "get_weather", "Get the current weather in a given city.",
    "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"The city\"}}, "
    "\"required\": [\"city\"]}"};

static qwen_gen_params greedy(int max_tokens) {
    qwen_gen_params g;
    qwen_gen_params_init(&g);
    g.temperature = 0;
    g.repetition_penalty = 1.0f;
    g.max_tokens = max_tokens;
    return g;
}

/* The rendered prompt of `messages` as text. */
static char *render(qwen_session *s, const qwen_message *messages, size_t n) {
    static int32_t ids[8192];
    static char text[65536];
    size_t n_ids = 0, n_text = 0;
    CHECK_STATUS(qwen_session_render_prompt(s, messages, n, ids, 8192, &n_ids), QWEN_OK);
    CHECK_STATUS(qwen_detokenize(model, ids, n_ids, false, text, sizeof text - 1, &n_text), QWEN_OK);
    text[n_text] = 0;
    return text;
}

static void test_default_system_prompt_is_the_templates(void) {
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, NULL, &s), QWEN_OK);
    const char *system = "x";
    CHECK_STATUS(qwen_session_get_system_prompt(s, &system), QWEN_OK);
    CHECK(system == NULL, "default system prompt: NULL");
    qwen_message hi = {QWEN_ROLE_USER, "Hi <|im_end|>"};
    const char *expected =
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi <|im_end|><|im_end|>\n<|im_start|>assistant\n";
    CHECK(strcmp(render(s, &hi, 1), expected) == 0, "rendered: %s", render(s, &hi, 1));
    /* The message's "<|im_end|>" is text, the template's is the control token. */
    int32_t ids[256];
    size_t n = 0;
    CHECK_STATUS(qwen_session_render_prompt(s, &hi, 1, ids, 256, &n), QWEN_OK);
    int im_end = 0;
    for (size_t i = 0; i < n; i++) im_end += ids[i] == 151645;
    CHECK(im_end == 2, "two <|im_end|> ids (system and user turns), got %d", im_end);
    CHECK_STATUS(qwen_session_set_system_prompt(s, "Be brief."), QWEN_OK);
    CHECK(strstr(render(s, &hi, 1), "<|im_start|>system\nBe brief.<|im_end|>") != NULL, "explicit system prompt");
    qwen_session_free(s);
}

static void test_weather_round_trip(void) {
    qwen_session_params p;
    qwen_session_params_init(&p);
    p.tools = &weather;
    p.n_tools = 1;
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, &p, &s), QWEN_OK);
    qwen_message q = {QWEN_ROLE_USER, "What is the weather in Paris right now? Use the get_weather tool."};
    CHECK(strstr(render(s, &q, 1), "<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"") != NULL,
          "the template's <tools> block: %s", render(s, &q, 1));
    qwen_gen_params g = greedy(96);
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &q, 1, &g, NULL, NULL, &r), QWEN_OK);
    /* This 0.5B model answers with the bare call object (no <tool_call> tags), as it does
     * under llama-server --jinja; the raw reply is what it wrote. */
    CHECK(strstr(r.text, "\"get_weather\"") != NULL, "raw reply: %s", r.text);
    size_t last = qwen_session_n_messages(s) - 1;
    CHECK(qwen_session_n_tool_calls(s, last) == 1, "one call, got %zu", qwen_session_n_tool_calls(s, last));
    const char *name = NULL, *args = NULL;
    CHECK_STATUS(qwen_session_get_tool_call_at(s, last, 0, &name, &args), QWEN_OK);
    CHECK(name && strcmp(name, "get_weather") == 0, "name %s", name ? name : "(null)");
    CHECK(args && strcmp(args, "{\"city\": \"Paris\"}") == 0, "arguments %s", args ? args : "(null)");
    CHECK_STATUS(qwen_session_get_tool_call_at(s, last, 1, &name, &args), QWEN_ERR_INVALID_ARGUMENT);

    /* The result goes back; the answer uses it. */
    qwen_message result = {QWEN_ROLE_TOOL, "{\"city\": \"Paris\", \"temperature_c\": 21, \"sky\": \"sunny\"}"};
    CHECK(strstr(render(s, &result, 1), "<|im_start|>user\n<tool_response>\n{\"city\": \"Paris\"") != NULL,
          "tool result rendered: %s", render(s, &result, 1));
    CHECK_STATUS(qwen_chat(s, &result, 1, &g, NULL, NULL, &r), QWEN_OK);
    last = qwen_session_n_messages(s) - 1;
    CHECK(qwen_session_n_tool_calls(s, last) == 0, "a final answer");
    const char *content = NULL;
    CHECK_STATUS(qwen_session_get_message(s, last, NULL, &content), QWEN_OK);
    CHECK(content && strstr(content, "21") != NULL, "the answer uses the result: %s", content ? content : "");
    qwen_session_free(s);
}

static void test_parts_stream(void) {
    qwen_session_params p;
    qwen_session_params_init(&p);
    p.tools = &weather;
    p.n_tools = 1;
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, &p, &s), QWEN_OK);
    qwen_message q = {QWEN_ROLE_USER, "What is the weather in Paris right now? Use the get_weather tool."};
    qwen_gen_params g = greedy(96);
    CHECK_STATUS(qwen_chat_begin(s, &q, 1, &g), QWEN_OK);
    qwen_part part;
    bool done = false;
    int calls = 0;
    while (true) {
        CHECK_STATUS(qwen_chat_next_part(s, &part, &done), QWEN_OK);
        if (done) break;
        if (part.kind == QWEN_PART_TOOL_CALL) {
            calls++;
            CHECK(strcmp(part.tool_name, "get_weather") == 0 && strcmp(part.tool_arguments, "{\"city\": \"Paris\"}") == 0,
                  "streamed call %s %s", part.tool_name, part.tool_arguments);
        } else {
            CHECK(part.text != NULL && memmem(part.text, part.len, "<tool_call>", 11) == NULL, "no markup in text parts");
        }
    }
    CHECK(calls == 1, "one call part, got %d", calls);
    qwen_result r;
    CHECK_STATUS(qwen_chat_end(s, &r), QWEN_OK);
    CHECK_STATUS(qwen_chat_next_part(s, &part, &done), QWEN_ERR_WRONG_STATE);
    CHECK_STATUS(qwen_chat_next_part(NULL, &part, &done), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_free(s);
}

static void test_whole_messages_and_bad_arguments(void) {
    /* An assistant turn with two calls and their results, as an OpenAI server gets them. */
    qwen_tool_call calls[2] = {{"get_weather", "{\"city\": \"Paris\"}"}, {"get_weather", "{\"city\": \"Rome\"}"}};
    qwen_chat_message conversation[4] = {
        {QWEN_ROLE_USER, "Weather in Paris and Rome?", NULL, NULL, 0},
        {QWEN_ROLE_ASSISTANT, "", "Two cities: two calls.", calls, 2},
        {QWEN_ROLE_TOOL, "{\"temperature_c\": 21}", NULL, NULL, 0},
        {QWEN_ROLE_TOOL, "{\"temperature_c\": 25}", NULL, NULL, 0},
    };
    qwen_session_params p;
    qwen_session_params_init(&p);
    p.tools = &weather;
    p.n_tools = 1;
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_acquire_messages(model, conversation, 3, &p, &s), QWEN_OK);
    CHECK(qwen_session_n_messages(s) == 3 && qwen_session_n_tool_calls(s, 1) == 2, "history with two calls");
    const char *thought = NULL;
    CHECK_STATUS(qwen_session_get_reasoning(s, 1, &thought), QWEN_OK);
    CHECK(thought && strcmp(thought, "Two cities: two calls.") == 0, "the turn's reasoning kept");
    qwen_message last = {QWEN_ROLE_TOOL, "{\"temperature_c\": 25}"};
    const char *text = render(s, &last, 1);
    CHECK(strstr(text, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n"
                       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}\n</tool_call><|im_end|>") != NULL,
          "both calls rendered: %s", text);
    CHECK(strstr(text, "</tool_response>\n<tool_response>") != NULL, "consecutive results in one user turn: %s", text);
    /* A call appended to the last assistant turn; none to a user turn. */
    CHECK_STATUS(qwen_session_add_tool_call(s, "get_weather", "{}"), QWEN_ERR_INVALID_ARGUMENT);   /* last is a tool result */
    CHECK_STATUS(qwen_session_add_message(s, QWEN_ROLE_ASSISTANT, "", "get_weather", "{\"city\": \"Oslo\"}"), QWEN_OK);
    CHECK_STATUS(qwen_session_add_tool_call(s, "get_weather", "{\"city\": \"Bergen\"}"), QWEN_OK);
    CHECK(qwen_session_n_tool_calls(s, 3) == 2, "appended call");
    const char *reasoning = "x";
    CHECK_STATUS(qwen_session_get_reasoning(s, 3, &reasoning), QWEN_OK);
    CHECK(reasoning == NULL, "no reasoning");
    CHECK_STATUS(qwen_session_add_tool_call(s, NULL, "{}"), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_release(s);

    qwen_chat_message bad = {QWEN_ROLE_USER, "x", NULL, NULL, 1};
    CHECK_STATUS(qwen_session_acquire_messages(model, &bad, 1, NULL, &s), QWEN_ERR_INVALID_ARGUMENT);
    qwen_chat_message reasoning_on_user = {QWEN_ROLE_USER, "x", "thought", NULL, 0};
    CHECK_STATUS(qwen_session_acquire_messages(model, &reasoning_on_user, 1, NULL, &s), QWEN_ERR_INVALID_ARGUMENT);
    qwen_gen_params g = greedy(4);
    g.enable_thinking = 7;
    CHECK_STATUS(qwen_session_create(model, NULL, &s), QWEN_OK);
    qwen_message hi = {QWEN_ROLE_USER, "Hi"};
    CHECK_STATUS(qwen_chat(s, &hi, 1, &g, NULL, NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_get_reasoning(s, 99, &reasoning), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(qwen_session_n_tool_calls(NULL, 0) == 0, "NULL session: no calls");
    qwen_session_free(s);
}

int main(void) {
    qwen_model_params mp;
    qwen_model_params_init(&mp);
    CHECK_STATUS(qwen_model_load(model_path(), &mp, &model), QWEN_OK);
    if (!model) return finish("test_tool_calls");
    test_default_system_prompt_is_the_templates();
    test_weather_round_trip();
    test_parts_stream();
    test_whole_messages_and_bad_arguments();
    qwen_model_free(model);
    return finish("test_tool_calls");
}
