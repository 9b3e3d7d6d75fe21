/* A tiny test harness for the C tests: CHECK records a failure and goes on;
 * finish() prints "N passed, N failed" and returns the exit status. */
#ifndef QWEN_TEST_CHECK_H
#define QWEN_TEST_CHECK_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks_passed = 0, checks_failed = 0;

#define CHECK(cond, ...) do { \
    if (cond) { checks_passed++; } \
    else { checks_failed++; fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_STATUS(expr, expected) do { \
    qwen_status st_ = (expr); \
    CHECK(st_ == (expected), "%s returned %d (%s), expected %d; last error: %s", #expr, st_, \
          qwen_status_string(st_), (expected), qwen_last_error()); \
} while (0)

static int finish(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

static const char *model_path(void) {
    const char *p = getenv("QWEN_MODEL");
    if (!p || !*p) { fprintf(stderr, "QWEN_MODEL is not set (make test sets it from scripts/fetch-model.sh)\n"); exit(2); }
    return p;
}
#endif
