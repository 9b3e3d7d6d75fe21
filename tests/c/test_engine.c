/* The engine through the C ABI on the real model: conversations on several threads are
 * decoded together (throughput against the same conversations one after another, with
 * identical greedy replies), idle sessions hold no threads, the prompt cache hands back
 * the session holding a conversation, a cancel lands within a step while others run,
 * and the log callback receives the engine's events. */
#define _POSIX_C_SOURCE 200809L
#include <qwen.h>
#include "check.h"

#include <dirent.h>
#include <pthread.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static qwen_model *model;

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static qwen_gen_params greedy(int max_tokens) {
    qwen_gen_params g;
    qwen_gen_params_init(&g);
    g.temperature = 0;
    g.repetition_penalty = 1.0f;
    g.max_tokens = max_tokens;
    return g;
}

/* Threads of this process. */
static int thread_count(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) if (e->d_name[0] != '.') n++;
    closedir(dir);
    return n;
}

/* Resident memory in KiB. */
static long resident_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* ------------------------------------------------------------ batching */

/* Prompts whose greedy replies run past the token budget, so every conversation
 * generates the same number of tokens. */
static const char *long_prompts[8] = {
    "Write a long story about a lighthouse keeper.",
    "Explain in detail how a compiler turns source code into machine code.",
    "Describe the water cycle step by step, in depth.",
    "Write a detailed history of the bicycle.",
    "Explain how public-key cryptography works, with examples.",
    "Write a long poem about the sea.",
    "Describe, in detail, how to bake bread at home.",
    "Explain the rules of chess thoroughly.",
};

enum { GENERATED = 48 };

typedef struct {
    int index;
    char text[4096];
    int generated;
    qwen_status status;
} conversation;

static void *converse(void *p) {
    conversation *c = p;
    qwen_session *s = NULL;
    c->status = qwen_session_create(model, NULL, &s);
    if (c->status != QWEN_OK) return NULL;
    qwen_message m = {QWEN_ROLE_USER, long_prompts[c->index]};
    qwen_gen_params g = greedy(GENERATED);
    qwen_result r;
    c->status = qwen_chat(s, &m, 1, &g, NULL, NULL, &r);
    if (c->status == QWEN_OK) {
        snprintf(c->text, sizeof c->text, "%s", r.text);
        c->generated = r.n_generated_tokens;
    }
    qwen_session_free(s);
    return NULL;
}

/* Generated tokens per second of n conversations: one after another, or all at once
 * on n threads. */
static double run_conversations(int n, bool together, conversation *out) {
    pthread_t threads[8];
    double start = now_seconds();
    for (int i = 0; i < n; i++) {
        out[i] = (conversation){.index = i};
        if (together) pthread_create(&threads[i], NULL, converse, &out[i]);
        else converse(&out[i]);
    }
    if (together) for (int i = 0; i < n; i++) pthread_join(threads[i], NULL);
    double seconds = now_seconds() - start;
    int tokens = 0;
    for (int i = 0; i < n; i++) tokens += out[i].generated;
    return tokens / seconds;
}

/* n conversations at once give at least `ratio` times the total tokens/s of the same n
 * one after another, with identical greedy replies. The machine is shared, so the
 * throughput ratio gets up to five attempts; the replies must match every time. */
static void test_batched_throughput(int n, double ratio) {
    double best = 0, alone = 0, together = 0;
    for (int attempt = 0; attempt < 5 && best < ratio; attempt++) {
        conversation one_by_one[8], at_once[8];
        alone = run_conversations(n, false, one_by_one);
        together = run_conversations(n, true, at_once);
        for (int i = 0; i < n; i++) {
            CHECK(one_by_one[i].status == QWEN_OK && at_once[i].status == QWEN_OK, "conversation %d: status %d / %d (%s)",
                  i, one_by_one[i].status, at_once[i].status, qwen_last_error());
            CHECK(one_by_one[i].generated == GENERATED, "conversation %d ended early (%d tokens): pick a longer prompt", i,
                  one_by_one[i].generated);
            CHECK(strcmp(one_by_one[i].text, at_once[i].text) == 0, "conversation %d: together '%s' vs alone '%s'", i,
                  at_once[i].text, one_by_one[i].text);
        }
        if (together / alone > best) best = together / alone;
        if (getenv("QWEN_SANITIZED")) break;   /* replies only: a sanitizer's run times nothing */
    }
    if (getenv("QWEN_SANITIZED")) {
        printf("%d conversations: identical replies at once (throughput not checked under a sanitizer)\n", n);
        return;
    }
    printf("%d conversations: %.1f tok/s one after another, %.1f tok/s at once: %.2fx (required %.1fx)\n",
           n, alone, together, best, ratio);
    CHECK(best >= ratio, "%d conversations at once: %.2fx the throughput of one after another (required %.1fx)", n, best, ratio);
}

/* ---------------------------------------------------------- idle sessions */

static void test_idle_sessions_hold_no_threads(void) {
    conversation warm = {.index = 0};
    converse(&warm);   /* the engine's threads are running now */
    int threads_before = thread_count();
    long memory_before = resident_kib();
    qwen_session *idle[100];
    for (int i = 0; i < 100; i++) CHECK_STATUS(qwen_session_create(model, NULL, &idle[i]), QWEN_OK);
    int threads_after = thread_count();
    long memory_after = resident_kib();
    printf("100 idle sessions: %d -> %d threads, %+ld KiB resident\n", threads_before, threads_after, memory_after - memory_before);
    CHECK(threads_after == threads_before, "100 idle sessions added %d threads", threads_after - threads_before);
    CHECK(memory_after - memory_before < 16 * 1024, "100 idle sessions took %ld KiB", memory_after - memory_before);
    /* One of them still chats. */
    qwen_message m = {QWEN_ROLE_USER, "Say hi."};
    qwen_gen_params g = greedy(4);
    CHECK_STATUS(qwen_chat(idle[37], &m, 1, &g, NULL, NULL, NULL), QWEN_OK);
    for (int i = 0; i < 100; i++) qwen_session_free(idle[i]);
}

/* ------------------------------------------------------------ prompt cache */

static void test_prompt_cache(void) {
    qwen_session_params p;
    qwen_session_params_init(&p);
    p.system_prompt = "You are a terse assistant.";
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_acquire(model, NULL, 0, &p, &s), QWEN_OK);
    if (!s) return;
    const char *system = NULL;
    CHECK_STATUS(qwen_session_get_system_prompt(s, &system), QWEN_OK);
    CHECK(system && strcmp(system, "You are a terse assistant.") == 0, "system prompt '%s'", system ? system : "(null)");
    qwen_message question = {QWEN_ROLE_USER, "What is the capital of France?"};
    qwen_gen_params g = greedy(16);
    qwen_result r;
    CHECK_STATUS(qwen_chat(s, &question, 1, &g, NULL, NULL, &r), QWEN_OK);
    char answer[1024];
    snprintf(answer, sizeof answer, "%s", r.text);
    qwen_session_release(s);

    /* The client re-sends the conversation with a new question: the session holding it
     * comes back and only the new part is prefilled. */
    qwen_message conversation[2] = {question, {QWEN_ROLE_ASSISTANT, answer}};
    qwen_session *again = NULL;
    CHECK_STATUS(qwen_session_acquire(model, conversation, 2, &p, &again), QWEN_OK);
    if (!again) return;
    CHECK(qwen_session_n_messages(again) == 2, "history of %zu messages", qwen_session_n_messages(again));
    qwen_message follow_up = {QWEN_ROLE_USER, "And of Italy?"};
    CHECK_STATUS(qwen_chat(again, &follow_up, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(r.n_cached_tokens > 20 && r.n_cached_tokens < r.n_prompt_tokens, "%d of %d prompt tokens reused",
          r.n_cached_tokens, r.n_prompt_tokens);
    qwen_session_release(again);

    /* Another conversation under another system prompt does not take it over. */
    qwen_session_params other;
    qwen_session_params_init(&other);
    qwen_session *fresh = NULL;
    qwen_message unrelated = {QWEN_ROLE_USER, "Hello there"};
    CHECK_STATUS(qwen_session_acquire(model, &unrelated, 1, &other, &fresh), QWEN_OK);
    CHECK_STATUS(qwen_session_get_system_prompt(fresh, &system), QWEN_OK);
    CHECK(system == NULL, "the model's own default system prompt (NULL), got '%s'", system ? system : "");
    qwen_message next = {QWEN_ROLE_USER, "Say ok."};
    CHECK_STATUS(qwen_chat(fresh, &next, 1, &g, NULL, NULL, &r), QWEN_OK);
    /* Its prompt is computed, but for the start it shares with the cached conversation
     * ("<|im_start|>system\nYou are a"), copied (the engine shares prompt prefixes). */
    CHECK(r.n_cached_tokens < 10, "a fresh session, yet %d tokens reused", r.n_cached_tokens);
    qwen_session_free(fresh);   /* freeing an acquired session is allowed too */

    /* And the first conversation is still cached. */
    CHECK_STATUS(qwen_session_acquire(model, conversation, 2, &p, &again), QWEN_OK);
    CHECK_STATUS(qwen_chat(again, &follow_up, 1, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(r.n_cached_tokens > 20, "only %d tokens reused", r.n_cached_tokens);
    qwen_session_release(again);

    /* Raw prompts: a later prompt that extends an earlier one reuses it. */
    const char *first = "# Fibonacci numbers in Python, iterative and recursive versions.\n"
                        "def fibonacci(n):\n    a, b = 0, 1\n";
    char second[512];
    snprintf(second, sizeof second, "%s    for _ in range(n):\n", first);
    qwen_session *raw = NULL;
    CHECK_STATUS(qwen_session_acquire_prompt(model, first, NULL, &raw), QWEN_OK);
    CHECK_STATUS(qwen_generate(raw, first, &g, NULL, NULL, &r), QWEN_OK);
    int first_tokens = r.n_prompt_tokens;
    qwen_session_release(raw);
    CHECK_STATUS(qwen_session_acquire_prompt(model, second, NULL, &raw), QWEN_OK);
    CHECK_STATUS(qwen_generate(raw, second, &g, NULL, NULL, &r), QWEN_OK);
    CHECK(r.n_cached_tokens >= first_tokens - 1, "raw prompt: %d of the first prompt's %d tokens reused", r.n_cached_tokens, first_tokens);
    qwen_session_release(raw);

    /* Bad arguments. */
    CHECK_STATUS(qwen_session_acquire(NULL, NULL, 0, NULL, &raw), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_acquire(model, NULL, 1, NULL, &raw), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_acquire(model, NULL, 0, NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    qwen_message system_only = {QWEN_ROLE_SYSTEM, "Be brief."};
    CHECK_STATUS(qwen_session_acquire(model, &system_only, 1, NULL, &raw), QWEN_OK);
    CHECK_STATUS(qwen_session_get_system_prompt(raw, &system), QWEN_OK);
    CHECK(strcmp(system, "Be brief.") == 0, "a system message sets the system prompt: '%s'", system);
    qwen_session_release(raw);
    qwen_message bad_role = {(qwen_role)42, "x"};
    CHECK_STATUS(qwen_session_acquire(model, &bad_role, 1, NULL, &raw), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_acquire_prompt(model, NULL, NULL, &raw), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_session_get_system_prompt(NULL, &system), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_release(NULL);
}

/* The least recently used idle session goes when the cache is full. */
static void test_prompt_cache_eviction(void) {
    qwen_model_params mp;
    qwen_model_params_init(&mp);
    mp.n_cached_sessions = 1;
    mp.n_threads = 2;
    qwen_model *small = NULL;
    CHECK_STATUS(qwen_model_load(model_path(), &mp, &small), QWEN_OK);
    if (!small) return;
    qwen_gen_params g = greedy(4);
    qwen_result r;
    qwen_message a = {QWEN_ROLE_USER, "First conversation, about apples."};
    qwen_message b = {QWEN_ROLE_USER, "Second conversation, about boats."};
    char reply_a[512];
    qwen_session *s = NULL, *t = NULL;
    CHECK_STATUS(qwen_session_acquire(small, NULL, 0, NULL, &s), QWEN_OK);
    CHECK_STATUS(qwen_chat(s, &a, 1, &g, NULL, NULL, &r), QWEN_OK);
    snprintf(reply_a, sizeof reply_a, "%s", r.text);
    int apples_prompt = r.n_prompt_tokens;
    qwen_session_release(s);                       /* cached: apples */
    CHECK_STATUS(qwen_session_create(small, NULL, &t), QWEN_OK);
    CHECK_STATUS(qwen_chat(t, &b, 1, &g, NULL, NULL, &r), QWEN_OK);
    qwen_session_release(t);                       /* any session may be released: boats, evicting apples */
    qwen_message conversation[2] = {a, {QWEN_ROLE_ASSISTANT, reply_a}};
    CHECK_STATUS(qwen_session_acquire(small, conversation, 2, NULL, &s), QWEN_OK);
    qwen_message more = {QWEN_ROLE_USER, "More."};
    CHECK_STATUS(qwen_chat(s, &more, 1, &g, NULL, NULL, &r), QWEN_OK);
    /* Only the system prompt, which the boats conversation shares, is copied. */
    CHECK(r.n_cached_tokens < apples_prompt - 4, "the evicted conversation was still cached (%d tokens)", r.n_cached_tokens);
    qwen_session_free(s);
    qwen_model_free(small);
}

/* A prompt prefix copied from another sequence's cache (the engine does this where the
 * kernels compute each prompt row on its own) gives the very reply computing it would. */
static void test_copied_prefix_is_exact(void) {
    const char *system = "You are a careful assistant for a hardware store. Answer in one short sentence, "
                         "mention the aisle number when you can, and never invent prices or products.";
    qwen_gen_params g = greedy(24);
    qwen_result r;
    qwen_session_params p;
    qwen_session_params_init(&p);
    p.system_prompt = system;
    qwen_message first = {QWEN_ROLE_USER, "Where are the hammers?"};
    qwen_message second = {QWEN_ROLE_USER, "Do you sell garden hoses?"};

    /* Reference: a model with no cache at all, the second question alone. */
    qwen_model_params mp;
    qwen_model_params_init(&mp);
    mp.n_cached_sessions = -1;
    mp.n_threads = 2;
    qwen_model *plain = NULL;
    CHECK_STATUS(qwen_model_load(model_path(), &mp, &plain), QWEN_OK);
    if (!plain) return;
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(plain, &p, &s), QWEN_OK);
    CHECK_STATUS(qwen_chat(s, &second, 1, &g, NULL, NULL, &r), QWEN_OK);
    char alone[2048];
    snprintf(alone, sizeof alone, "%s", r.text);
    CHECK(r.n_cached_tokens == 0, "%d tokens reused without a cache", r.n_cached_tokens);
    qwen_session_free(s);
    qwen_model_free(plain);

    /* The same question in a fresh session after another conversation with that system
     * prompt went to the prompt cache: the system prompt's positions may be copied. */
    CHECK_STATUS(qwen_session_create(model, &p, &s), QWEN_OK);
    CHECK_STATUS(qwen_chat(s, &first, 1, &g, NULL, NULL, &r), QWEN_OK);
    qwen_session_release(s);
    CHECK_STATUS(qwen_session_create(model, &p, &s), QWEN_OK);
    CHECK_STATUS(qwen_chat(s, &second, 1, &g, NULL, NULL, &r), QWEN_OK);
    printf("copied prefix: %d of %d prompt tokens not computed\n", r.n_cached_tokens, r.n_prompt_tokens);
    CHECK(strcmp(r.text, alone) == 0, "with a copied prefix '%s', alone '%s'", r.text, alone);
    qwen_session_free(s);
}

/* ------------------------------------------------------------- cancel */

typedef struct { qwen_session *session; int index; qwen_status status; int generated; } cancel_job;

static bool cancel_after_five(const char *piece, size_t len, void *ud) {
    (void)piece; (void)len;
    cancel_job *job = ud;
    if (++job->generated == 5) qwen_session_cancel(job->session);
    return true;
}

static void *cancel_run(void *p) {
    cancel_job *job = p;
    qwen_message m = {QWEN_ROLE_USER, long_prompts[job->index]};
    qwen_gen_params g = greedy(64);
    job->status = qwen_chat(job->session, &m, 1, &g, job->index == 0 ? cancel_after_five : NULL, job, NULL);
    return NULL;
}

static void test_cancel_while_batched(void) {
    cancel_job jobs[3];
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) {
        jobs[i] = (cancel_job){.index = i};
        CHECK_STATUS(qwen_session_create(model, NULL, &jobs[i].session), QWEN_OK);
        pthread_create(&threads[i], NULL, cancel_run, &jobs[i]);
    }
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    CHECK(jobs[0].status == QWEN_ERR_CANCELLED, "the cancelled one returned %d", jobs[0].status);
    CHECK(jobs[0].generated <= 5 + 4, "%d pieces reached the callback after cancelling at 5", jobs[0].generated);
    CHECK(jobs[1].status == QWEN_OK && jobs[2].status == QWEN_OK, "the others: %d, %d", jobs[1].status, jobs[2].status);
    CHECK(qwen_session_n_messages(jobs[0].session) == 0, "a cancelled call leaves no history");
    for (int i = 0; i < 3; i++) qwen_session_free(jobs[i].session);
}

/* ---------------------------------------------------------------- log */

typedef struct { int loaded, engine, debug; } log_seen;

static void on_log(qwen_log_level level, const char *msg, void *ud) {
    log_seen *seen = ud;
    if (strstr(msg, "loaded ") && strstr(msg, "kernels")) seen->loaded++;
    if (strstr(msg, "engine: started")) seen->engine++;
    if (level == QWEN_LOG_DEBUG) seen->debug++;
}

static void test_log_callback(void) {
    log_seen seen = {0};
    qwen_log_set(on_log, &seen, QWEN_LOG_INFO);
    qwen_model *logged = NULL;
    CHECK_STATUS(qwen_model_load(model_path(), NULL, &logged), QWEN_OK);
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(logged, NULL, &s), QWEN_OK);
    qwen_message m = {QWEN_ROLE_USER, "Hi"};
    qwen_gen_params g = greedy(2);
    CHECK_STATUS(qwen_chat(s, &m, 1, &g, NULL, NULL, NULL), QWEN_OK);
    qwen_session_free(s);
    qwen_model_free(logged);
    qwen_log_set(NULL, NULL, QWEN_LOG_WARN);
    CHECK(seen.loaded == 1, "the load was logged %d times", seen.loaded);
    CHECK(seen.engine == 1, "the engine's start was logged %d times", seen.engine);
    CHECK(seen.debug == 0, "debug messages below the minimum level: %d", seen.debug);
}

int main(void) {
    qwen_model_params mp;
    qwen_model_params_init(&mp);
    mp.n_threads = 2;
    CHECK_STATUS(qwen_model_load(model_path(), &mp, &model), QWEN_OK);
    if (!model) return finish("test_engine");
    test_log_callback();
    test_idle_sessions_hold_no_threads();
    test_prompt_cache();
    test_prompt_cache_eviction();
    test_copied_prefix_is_exact();
    test_cancel_while_batched();
    test_batched_throughput(4, 2.5);
    test_batched_throughput(8, 3.0);
    qwen_model_free(model);
    return finish("test_engine");
}
