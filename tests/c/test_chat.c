/* Chat sessions through the C ABI on the real model: its template's ChatML ids equal to
 * Qwen's make_context where the two agree, multi-turn memory, KV reuse, stop strings, streaming UTF-8,
 * cancellation from another thread, BUSY, concurrency, and bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <qwen.h>
#include "check.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static qwen_model *model;

static qwen_gen_params greedy(int max_tokens) {
    qwen_gen_params g;
    qwen_gen_params_init(&g);
    g.temperature = 0;
    g.repetition_penalty = 1.0f;
    g.max_tokens = max_tokens;
    return g;
}

static qwen_session *new_session(const char *system, int32_t n_ctx) {
    qwen_session_params p;
    qwen_session_params_init(&p);
    p.system_prompt = system;
    p.n_ctx = n_ctx;
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, &p, &s), QWEN_OK);
    return s;
}

static void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* ---------------------------------------------------------------- UTF-8 */

static bool valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n) return false;
        for (size_t k = 1; k < len; k++) if ((s[i + k] & 0xC0) != 0x80) return false;
        if (len == 2 && c < 0xC2) return false;
        i += len;
    }
    return true;
}

typedef struct {
    char text[16384];
    size_t len;
    int pieces;
    int invalid_pieces;
    const char *forbidden;          /* must never appear in a piece */
    int forbidden_seen;
    qwen_session *cancel_after_first; /* cancel this session from the callback's thread */
    int stop_after;                 /* return false after this many pieces (0 = never) */
} collector;

static bool collect(const char *piece, size_t len, void *ud) {
    collector *c = ud;
    if (!valid_utf8((const unsigned char *)piece, len)) c->invalid_pieces++;
    if (c->forbidden) {
        char tmp[4096];
        size_t n = len < sizeof tmp - 1 ? len : sizeof tmp - 1;
        memcpy(tmp, piece, n);
        tmp[n] = 0;
        if (strstr(tmp, c->forbidden)) c->forbidden_seen++;
    }
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = 0;
    }
    c->pieces++;
    if (c->stop_after && c->pieces >= c->stop_after) return false;
    return true;
}

/* --------------------------------------------------- ChatML vs make_context */

static size_t unhex(const char *hex, char *out) {
    size_t n = 0;
    for (; isxdigit((unsigned char)hex[0]) && isxdigit((unsigned char)hex[1]); hex += 2) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (char)v;
    }
    out[n] = 0;
    return n;
}

static void test_render_matches_make_context(const char *fixture) {
    FILE *f = fopen(fixture, "r");
    CHECK(f != NULL, "cannot open %s", fixture);
    if (!f) return;
    static char line[65536], name[256], system[8192];
    static char contents[16][8192];
    qwen_message messages[16];
    int n_messages = 0, window = 0, cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "case ", 5)) { snprintf(name, sizeof name, "%.200s", line + 5); n_messages = 0; }
        else if (!strncmp(line, "window ", 7)) window = atoi(line + 7);
        else if (!strncmp(line, "system ", 7)) unhex(line + 7, system);
        else if (!strncmp(line, "user ", 5) || !strncmp(line, "query ", 6)) {
            unhex(strchr(line, ' ') + 1, contents[n_messages]);
            messages[n_messages] = (qwen_message){QWEN_ROLE_USER, contents[n_messages]};
            n_messages++;
        } else if (!strncmp(line, "assistant ", 10)) {
            unhex(line + 10, contents[n_messages]);
            messages[n_messages] = (qwen_message){QWEN_ROLE_ASSISTANT, contents[n_messages]};
            n_messages++;
        } else if (!strncmp(line, "ids ", 4)) {
            int32_t expected[4096];
            size_t n_expected = 0;
            for (char *tok = strtok(line + 4, " "); tok; tok = strtok(NULL, " ")) expected[n_expected++] = atoi(tok);
            qwen_session_params p;
            qwen_session_params_init(&p);
            p.system_prompt = system;
            p.max_window_size = window;
            qwen_session *s = NULL;
            CHECK_STATUS(qwen_session_create(model, &p, &s), QWEN_OK);
            int32_t ids[4096];
            size_t n = 0;
            CHECK_STATUS(qwen_session_render_prompt(s, messages, (size_t)n_messages, ids, 4096, &n), QWEN_OK);
            /* The real model is a Qwen2.5 file: its chat template renders what make_context
             * renders for these conversations, but keeps history past max_window_size (a Qwen
             * v1 budget; make_context's cut is held on v1 vocabularies by GenerationTests). */
            if (strstr(name, "truncation")) {
                CHECK(n > n_expected, "case '%s': the template keeps the whole history (%zu ids, make_context %zu)",
                      name, n, n_expected);
            } else {
                bool same = n == n_expected && memcmp(ids, expected, n * sizeof *ids) == 0;
                CHECK(same, "case '%s': %zu ids, expected %zu", name, n, n_expected);
            }
            qwen_session_free(s);
            cases++;
        }
    }
    fclose(f);
    CHECK(cases == 4, "read %d cases", cases);
}

/* ------------------------------------------------------------ conversations */

static void test_multi_turn_and_reuse(void) {
    qwen_session *s = new_session(NULL, 0);
    qwen_gen_params g = greedy(40);
    qwen_message m1 = {QWEN_ROLE_USER, "My name is Alice and my favourite colour is green. Just reply OK."};
    qwen_result r1;
    CHECK_STATUS(qwen_chat(s, &m1, 1, &g, NULL, NULL, &r1), QWEN_OK);
    CHECK(r1.finish_reason == QWEN_FINISH_STOP, "turn 1 finish %d", r1.finish_reason);
    CHECK(qwen_session_n_messages(s) == 2, "history %zu", qwen_session_n_messages(s));
    int prompt1 = r1.n_prompt_tokens;

    qwen_message m2 = {QWEN_ROLE_USER, "What is my favourite colour? Answer with one word."};
    qwen_result r2;
    collector c = {0};
    CHECK_STATUS(qwen_chat(s, &m2, 1, &g, collect, &c, &r2), QWEN_OK);
    CHECK(strstr(r2.text, "green") || strstr(r2.text, "Green"), "turn 2 remembers: %s", r2.text);
    CHECK(strcmp(c.text, r2.text) == 0, "streamed == result text: '%s' vs '%s'", c.text, r2.text);
    CHECK(r2.n_cached_tokens > prompt1, "turn 2 reused %d cached tokens (turn 1 prompt %d)", r2.n_cached_tokens, prompt1);
    CHECK(r2.n_prompt_tokens > r2.n_cached_tokens, "prompt %d cached %d", r2.n_prompt_tokens, r2.n_cached_tokens);
    CHECK(qwen_session_n_messages(s) == 4, "history %zu", qwen_session_n_messages(s));

    qwen_role role;
    const char *content;
    CHECK_STATUS(qwen_session_get_message(s, 0, &role, &content), QWEN_OK);
    CHECK(role == QWEN_ROLE_USER && strcmp(content, m1.content) == 0, "message 0");
    CHECK_STATUS(qwen_session_get_message(s, 3, &role, &content), QWEN_OK);
    CHECK(role == QWEN_ROLE_ASSISTANT && strcmp(content, r2.text) == 0, "message 3");
    CHECK_STATUS(qwen_session_get_message(s, 4, &role, &content), QWEN_ERR_INVALID_ARGUMENT);

    CHECK_STATUS(qwen_session_reset(s), QWEN_OK);
    CHECK(qwen_session_n_messages(s) == 0, "reset clears history");
    qwen_session_free(s);
}

static void test_stop_strings_and_pull(void) {
    qwen_session *s = new_session(NULL, 0);
    qwen_gen_params g = greedy(60);
    const char *stops[] = {"5"};
    g.stop = stops;
    g.n_stop = 1;
    qwen_message m = {QWEN_ROLE_USER, "Count from 1 to 10 in digits, separated by commas, nothing else."};
    collector c = {.forbidden = "5"};
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, collect, &c, &r), QWEN_OK);
    CHECK(r.finish_reason == QWEN_FINISH_STOP, "finish %d", r.finish_reason);
    CHECK(strstr(r.text, "4") && !strstr(r.text, "5"), "text stops before the stop string: %s", r.text);
    CHECK(c.forbidden_seen == 0, "a piece contained the stop string");
    char reply[4096];   /* r.text is valid only until the session's next call */
    snprintf(reply, sizeof reply, "%s", r.text);

    /* Pull form gives the same reply as the callback form. */
    CHECK_STATUS(qwen_session_reset(s), QWEN_OK);
    CHECK_STATUS(qwen_chat_begin(s, &m, 1, &g), QWEN_OK);
    char pulled[4096] = "";
    size_t pulled_len = 0;
    for (int i = 0; i < 1000; i++) {
        const char *piece; size_t len; bool done;
        CHECK_STATUS(qwen_chat_next(s, &piece, &len, &done), QWEN_OK);
        if (done) break;
        memcpy(pulled + pulled_len, piece, len);
        pulled_len += len;
        pulled[pulled_len] = 0;
    }
    qwen_result pr;
    CHECK_STATUS(qwen_chat_end(s, &pr), QWEN_OK);
    CHECK(strcmp(pulled, reply) == 0 && strcmp(pr.text, reply) == 0, "pull '%s' vs '%s'", pulled, reply);

    /* Callback returning false ends with finish reason CALLBACK. */
    CHECK_STATUS(qwen_session_reset(s), QWEN_OK);
    collector stopper = {.stop_after = 2};
    g.n_stop = 0;
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, collect, &stopper, &r), QWEN_OK);
    CHECK(r.finish_reason == QWEN_FINISH_CALLBACK && stopper.pieces == 2, "finish %d after %d pieces", r.finish_reason, stopper.pieces);

    /* max_tokens ends with LENGTH. */
    g = greedy(3);
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(r.finish_reason == QWEN_FINISH_LENGTH && r.n_generated_tokens == 3, "finish %d, %d tokens", r.finish_reason, r.n_generated_tokens);
    qwen_session_free(s);
}

static void test_utf8_pieces(void) {
    const char *prompts[] = {
        "用三句话介绍一下长城。",
        "Reply with a line of ten different emoji (like 🎉🚀🌈), and nothing else.",
    };
    for (int i = 0; i < 2; i++) {
        qwen_session *s = new_session(NULL, 0);
        qwen_gen_params g = greedy(48);
        qwen_message m = {QWEN_ROLE_USER, prompts[i]};
        collector c = {0};
        qwen_result r;
        CHECK_STATUS(qwen_chat(s, &m, 1, &g, collect, &c, &r), QWEN_OK);
        CHECK(c.pieces > 3 && c.invalid_pieces == 0, "prompt %d: %d pieces, %d invalid", i, c.pieces, c.invalid_pieces);
        CHECK(strcmp(c.text, r.text) == 0, "streamed == text");
        CHECK(!strstr(c.text, "<|im_end|>") && !strstr(c.text, "<|im_start|>"), "no special token text");
        qwen_session_free(s);
    }
}

/* ------------------------------------------------------------- cancellation */

typedef struct { qwen_session *session; int delay_ms; } canceller_args;

static void *cancel_later(void *p) {
    canceller_args *a = p;
    sleep_ms(a->delay_ms);
    qwen_session_cancel(a->session);
    return NULL;
}

static bool cancel_on_third_piece(const char *piece, size_t len, void *ud) {
    (void)piece; (void)len;
    collector *c = ud;
    c->pieces++;
    if (c->pieces == 3) {
        pthread_t t;
        canceller_args a = {c->cancel_after_first, 0};
        pthread_create(&t, NULL, cancel_later, &a);
        pthread_join(t, NULL);
    }
    return true;
}

static void test_cancel(void) {
    qwen_session *s = new_session(NULL, 0);
    qwen_gen_params g = greedy(300);
    qwen_message warmup = {QWEN_ROLE_USER, "Say hi."};
    CHECK_STATUS(qwen_chat(s, &warmup, 1, &g, NULL, NULL, NULL), QWEN_OK);
    size_t before = qwen_session_n_messages(s);

    /* During decode: cancelled from a second thread after the third piece. */
    qwen_message m = {QWEN_ROLE_USER, "Write a long story about a dragon, at least 300 words."};
    collector c = {.cancel_after_first = s};
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, cancel_on_third_piece, &c, &r), QWEN_ERR_CANCELLED);
    CHECK(c.pieces >= 3 && c.pieces <= 5, "stopped within a token of the cancel: %d pieces", c.pieces);
    CHECK(qwen_session_n_messages(s) == before, "history unchanged after cancel: %zu", qwen_session_n_messages(s));

    /* During prefill: a long prompt (~3500 tokens), cancelled 200 ms in. */
    static char long_prompt[12000];
    size_t off = 0;
    while (off < sizeof long_prompt - 100) off += (size_t)snprintf(long_prompt + off, sizeof long_prompt - off, "The quick brown fox %zu jumps. ", off);
    qwen_message big = {QWEN_ROLE_USER, long_prompt};
    pthread_t t;
    canceller_args a = {s, 200};
    pthread_create(&t, NULL, cancel_later, &a);
    collector none = {0};
    CHECK_STATUS(qwen_chat(s, &big, 1, &g, collect, &none, &r), QWEN_ERR_CANCELLED);
    pthread_join(t, NULL);
    CHECK(none.pieces == 0, "no piece before the prefill finished");
    CHECK(qwen_session_n_messages(s) == before, "history unchanged after a cancelled prefill");

    /* The session still works afterwards. */
    CHECK_STATUS(qwen_chat(s, &warmup, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(qwen_session_n_messages(s) == before + 2, "chat after cancel");
    qwen_session_free(s);
}

/* ---------------------------------------------------------------- BUSY */

typedef struct {
    qwen_session *session;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stage;           /* 1: first piece seen; 2: second caller done */
    qwen_status second;
} busy_state;

static bool wait_for_second_caller(const char *piece, size_t len, void *ud) {
    (void)piece; (void)len;
    busy_state *b = ud;
    pthread_mutex_lock(&b->lock);
    if (b->stage == 0) {
        b->stage = 1;
        pthread_cond_broadcast(&b->cond);
        while (b->stage != 2) pthread_cond_wait(&b->cond, &b->lock);
    }
    pthread_mutex_unlock(&b->lock);
    return true;
}

static void *second_caller(void *p) {
    busy_state *b = p;
    pthread_mutex_lock(&b->lock);
    while (b->stage != 1) pthread_cond_wait(&b->cond, &b->lock);
    pthread_mutex_unlock(&b->lock);
    qwen_message m = {QWEN_ROLE_USER, "hello"};
    qwen_gen_params g = greedy(4);
    b->second = qwen_chat(b->session, &m, 1, &g, NULL, NULL, NULL);
    pthread_mutex_lock(&b->lock);
    b->stage = 2;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->lock);
    return NULL;
}

static void test_busy(void) {
    busy_state b = {.session = new_session(NULL, 0), .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    pthread_t t;
    pthread_create(&t, NULL, second_caller, &b);
    qwen_message m = {QWEN_ROLE_USER, "Name three colours."};
    qwen_gen_params g = greedy(16);
    CHECK_STATUS(qwen_chat(b.session, &m, 1, &g, wait_for_second_caller, &b, NULL), QWEN_OK);
    pthread_join(t, NULL);
    CHECK(b.second == QWEN_ERR_BUSY, "second concurrent call got %d", b.second);
    qwen_session_free(b.session);
}

/* ------------------------------------------------------------- concurrency */

static const char *parallel_prompts[4] = {
    "What is 2 + 2? Answer briefly.",
    "Name a prime number greater than 10.",
    "Write one line of Python that prints hello.",
    "What colour is the sky on a clear day?",
};

typedef struct { int index; char text[2048]; qwen_status status; } parallel_job;

static void *run_job(void *p) {
    parallel_job *job = p;
    qwen_session_params sp;
    qwen_session_params_init(&sp);
    sp.n_threads = 1;
    qwen_session *s = NULL;
    job->status = qwen_session_create(model, &sp, &s);
    if (job->status != QWEN_OK) return NULL;
    qwen_message m = {QWEN_ROLE_USER, parallel_prompts[job->index]};
    qwen_gen_params g = greedy(24);
    qwen_result r;
    job->status = qwen_chat(s, &m, 1, &g, NULL, NULL, &r);
    if (job->status == QWEN_OK) snprintf(job->text, sizeof job->text, "%s", r.text);
    qwen_session_free(s);
    return NULL;
}

static void test_parallel_sessions(void) {
    parallel_job sequential[4], parallel[4];
    for (int i = 0; i < 4; i++) { sequential[i] = (parallel_job){.index = i}; run_job(&sequential[i]); }
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) { parallel[i] = (parallel_job){.index = i}; pthread_create(&threads[i], NULL, run_job, &parallel[i]); }
    for (int i = 0; i < 4; i++) pthread_join(threads[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK(sequential[i].status == QWEN_OK && parallel[i].status == QWEN_OK, "job %d status %d/%d", i, sequential[i].status, parallel[i].status);
        CHECK(strlen(parallel[i].text) > 0 && strcmp(sequential[i].text, parallel[i].text) == 0,
              "job %d: parallel '%s' vs sequential '%s'", i, parallel[i].text, sequential[i].text);
    }
}

/* --------------------------------------------------------------- edge cases */

static void test_generate_and_limits(void) {
    qwen_session *s = new_session(NULL, 0);
    qwen_gen_params g = greedy(12);
    qwen_result r;
    CHECK_STATUS(qwen_generate(s, "def fibonacci(n):", &g, NULL, NULL, &r), QWEN_OK);
    CHECK(r.n_generated_tokens > 0 && strlen(r.text) > 0, "generate: '%s'", r.text);
    CHECK(qwen_session_n_messages(s) == 0, "generate leaves the history alone");
    qwen_session_free(s);

    /* A query that cannot fit the window. */
    qwen_session *tiny = new_session(NULL, 32);
    qwen_message m = {QWEN_ROLE_USER, "This question is far too long for a context window of only thirty-two tokens, "
                                      "because the system prompt alone takes a good part of it and then some."};
    CHECK_STATUS(qwen_chat(tiny, &m, 1, &g, NULL, NULL, &r), QWEN_ERR_CONTEXT_FULL);
    qwen_session_free(tiny);
}

static void test_bad_arguments(void) {
    qwen_session *s = new_session(NULL, 0);
    qwen_message ok = {QWEN_ROLE_USER, "hi"};
    qwen_gen_params g = greedy(4);
    qwen_result r;
    qwen_session *out = NULL;
    CHECK_STATUS(qwen_session_create(NULL, NULL, &out), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_create(model, NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_params bad_params;
    qwen_session_params_init(&bad_params);
    bad_params.n_ctx = -5;
    CHECK_STATUS(qwen_session_create(model, &bad_params, &out), QWEN_ERR_INVALID_ARGUMENT);
    bad_params.n_ctx = 0;
    bad_params.n_threads = 1000000;
    CHECK_STATUS(qwen_session_create(model, &bad_params, &out), QWEN_ERR_INVALID_ARGUMENT);
    bad_params.n_threads = 0;
    CHECK_STATUS(qwen_chat(s, &ok, (size_t)-1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    bad_params.struct_size = 0;
    CHECK_STATUS(qwen_session_create(model, &bad_params, &out), QWEN_ERR_INVALID_ARGUMENT);
    bad_params.struct_size = sizeof bad_params;
    bad_params.system_prompt = "\xff\xfe";
    CHECK_STATUS(qwen_session_create(model, &bad_params, &out), QWEN_ERR_INVALID_ARGUMENT);

    CHECK_STATUS(qwen_chat(NULL, &ok, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_chat(s, NULL, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_chat(s, &ok, 0, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    qwen_message null_content = {QWEN_ROLE_USER, NULL};
    CHECK_STATUS(qwen_chat(s, &null_content, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    qwen_message bad_utf8 = {QWEN_ROLE_USER, "caf\xc3"};
    CHECK_STATUS(qwen_chat(s, &bad_utf8, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    qwen_message bad_role = {(qwen_role)7, "hi"};
    CHECK_STATUS(qwen_chat(s, &bad_role, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    qwen_message assistant_last = {QWEN_ROLE_ASSISTANT, "hi"};
    CHECK_STATUS(qwen_chat(s, &assistant_last, 1, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    qwen_gen_params bad = greedy(4);
    bad.top_p = 0;
    CHECK_STATUS(qwen_chat(s, &ok, 1, &bad, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    bad = greedy(4);
    bad.temperature = -1;
    CHECK_STATUS(qwen_chat(s, &ok, 1, &bad, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    bad = greedy(4);
    bad.n_stop = 2;
    bad.stop = NULL;
    CHECK_STATUS(qwen_chat(s, &ok, 1, &bad, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    bad = greedy(-1);
    CHECK_STATUS(qwen_chat(s, &ok, 1, &bad, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(qwen_session_n_messages(s) == 0, "failed calls leave no history");

    CHECK_STATUS(qwen_generate(s, NULL, &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_generate(NULL, "x", &g, NULL, NULL, &r), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_reset(NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_set_system_prompt(NULL, "x"), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_set_system_prompt(s, "\xc3"), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_set_system_prompt(s, NULL), QWEN_OK);
    CHECK(qwen_session_n_messages(NULL) == 0, "n_messages(NULL)");
    CHECK_STATUS(qwen_session_get_message(NULL, 0, NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_cancel(NULL);
    CHECK_STATUS(qwen_chat_next(s, NULL, NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    const char *piece; size_t len; bool done;
    CHECK_STATUS(qwen_chat_next(s, &piece, &len, &done), QWEN_ERR_WRONG_STATE); /* no begin */
    CHECK_STATUS(qwen_chat_end(s, &r), QWEN_ERR_WRONG_STATE);
    CHECK(strcmp(qwen_status_string(QWEN_ERR_WRONG_STATE), "wrong state") == 0, "status string");
    CHECK_STATUS(qwen_chat_begin(s, &ok, 1, &g), QWEN_OK);
    CHECK_STATUS(qwen_chat_begin(s, &ok, 1, &g), QWEN_ERR_WRONG_STATE);   /* one reply at a time */
    CHECK_STATUS(qwen_chat(s, &ok, 1, &g, NULL, NULL, &r), QWEN_ERR_WRONG_STATE);
    CHECK_STATUS(qwen_chat_end(s, &r), QWEN_OK);
    CHECK_STATUS(qwen_chat_begin(NULL, &ok, 1, &g), QWEN_ERR_INVALID_ARGUMENT);
    size_t n;
    CHECK_STATUS(qwen_session_render_prompt(s, &ok, 1, NULL, 0, &n), QWEN_ERR_BUFFER_TOO_SMALL);
    CHECK(n > 10, "render size query %zu", n);
    CHECK_STATUS(qwen_session_render_prompt(s, &ok, 1, NULL, 0, NULL), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_free(s);
}

/* Function calling from C: tools set and checked, a tool round through the history
 * (the prompt ids themselves are held to Qwen's code in tests/python/test_tools.py). */
static void test_tools(void) {
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(model, NULL, &s), QWEN_OK);
    if (!s) return;
    qwen_tool bad = {"f", NULL, "{\"a\": }"};
    CHECK_STATUS(qwen_session_set_tools(s, &bad, 1), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "tool f") != NULL, "names the tool: %s", qwen_last_error());
    qwen_tool unnamed = {NULL, NULL, NULL};
    CHECK_STATUS(qwen_session_set_tools(s, &unnamed, 1), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_set_tools(s, NULL, 1), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_set_tools(NULL, NULL, 0), QWEN_ERR_INVALID_ARGUMENT);
    qwen_tool weather = {"get_weather", "Get the current weather of a city.",
                         "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"};
    CHECK_STATUS(qwen_session_set_tools(s, &weather, 1), QWEN_OK);

    CHECK_STATUS(qwen_session_add_message(s, QWEN_ROLE_USER, "Weather in Paris?", NULL, NULL), QWEN_OK);
    CHECK_STATUS(qwen_session_add_message(s, QWEN_ROLE_USER, "x", "f", "{}"), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_add_message(s, QWEN_ROLE_SYSTEM, "x", NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_add_message(s, (qwen_role)7, "x", NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_add_message(s, QWEN_ROLE_ASSISTANT, "\xff", "f", NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_add_message(s, QWEN_ROLE_ASSISTANT, "I will look it up.", "get_weather",
                                          "{\"city\": \"Paris\"}"), QWEN_OK);
    CHECK(qwen_session_n_messages(s) == 2, "history %zu", qwen_session_n_messages(s));
    const char *name = "x", *args = "x";
    CHECK_STATUS(qwen_session_get_tool_call(s, 0, &name, &args), QWEN_OK);
    CHECK(name == NULL && args == NULL, "a user message calls no tool");
    CHECK_STATUS(qwen_session_get_tool_call(s, 1, &name, &args), QWEN_OK);
    CHECK(name && strcmp(name, "get_weather") == 0 && args && strcmp(args, "{\"city\": \"Paris\"}") == 0, "tool call kept");
    CHECK_STATUS(qwen_session_get_tool_call(s, 2, &name, &args), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_get_tool_call(s, 1, NULL, &args), QWEN_ERR_INVALID_ARGUMENT);

    /* The tool's result continues the assistant's turn; the reply joins the history parsed. */
    qwen_message result = {QWEN_ROLE_TOOL, "{\"temperature\": 21}"};
    qwen_gen_params g = greedy(48);
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &result, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(qwen_session_n_messages(s) == 4, "history %zu", qwen_session_n_messages(s));
    qwen_role role;
    const char *content;
    CHECK_STATUS(qwen_session_get_message(s, 3, &role, &content), QWEN_OK);
    CHECK(role == QWEN_ROLE_ASSISTANT && strstr(r.text, content) != NULL, "parsed '%s' within raw '%s'", content, r.text);
    CHECK(strstr(r.text, "Observation:") == NULL, "the reply stops before Observation: %s", r.text);
    qwen_session_free(s);
}

int main(int argc, char **argv) {
    const char *fixture = argc > 1 ? argv[1] : "Tests/Fixtures/chatml-cases.txt";
    CHECK_STATUS(qwen_model_load(model_path(), NULL, &model), QWEN_OK);
    if (!model) return finish("test_chat");
    test_render_matches_make_context(fixture);
    test_bad_arguments();
    test_multi_turn_and_reuse();
    test_stop_strings_and_pull();
    test_utf8_pieces();
    test_cancel();
    test_busy();
    test_parallel_sessions();
    test_generate_and_limits();
    test_tools();
    qwen_model_free(model);
    return finish("test_chat");
}
