/* Shared by the libFuzzer targets (make fuzz): they call libqwen.so's C API, built with
 * AddressSanitizer and coverage instrumentation (.build-fuzz), on inputs written to
 * files where the API reads files. Environment (set by make fuzz):
 *   QWEN_FUZZ_TIKTOKEN    a qwen.tiktoken for fuzz_checkpoint's directories (its first 512 ranks)
 *   QWEN_FUZZ_CHECKPOINT  a valid tiny Qwen v1 checkpoint with the whole vocabulary
 *                         (gen-qwen-checkpoints.py fuzz-base); fuzz_session_file loads
 *                         its sessions into it
 *   QWEN_FUZZ_TEMPLATE_GGUF  a small qwen2 GGUF with an 8192-byte chat template slot
 *                         (fuzz-seeds.py)
 * A failing API call is fine (that is the point); a crash, a sanitizer report, a leak
 * of an error message or a hang is a finding. */
#define _GNU_SOURCE
#include <qwen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fuzz_quiet_log(qwen_log_level level, const char *msg, void *user_data) {
    (void)level; (void)msg; (void)user_data;
}

static const char *fuzz_env(const char *name) {
    const char *value = getenv(name);
    if (!value || !*value) {
        fprintf(stderr, "fuzz: %s is not set (run through make fuzz)\n", name);
        abort();
    }
    return value;
}

static void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (size && fwrite(data, 1, size, f) != size) { perror(path); abort(); }
    fclose(f);
}

/* A fresh directory for this process: /tmp/qwen-fuzz-<tag>-<pid>. */
static void fuzz_directory(char *out, size_t capacity, const char *tag) {
    snprintf(out, capacity, "/tmp/qwen-fuzz-%s-%d", tag, (int)getpid());
    char command[512];
    snprintf(command, sizeof command, "rm -rf '%s' && mkdir -p '%s'", out, out);
    if (system(command) != 0) abort();
}

/* Loads `path`; an error must come with a message. Returns the model or NULL. */
static qwen_model *fuzz_load(const char *path) {
    qwen_model *model = NULL;
    qwen_status status = qwen_model_load(path, NULL, &model);
    if (status != QWEN_OK) {
        const char *message = qwen_last_error();
        if (!message || !*message) { fprintf(stderr, "fuzz: status %d without a message\n", status); abort(); }
        if (model) { fprintf(stderr, "fuzz: failed load returned a model\n"); abort(); }
        return NULL;
    }
    return model;
}
