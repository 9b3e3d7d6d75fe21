/* The C ABI against the real model: version, info, tokenize/detokenize with the
 * size-query contract, KV cache types, and bad inputs of every kind (never a crash). */
#define _POSIX_C_SOURCE 200809L
#include <qwen.h>
#include "check.h"

#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); exit(2); }
    fwrite(data, 1, n, f);
    fclose(f);
}

static bool count_progress(float fraction, void *ud) {
    int *calls = ud;
    (*calls)++;
    return fraction >= 0.0f && fraction <= 1.0f;
}

static bool refuse_progress(float fraction, void *ud) { (void)fraction; (void)ud; return false; }

static int log_messages = 0;
static void count_log(qwen_log_level level, const char *msg, void *ud) { (void)level; (void)msg; (void)ud; log_messages++; }

static void test_library(void) {
    CHECK(qwen_abi_version() == QWEN_ABI_VERSION, "abi %d", qwen_abi_version());
    CHECK(strlen(qwen_version_string()) > 0, "empty version");
    CHECK(strcmp(qwen_status_string(QWEN_OK), "ok") == 0, "%s", qwen_status_string(QWEN_OK));
    CHECK(strlen(qwen_status_string(-12345)) > 0, "unknown status has text");
    CHECK(qwen_last_error() != NULL, "last error never NULL");
    qwen_log_set(count_log, NULL, QWEN_LOG_DEBUG);
    qwen_log_set(NULL, NULL, QWEN_LOG_WARN);
    qwen_model_free(NULL);
    qwen_session_free(NULL);
}

static void test_bad_files(void) {
    qwen_model *m = (qwen_model *)0x1;
    CHECK_STATUS(qwen_model_load("/nonexistent/model.gguf", NULL, &m), QWEN_ERR_IO);
    CHECK(m == NULL, "out cleared on failure");
    CHECK(strstr(qwen_last_error(), "/nonexistent/model.gguf") != NULL, "error names the path: %s", qwen_last_error());
    CHECK_STATUS(qwen_model_load(NULL, NULL, &m), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_model_load("x.gguf", NULL, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_model_load("\xff\xfe.gguf", NULL, &m), QWEN_ERR_INVALID_ARGUMENT);

    char path[] = "/tmp/qwen-test-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    close(fd);
    /* garbage */
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 2654435761u >> 13);
    write_file(path, junk, sizeof junk);
    CHECK_STATUS(qwen_model_load(path, NULL, &m), QWEN_ERR_BAD_MODEL);
    /* GGUF magic, absurd tensor count */
    unsigned char hdr[24] = {'G', 'G', 'U', 'F', 3, 0, 0, 0};
    memset(hdr + 8, 0xff, 8);
    write_file(path, hdr, sizeof hdr);
    CHECK_STATUS(qwen_model_load(path, NULL, &m), QWEN_ERR_BAD_MODEL);
    CHECK(strstr(qwen_last_error(), "count") != NULL, "names the count: %s", qwen_last_error());
    /* GGUF version 1 */
    unsigned char v1[24] = {'G', 'G', 'U', 'F', 1, 0, 0, 0};
    write_file(path, v1, sizeof v1);
    CHECK_STATUS(qwen_model_load(path, NULL, &m), QWEN_ERR_UNSUPPORTED_MODEL);
    /* empty */
    write_file(path, "", 0);
    CHECK_STATUS(qwen_model_load(path, NULL, &m), QWEN_ERR_BAD_MODEL);
    unlink(path);
}

static void test_model(const char *path) {
    qwen_model_params params;
    qwen_model_params_init(&params);
    CHECK(params.struct_size == sizeof params && params.use_mmap, "params init");
    params.progress = refuse_progress;
    qwen_model *m = NULL;
    CHECK_STATUS(qwen_model_load(path, &params, &m), QWEN_ERR_CANCELLED);

    /* A caller built against an older, shorter qwen_model_params: only struct_size bytes
       are read, the rest are defaults (here garbage that would be called as a callback). */
    qwen_model_params short_params;
    memset(&short_params, 0xA5, sizeof short_params);
    short_params.struct_size = 8;   /* struct_size + n_threads */
    short_params.n_threads = 1;
    qwen_model *short_model = NULL;
    CHECK_STATUS(qwen_model_load(path, &short_params, &short_model), QWEN_OK);
    qwen_model_free(short_model);

    params.progress = NULL;
    params.n_threads = 1000000;   /* each would be an OS thread */
    CHECK_STATUS(qwen_model_load(path, &params, &m), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "n_threads") != NULL, "names n_threads: %s", qwen_last_error());
    params.n_threads = 0;

    int calls = 0;
    params.progress = count_progress;
    params.progress_user_data = &calls;
    CHECK_STATUS(qwen_model_load(path, &params, &m), QWEN_OK);
    CHECK(calls >= 2, "progress called %d times", calls);
    if (!m) return;

    qwen_model_info info = {.struct_size = sizeof info};
    CHECK_STATUS(qwen_model_get_info(m, &info), QWEN_OK);
    CHECK(strcmp(info.arch, "qwen2") == 0, "arch %s", info.arch);
    CHECK(info.n_vocab == 151936, "n_vocab %d", info.n_vocab);
    CHECK(info.n_layer == 24 && info.n_embd == 896 && info.n_head == 14 && info.n_head_kv == 2,
          "shape %d %d %d %d", info.n_layer, info.n_embd, info.n_head, info.n_head_kv);
    CHECK(info.n_ctx_train == 32768, "n_ctx_train %d", info.n_ctx_train);
    CHECK(strcmp(info.weight_type, "Q4_K_M") == 0, "weight type %s", info.weight_type);
    CHECK(info.file_bytes == 491400064ull, "file bytes %llu", (unsigned long long)info.file_bytes);
    CHECK(info.n_params > 400000000 && info.n_params < 700000000, "n_params %lld", (long long)info.n_params);
    CHECK_STATUS(qwen_model_get_info(NULL, &info), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_model_get_info(m, NULL), QWEN_ERR_INVALID_ARGUMENT);

    /* size-query contract */
    const char *text = "Hello, world! 你好，世界";
    size_t need = 0;
    CHECK_STATUS(qwen_tokenize(m, text, strlen(text), false, NULL, 0, &need), QWEN_ERR_BUFFER_TOO_SMALL);
    CHECK(need > 4, "needed %zu", need);
    int32_t ids[64];
    size_t n = 0;
    CHECK_STATUS(qwen_tokenize(m, text, strlen(text), false, ids, need, &n), QWEN_OK);
    CHECK(n == need, "n %zu need %zu", n, need);
    CHECK(ids[0] == 9707 && ids[1] == 11 && ids[2] == 1879 && ids[3] == 0, "ids %d %d %d %d", ids[0], ids[1], ids[2], ids[3]);

    size_t bytes = 0;
    CHECK_STATUS(qwen_detokenize(m, ids, n, false, NULL, 0, &bytes), QWEN_ERR_BUFFER_TOO_SMALL);
    CHECK(bytes == strlen(text), "bytes %zu", bytes);
    char buf[128];
    CHECK_STATUS(qwen_detokenize(m, ids, n, false, buf, sizeof buf, &bytes), QWEN_OK);
    CHECK(bytes == strlen(text) && memcmp(buf, text, bytes) == 0 && buf[bytes] == 0, "round trip: %s", buf);

    /* size_t arguments past SSIZE_MAX (negative inside the library) are rejected, not trapped on */
    CHECK_STATUS(qwen_tokenize(m, text, (size_t)-1, false, ids, 64, &n), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "text_len") != NULL, "names text_len: %s", qwen_last_error());
    CHECK_STATUS(qwen_tokenize(m, text, strlen(text), false, ids, (size_t)-1, &n), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_detokenize(m, ids, (size_t)-1, false, buf, sizeof buf, &bytes), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_detokenize(m, ids, 1, false, buf, (size_t)-2, &bytes), QWEN_ERR_INVALID_ARGUMENT);

    /* specials: text by default, tokens when asked */
    const char *chat = "<|im_start|>user";
    CHECK_STATUS(qwen_tokenize(m, chat, strlen(chat), true, ids, 64, &n), QWEN_OK);
    CHECK(n == 2 && ids[0] == 151644 && ids[1] == 872, "special parsed: n=%zu %d", n, ids[0]);
    CHECK_STATUS(qwen_tokenize(m, chat, strlen(chat), false, ids, 64, &n), QWEN_OK);
    CHECK(n > 2 && ids[0] != 151644, "special as text: n=%zu %d", n, ids[0]);
    int32_t with_special[] = {151644, 872, 151645};
    CHECK_STATUS(qwen_detokenize(m, with_special, 3, true, buf, sizeof buf, &bytes), QWEN_OK);
    CHECK(bytes == 4 && memcmp(buf, "user", 4) == 0, "skip special: %.*s", (int)bytes, buf);

    /* bad inputs */
    CHECK_STATUS(qwen_tokenize(m, "\xc3\x28", 2, false, ids, 64, &n), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "UTF-8") != NULL, "names UTF-8: %s", qwen_last_error());
    CHECK_STATUS(qwen_tokenize(NULL, "a", 1, false, ids, 64, &n), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_tokenize(m, NULL, 5, false, ids, 64, &n), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_tokenize(m, "a", 1, false, NULL, 64, &n), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_tokenize(m, "a", 1, false, ids, 64, NULL), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_tokenize(m, "", 0, false, ids, 64, &n), QWEN_OK);
    CHECK(n == 0, "empty text gives no tokens");
    int32_t bad_ids[] = {9707, 999999};
    CHECK_STATUS(qwen_detokenize(m, bad_ids, 2, false, buf, sizeof buf, &bytes), QWEN_ERR_INVALID_ARGUMENT);
    CHECK(strstr(qwen_last_error(), "999999") != NULL, "names the id: %s", qwen_last_error());
    int32_t negative[] = {-1};
    CHECK_STATUS(qwen_detokenize(m, negative, 1, false, buf, sizeof buf, &bytes), QWEN_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(qwen_detokenize(m, NULL, 3, false, buf, sizeof buf, &bytes), QWEN_ERR_INVALID_ARGUMENT);

    /* KV cache types: q8 generates and takes 34/64 of f16's bytes per token (24 layers,
       2 KV heads of 64); an unknown kv_type is INVALID_ARGUMENT; a caller built before
       kv_type existed (a shorter struct_size) gets f16 */
    qwen_session_params sp;
    qwen_session_params_init(&sp);
    CHECK(sp.kv_type == QWEN_KV_F16, "kv_type default %d", sp.kv_type);
    sp.kv_type = QWEN_KV_Q8;
    qwen_session *s = NULL;
    CHECK_STATUS(qwen_session_create(m, &sp, &s), QWEN_OK);
    qwen_gen_params gp;
    qwen_gen_params_init(&gp);
    gp.max_tokens = 4;
    gp.temperature = 0;
    qwen_result result;
    CHECK_STATUS(qwen_generate(s, "def fibonacci(n):", &gp, NULL, NULL, &result), QWEN_OK);
    CHECK(result.n_generated_tokens == 4, "q8 generated %d", (int)result.n_generated_tokens);
    size_t per_token = 0, allocated = 0;
    CHECK_STATUS(qwen_session_get_kv_bytes(s, &per_token, &allocated), QWEN_OK);
    CHECK(per_token == 24 * 2 * 136 && allocated >= 8 * per_token, "q8 kv bytes %zu, %zu", per_token, allocated);
    CHECK_STATUS(qwen_session_get_kv_bytes(NULL, &per_token, NULL), QWEN_ERR_INVALID_ARGUMENT);
    qwen_session_free(s);
    sp.struct_size = (uint32_t)offsetof(qwen_session_params, kv_type);
    CHECK_STATUS(qwen_session_create(m, &sp, &s), QWEN_OK);
    CHECK_STATUS(qwen_session_get_kv_bytes(s, &per_token, NULL), QWEN_OK);
    CHECK(per_token == 24 * 2 * 256, "old struct_size: f16 kv bytes %zu", per_token);
    qwen_session_free(s);
    sp.struct_size = sizeof sp;
    int32_t bad_types[] = {2, -1, 100};
    for (int i = 0; i < 3; i++) {
        sp.kv_type = bad_types[i];
        s = (qwen_session *)&sp;
        CHECK_STATUS(qwen_session_create(m, &sp, &s), QWEN_ERR_INVALID_ARGUMENT);
        CHECK(s == NULL && strstr(qwen_last_error(), "kv_type") != NULL, "names kv_type: %s", qwen_last_error());
    }

    qwen_model_free(m);
}

int main(void) {
    test_library();
    test_bad_files();
    test_model(model_path());
    return finish("test_api");
}
