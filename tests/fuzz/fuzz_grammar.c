/* Grammars and JSON schemas as callers write them: the input (first byte: 0 = GBNF text,
 * else a JSON schema; the rest, the text) to qwen_grammar_check, which parses it, lowers
 * it to bytes, checks for left recursion and builds the automaton's start state; with the
 * size-query contract twice. Every refusal must carry a message; nothing may trap, hang or
 * leak however the text nests, repeats or recurses. */
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    qwen_log_set(fuzz_quiet_log, NULL, QWEN_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size > 65536) return 0;
    char *text = malloc(size);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = 0;
    int schema = data[0] != 0;
    size_t n = 0;
    qwen_status status = qwen_grammar_check(schema ? NULL : text, schema ? text : NULL, NULL, 0, &n);
    if (status == QWEN_ERR_BUFFER_TOO_SMALL) {
        char *out = malloc(n + 1);
        size_t m = 0;
        if (!out || qwen_grammar_check(schema ? NULL : text, schema ? text : NULL, out, n + 1, &m) != QWEN_OK || m != n
            || out[n] != 0)
            abort();
        free(out);
    } else if (status != QWEN_OK && !*qwen_last_error()) {
        abort();
    }
    free(text);
    return 0;
}
