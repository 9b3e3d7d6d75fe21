/* Constrained decoding and log probabilities through the C ABI on the real model
 * (Qwen2.5-Coder-0.5B-Instruct GGUF): a GBNF grammar and a JSON schema hold the reply,
 * forced tool calls (tool_choice "required" / a name), log probabilities of every token
 * (normalized, the sampled token among the alternatives when greedy, refused tokens
 * absent), and bad grammars, schemas and values refused with INVALID_ARGUMENT naming
 * where, the session usable afterwards. */
#include <qwen.h>
#include "check.h"

#include <math.h>

static qwen_model *model;

static qwen_gen_params greedy(int max_tokens) {
    qwen_gen_params g;
    qwen_gen_params_init(&g);
    g.temperature = 0;
    g.max_tokens = max_tokens;
    return g;
}

static void test_grammar_holds_the_reply(void) {
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, NULL, &s), QWEN_OK);
    qwen_gen_params g = greedy(16);
    g.grammar = "root ::= (\"yes\" | \"no\") \".\"";
    g.logprobs = 3;
    qwen_message m = {QWEN_ROLE_USER, "Is water wet? Answer with one word."};
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(strcmp(r.text, "yes.") == 0 || strcmp(r.text, "no.") == 0, "reply: %s", r.text);
    CHECK(r.finish_reason == QWEN_FINISH_STOP, "the grammar's end ends the reply");
    int32_t n = qwen_session_n_logprobs(s);
    CHECK(n == r.n_generated_tokens && n > 0, "%d logprobs for %d tokens", n, r.n_generated_tokens);
    for (int32_t i = 0; i < n; i++) {
        qwen_token_logprob lp;
        CHECK_STATUS(qwen_session_get_logprob(s, i, &lp), QWEN_OK);
        CHECK(lp.n_top >= 1 && lp.n_top <= 3, "n_top %d", lp.n_top);
        CHECK(lp.top_tokens[0] == lp.token, "greedy: the sampled token is the most likely");
        CHECK(lp.logprob <= 0 && lp.logprob == lp.top_logprobs[0], "logprob %f", lp.logprob);
        double mass = 0;
        for (int32_t k = 0; k < lp.n_top; k++) mass += exp(lp.top_logprobs[k]);
        CHECK(mass <= 1.0001, "alternatives' mass %f", mass);
        char piece[64];
        size_t len = 0;
        for (int32_t k = 0; k < lp.n_top; k++) {   /* every alternative the grammar allows here */
            CHECK_STATUS(qwen_detokenize(model, &lp.top_tokens[k], 1, false, piece, sizeof piece - 1, &len), QWEN_OK);
            piece[len] = 0;
            CHECK(strstr("yes.no.", piece) != NULL, "alternative %s", piece);
        }
    }
    qwen_token_logprob lp;
    CHECK_STATUS(qwen_session_get_logprob(s, n, &lp), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "out of range") != NULL, "%s", qwen_last_error());
    CHECK(qwen_session_n_logprobs(NULL) == -1, "NULL session");

    /* A JSON schema: the reply parses as the object. */
    g = greedy(120);
    g.json_schema = "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                    "\"population\": {\"type\": \"integer\", \"minimum\": 0}}, \"required\": [\"city\", \"population\"]}";
    qwen_message ask = {QWEN_ROLE_USER, "Give the largest city of Japan and its population as JSON."};
    CHECK_STATUS(qwen_chat(s, &ask, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(r.text[0] == '{' && strstr(r.text, "\"city\"") && strstr(r.text, "\"population\"") && strrchr(r.text, '}'),
          "reply: %s", r.text);
    CHECK(qwen_session_n_logprobs(s) == 0, "no logprobs asked for this reply");
    qwen_session_free(s);
}

static void test_forced_tool_call(void) {
    static const qwen_tool tools[] = {
        {"get_weather", "Get the current weather in a given city.",
         "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}"},
        {"get_time", "Get the time in a time zone.",
         "{\"type\": \"object\", \"properties\": {\"zone\": {\"type\": \"string\"}}, \"required\": [\"zone\"]}"}};
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, NULL, &s), QWEN_OK);
    CHECK_STATUS(qwen_session_set_tools(s, tools, 2), QWEN_OK);
    qwen_gen_params g = greedy(80);
    g.tool_choice = "get_time";
    qwen_message hi = {QWEN_ROLE_USER, "Hello there!"};
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &hi, 1, &g, NULL, NULL, &r), QWEN_OK);
    size_t n = qwen_session_n_tool_calls(s, 1);
    CHECK(n == 1, "one forced call, got %zu (%s)", n, r.text);
    const char *name = NULL, *arguments = NULL;
    if (n == 1) {
        CHECK_STATUS(qwen_session_get_tool_call_at(s, 1, 0, &name, &arguments), QWEN_OK);
        CHECK(strcmp(name, "get_time") == 0 && strstr(arguments, "\"zone\""), "%s %s", name, arguments);
    }
    g.tool_choice = "get_nothing";
    CHECK_STATUS(qwen_chat(s, &hi, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "get_nothing") != NULL, "%s", qwen_last_error());
    qwen_session_free(s);
}

static void test_bad_arguments(void) {
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, NULL, &s), QWEN_OK);
    qwen_message m = {QWEN_ROLE_USER, "hi"};
    qwen_result r;
    qwen_gen_params g = greedy(4);
    g.grammar = "root ::= \"a\" bad";
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "line 1, column 14") && strstr(qwen_last_error(), "'bad'"), "%s", qwen_last_error());
    g = greedy(4);
    g.json_schema = "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\", \"pattern\": \"(?=x)\"}}}";
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "#/properties/a") != NULL, "%s", qwen_last_error());
    g.json_schema = "{\"type\": ";
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    g = greedy(4);
    g.grammar = "root ::= \"a\"";
    g.json_schema = "{}";
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    g = greedy(4);
    g.logprobs = 21;
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    g = greedy(4);
    g.tool_choice = "required";   /* no tools */
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    g.tool_choice = "\xff";
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    /* Nothing was lost: the session still answers. */
    g = greedy(4);
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_OK);
    qwen_session_free(s);
}

int main(void) {
    CHECK_STATUS(qwen_model_load(model_path(), NULL, &model), QWEN_OK);
    test_grammar_holds_the_reply();
    test_forced_tool_call();
    test_bad_arguments();
    qwen_model_free(model);
    return finish("test_structured");
}
