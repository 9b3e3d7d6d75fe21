/* Saved sessions through the C ABI, on the real model: a session saved and loaded into a
 * new session continues with exactly the original's greedy reply (the restored KV rows
 * reused); bad paths and a save during a pulled reply are refused; a failed load leaves
 * *out untouched. */
#define _POSIX_C_SOURCE 200809L
#include <qwen.h>
#include "check.h"

#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

static qwen_gen_params greedy(int32_t max_tokens) {
    qwen_gen_params gen;
    qwen_gen_params_init(&gen);
    gen.temperature = 0;
    gen.repetition_penalty = 1.0f;
    gen.max_tokens = max_tokens;
    return gen;
}

/* The reply to `text`, copied (the result's text lives until the session's next call). */
static char *reply(qwen_session *s, const char *text, int32_t *cached) {
    qwen_message msg = {QWEN_ROLE_USER, text};
    qwen_gen_params gen = greedy(24);
    qwen_result result;
    qwen_status st = qwen_chat(s, &msg, 1, &gen, NULL, NULL, &result);
    CHECK(st == QWEN_OK, "chat: %s", qwen_last_error());
    if (st != QWEN_OK) return strdup("");
    if (cached) *cached = result.n_cached_tokens;
    return strdup(result.text);
}

static bool same_history(qwen_session *a, qwen_session *b) {
    size_t n = qwen_session_n_messages(a);
    if (n != qwen_session_n_messages(b)) return false;
    for (size_t i = 0; i < n; i++) {
        qwen_role ra, rb;
        const char *ca, *cb;
        if (qwen_session_get_message(a, i, &ra, &ca) != QWEN_OK || qwen_session_get_message(b, i, &rb, &cb) != QWEN_OK) return false;
        if (ra != rb || strcmp(ca, cb) != 0) return false;
    }
    return true;
}

int main(void) {
    qwen_model *model = NULL;
    qwen_model_params mp;
    qwen_model_params_init(&mp);
    mp.n_threads = 2;
    if (qwen_model_load(model_path(), &mp, &model) != QWEN_OK) {
        fprintf(stderr, "load: %s\n", qwen_last_error());
        return 1;
    }
    char dir[] = "/tmp/qwen-saved-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 2; }
    char path[256], missing[256];
    snprintf(path, sizeof path, "%s/chat.qsession", dir);
    snprintf(missing, sizeof missing, "%s/none/chat.qsession", dir);

    qwen_session_params sp;
    qwen_session_params_init(&sp);
    sp.n_ctx = 1024;
    sp.system_prompt = "You are a terse assistant.";
    qwen_session *original = NULL;
    CHECK_STATUS(qwen_session_create(model, &sp, &original), QWEN_OK);
    free(reply(original, "Name three prime numbers.", NULL));
    CHECK_STATUS(qwen_session_save(original, path), QWEN_OK);

    /* Loaded with the file's settings: the same history and system prompt, the same next reply. */
    qwen_session *loaded = NULL;
    CHECK_STATUS(qwen_session_load(model, path, NULL, &loaded), QWEN_OK);
    if (!loaded) return finish("test_saved_sessions");
    CHECK(same_history(original, loaded), "histories differ");
    const char *system = NULL;
    CHECK_STATUS(qwen_session_get_system_prompt(loaded, &system), QWEN_OK);
    CHECK(system && strcmp(system, "You are a terse assistant.") == 0, "system prompt %s", system ? system : "(null)");
    int32_t cached_original = 0, cached_loaded = 0;
    char *expected = reply(original, "And three more?", &cached_original);
    char *got = reply(loaded, "And three more?", &cached_loaded);
    CHECK(strlen(expected) > 0 && strcmp(expected, got) == 0, "continuations differ:\n  original: %s\n  loaded:   %s", expected, got);
    CHECK(cached_loaded > 0 && cached_loaded == cached_original, "cached tokens %d (original %d)", cached_loaded, cached_original);
    CHECK(same_history(original, loaded), "histories differ after the next turn");
    free(expected);
    free(got);

    /* Tools are saved and read back as they were set (description / parameters NULL where none). */
    {
        char tools_path[300];
        snprintf(tools_path, sizeof tools_path, "%s/tools.qsession", dir);
        qwen_session *with_tools = NULL, *back = NULL;
        CHECK_STATUS(qwen_session_create(model, NULL, &with_tools), QWEN_OK);
        qwen_tool tools[] = {{"get_weather", "Current weather of a city.", "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"},
                             {"now", NULL, NULL}};
        CHECK_STATUS(qwen_session_set_tools(with_tools, tools, 2), QWEN_OK);
        CHECK_STATUS(qwen_session_save(with_tools, tools_path), QWEN_OK);
        CHECK_STATUS(qwen_session_load(model, tools_path, NULL, &back), QWEN_OK);
        CHECK(qwen_session_n_tools(back) == 2 && qwen_session_n_tools(NULL) == 0, "n_tools %zu", qwen_session_n_tools(back));
        qwen_tool t0, t1;
        CHECK_STATUS(qwen_session_get_tool(back, 0, &t0), QWEN_OK);
        CHECK_STATUS(qwen_session_get_tool(back, 1, &t1), QWEN_OK);
        CHECK(strcmp(t0.name, "get_weather") == 0 && t0.description && strcmp(t0.description, "Current weather of a city.") == 0
              && t0.parameters && strcmp(t0.parameters, "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}") == 0,
              "tool 0: %s / %s / %s", t0.name, t0.description ? t0.description : "(null)", t0.parameters ? t0.parameters : "(null)");
        CHECK(strcmp(t1.name, "now") == 0 && t1.description == NULL && t1.parameters == NULL, "tool 1: %s", t1.name);
        CHECK_STATUS(qwen_session_get_tool(back, 2, &t0), QWEN_ERR_INVALID_ARGUMENT);
        CHECK(strstr(qwen_last_error(), "out of range") != NULL, "%s", qwen_last_error());
        CHECK_STATUS(qwen_session_get_tool(back, 0, NULL), QWEN_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(qwen_session_get_tool(NULL, 0, &t0), QWEN_ERR_INVALID_ARGUMENT);
        qwen_session_free(back);
        qwen_session_free(with_tools);
    }

    /* params: n_ctx applies, the system prompt and tools in them are ignored. */
    qwen_session_params other;
    qwen_session_params_init(&other);
    other.n_ctx = 2048;
    other.system_prompt = "ignored";
    qwen_session *wider = NULL;
    CHECK_STATUS(qwen_session_load(model, path, &other, &wider), QWEN_OK);
    if (wider) {
        CHECK_STATUS(qwen_session_get_system_prompt(wider, &system), QWEN_OK);
        CHECK(system && strcmp(system, "You are a terse assistant.") == 0, "system prompt %s", system ? system : "(null)");
    }
    qwen_session_free(wider);
    other.n_ctx = 4;   /* smaller than the cached tokens */
    qwen_session *sentinel = (qwen_session *)0x1, *out = sentinel;
    CHECK_STATUS(qwen_session_load(model, path, &other, &out), QWEN_ERR_CONTEXT_FULL);
    CHECK(out == sentinel, "out changed on a failed load");

    /* Bad arguments and paths: a status and a message naming the path, *out untouched. */
    CHECK_STATUS(qwen_session_load(model, missing, NULL, &out), QWEN_ERR_IO);
    CHECK(strstr(qwen_last_error(), missing) != NULL, "names the path: %s", qwen_last_error());
    CHECK_STATUS(qwen_session_load(model, dir, NULL, &out), QWEN_ERR_IO);
    CHECK_STATUS(qwen_session_load(NULL, path, NULL, &out), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_load(model, NULL, NULL, &out), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_load(model, path, NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(out == sentinel, "out changed on a failed load");
    FILE *f = fopen(path, "r+b");
    if (f) { fseek(f, 100, SEEK_SET); fputc(0x5a, f); fclose(f); }
    CHECK_STATUS(qwen_session_load(model, path, NULL, &out), QWEN_ERR_BAD_MODEL);
    CHECK(strstr(qwen_last_error(), "checksum") != NULL, "names the checksum: %s", qwen_last_error());
    CHECK(out == sentinel, "out changed on a failed load");

    CHECK_STATUS(qwen_session_save(NULL, path), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_save(loaded, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_save(loaded, missing), QWEN_ERR_IO);
    /* Not while a pulled reply is in progress. */
    qwen_message msg = {QWEN_ROLE_USER, "Count to three."};
    qwen_gen_params gen = greedy(4);
    CHECK_STATUS(qwen_chat_begin(loaded, &msg, 1, &gen), QWEN_OK);
    CHECK_STATUS(qwen_session_save(loaded, path), QWEN_ERR_WRONG_STATE);
    CHECK_STATUS(qwen_chat_end(loaded, NULL), QWEN_OK);
    CHECK_STATUS(qwen_session_save(loaded, path), QWEN_OK);   /* over the damaged file */
    CHECK_STATUS(qwen_session_load(model, path, NULL, &out), QWEN_OK);
    if (out != sentinel) qwen_session_free(out);

    qwen_session_free(loaded);
    qwen_session_free(original);
    qwen_model_free(model);
    unlink(path);
    rmdir(dir);
    return finish("test_saved_sessions");
}
