/* chat — an interactive streaming chat in plain C on top of libqwen.
 *
 *   chat -m MODEL [-s SYSTEM] [-t THREADS]
 *
 * Multi-turn (the session keeps the history and reuses its KV cache), /reset
 * forgets the conversation, /exit quits, Ctrl-C stops the current reply (not the
 * program). Build: cc -Iinclude chat.c -Lbuild-dir -lqwen -lpthread */
#define _POSIX_C_SOURCE 200809L
#include <qwen.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static qwen_session *active_session = NULL;

/* Ctrl-C: ask the running reply to stop; qwen_session_cancel is safe from any thread
 * and only sets a flag, so calling it from the handler is fine. */
static void on_sigint(int sig) {
    (void)sig;
    if (active_session) qwen_session_cancel(active_session);
}

static bool print_piece(const char *piece, size_t len, void *user_data) {
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s -m MODEL [-s SYSTEM] [-t THREADS]\n", argv0);
    exit(2);
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *system = NULL;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) model_path = argv[++i];
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) system = argv[++i];
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else usage(argv[0]);
    }
    if (!model_path) usage(argv[0]);

    qwen_model_params mp;
    qwen_model_params_init(&mp);
    mp.n_threads = threads;
    qwen_model *model = NULL;
    if (qwen_model_load(model_path, &mp, &model) != QWEN_OK) {
        fprintf(stderr, "chat: cannot load %s: %s\n", model_path, qwen_last_error());
        return 1;
    }
    qwen_session_params sp;
    qwen_session_params_init(&sp);
    sp.system_prompt = system;
    qwen_session *session = NULL;
    if (qwen_session_create(model, &sp, &session) != QWEN_OK) {
        fprintf(stderr, "chat: %s\n", qwen_last_error());
        qwen_model_free(model);
        return 1;
    }
    qwen_model_free(model);  /* the session keeps the model alive */

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigaction(SIGINT, &sa, NULL);
    active_session = session;

    bool interactive = isatty(STDIN_FILENO);
    if (interactive) fprintf(stderr, "/reset forgets the conversation, /exit quits, Ctrl-C stops a reply.\n");
    char *line = NULL;
    size_t cap = 0;
    for (;;) {
        if (interactive) { printf("\n> "); fflush(stdout); }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        if (!strcmp(line, "/exit")) break;
        if (!strcmp(line, "/reset")) {
            qwen_session_reset(session);
            fprintf(stderr, "(conversation forgotten)\n");
            continue;
        }
        qwen_message msg = {QWEN_ROLE_USER, line};
        qwen_result result;
        qwen_status st = qwen_chat(session, &msg, 1, NULL, print_piece, NULL, &result);
        if (st == QWEN_ERR_CANCELLED) printf("\n(reply cancelled)\n");
        else if (st != QWEN_OK) fprintf(stderr, "\nchat: %s\n", qwen_last_error());
        else {
            printf("\n");
            if (interactive)
                fprintf(stderr, "[%d prompt tokens, %d from cache, %d generated, %.1f tok/s]\n",
                        result.n_prompt_tokens, result.n_cached_tokens, result.n_generated_tokens,
                        result.decode_ms > 0 ? result.n_generated_tokens * 1000.0 / result.decode_ms : 0.0);
        }
    }
    free(line);
    active_session = NULL;
    qwen_session_free(session);
    return 0;
}
