/* The tokenizer on arbitrary bytes, with special tokens parsed or not (first input
 * byte): invalid UTF-8 is refused; otherwise tokenize -> detokenize -> tokenize gives the
 * same ids (the detokenized text is the input in NFC, which tokenizes alike). */
#include "fuzz_common.h"

static qwen_model *model;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    model = fuzz_load(fuzz_env("QWEN_FUZZ_CHECKPOINT"));
    if (!model) { fprintf(stderr, "fuzz: %s\n", qwen_last_error()); abort(); }
    return 0;
}

static bool special;

static int32_t *tokenize(const char *text, size_t len, size_t *n) {
    qwen_status s = qwen_tokenize(model, text, len, special, NULL, 0, n);
    if (s != QWEN_OK && s != QWEN_ERR_BUFFER_TOO_SMALL) return NULL;
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    if (qwen_tokenize(model, text, len, special, ids, *n, n) != QWEN_OK) abort();
    return ids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    special = data[0] & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1, n = 0;
    int32_t *ids = tokenize(text, len, &n);
    if (!ids) return 0;                               /* invalid UTF-8: refused, fine */
    size_t bytes = 0;
    qwen_status s = qwen_detokenize(model, ids, n, false, NULL, 0, &bytes);
    if (s != QWEN_OK && s != QWEN_ERR_BUFFER_TOO_SMALL) abort();
    char *back = malloc(bytes + 1);
    if (qwen_detokenize(model, ids, n, false, back, bytes + 1, &bytes) != QWEN_OK) abort();
    size_t n2 = 0;
    int32_t *again = tokenize(back, bytes, &n2);
    if (!again) { fprintf(stderr, "fuzz: detokenized text does not tokenize\n"); abort(); }
    if (n2 != n || memcmp(again, ids, n * sizeof *ids) != 0) {
        fprintf(stderr, "fuzz: tokenize(detokenize(ids)) != ids (%zu vs %zu tokens)\n", n2, n);
        abort();
    }
    free(ids); free(back); free(again);
    return 0;
}
