/*
 * qwen.h — QwenEmbed: Qwen chat models inside your own process.
 *
 * One library (libqwen.so), one header, no Python, no GPU, no server. Loads Qwen
 * (v1) Hugging Face checkpoints (bf16/fp16 safetensors, GPTQ Int4/Int8 as AutoGPTQ
 * writes them) and GGUF files (qwen2, qwen) directly.
 *
 * THREAD-SAFETY CONTRACT
 *   - A qwen_model is immutable after qwen_model_load; any number of threads may
 *     use it at once (info, tokenize, detokenize, creating and acquiring sessions).
 *   - A qwen_session is one conversation: use it from one thread at a time. A
 *     second call that overlaps a running one returns QWEN_ERR_BUSY (never a crash).
 *     qwen_session_cancel is the exception: it may be called from any thread.
 *   - Different sessions on one model run at the same time, and together: the model
 *     owns one pool of compute threads (qwen_model_params.n_threads) and decodes the
 *     next token of every session generating at that moment in one batched step, so
 *     N conversations served from N threads cost far less than N times one. A reply
 *     is the same whether its session ran alone or with others.
 *   - qwen_last_error() is per thread; qwen_log_set may be called from any thread.
 *
 * ERRORS
 *   Every fallible call returns a qwen_status (QWEN_OK = 0, errors negative) and,
 *   on failure, leaves a message for the calling thread in qwen_last_error().
 *   Nothing in this library traps, exits or prints to stdout on bad input.
 *
 * OWNERSHIP
 *   Objects come back through out-parameters and are released with their *_free
 *   function; every *_free accepts NULL. Strings returned by the library (errors,
 *   info fields, messages, result text) are owned by the library; their lifetime
 *   is stated per function. Strings passed in are copied when kept.
 *
 * USAGE
 *
 *   #include <qwen.h>
 *   #include <stdio.h>
 *
 *   static bool on_piece(const char *piece, size_t len, void *ud) {
 *       fwrite(piece, 1, len, stdout); fflush(stdout); return true;
 *   }
 *
 *   int main(void) {
 *       qwen_model *model = NULL;
 *       if (qwen_model_load("qwen2.5-coder-0.5b-instruct.gguf", NULL, &model) != QWEN_OK) {
 *           fprintf(stderr, "load: %s\n", qwen_last_error()); return 1;
 *       }
 *       qwen_session *session = NULL;
 *       qwen_session_create(model, NULL, &session);          // default system prompt
 *       qwen_message msg = { QWEN_ROLE_USER, "Write hello world in C." };
 *       qwen_result result;
 *       if (qwen_chat(session, &msg, 1, NULL, on_piece, NULL, &result) != QWEN_OK)
 *           fprintf(stderr, "chat: %s\n", qwen_last_error());
 *       qwen_session_free(session);
 *       qwen_model_free(model);
 *       return 0;
 *   }
 *
 * Parameter structs begin with `struct_size`, are filled by their *_params_init
 * function and passed by pointer (NULL = defaults). Fields are only ever appended,
 * so a program built against an older header keeps working.
 */
#ifndef QWEN_H
#define QWEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bumped whenever a change breaks binary compatibility. */
#define QWEN_ABI_VERSION 1

/* ------------------------------------------------------------------ status */

typedef int32_t qwen_status;
#define QWEN_OK                      0
#define QWEN_ERR_INVALID_ARGUMENT    (-1)  /* NULL pointer, bad id, invalid UTF-8, bad value */
#define QWEN_ERR_IO                  (-2)  /* file missing, unreadable, mmap failed */
#define QWEN_ERR_BAD_MODEL           (-3)  /* file is corrupt or inconsistent */
#define QWEN_ERR_UNSUPPORTED_MODEL   (-4)  /* valid file, but an architecture/type we do not run */
#define QWEN_ERR_OUT_OF_MEMORY       (-5)
#define QWEN_ERR_CONTEXT_FULL        (-6)  /* prompt does not fit the context window */
#define QWEN_ERR_BUFFER_TOO_SMALL    (-7)  /* the size needed is reported through the size out-param */
#define QWEN_ERR_CANCELLED           (-8)  /* qwen_session_cancel or a progress callback stopped it */
#define QWEN_ERR_BUSY                (-9)  /* the session is running another call */
#define QWEN_ERR_INTERNAL            (-10) /* a bug in QwenEmbed: please report qwen_last_error() */
#define QWEN_ERR_NOT_IMPLEMENTED     (-11) /* this build does not provide the call yet */
#define QWEN_ERR_WRONG_STATE         (-12) /* not allowed now: a pull-form reply is in progress
                                              (qwen_chat_begin .. qwen_chat_end), or none is */

/** Static, never-NULL text for a status code. */
const char *qwen_status_string(qwen_status status);

/** Detail of the last failure on the calling thread ("" if none). Valid until the
 *  next failing call on this thread. Never NULL. */
const char *qwen_last_error(void);

/** QWEN_ABI_VERSION of the loaded library. */
int32_t qwen_abi_version(void);

/** Library version, e.g. "0.1.0". Static. */
const char *qwen_version_string(void);

/* ----------------------------------------------------------------- logging */

typedef enum {
    QWEN_LOG_DEBUG = 0,
    QWEN_LOG_INFO = 1,
    QWEN_LOG_WARN = 2,
    QWEN_LOG_ERROR = 3
} qwen_log_level;

/** `msg` is valid only during the call. May be called from any library thread. */
typedef void (*qwen_log_fn)(qwen_log_level level, const char *msg, void *user_data);

/** Route log messages at or above `min` to `fn`. fn = NULL restores the default:
 *  warnings and errors to stderr. Safe to call from any thread. */
void qwen_log_set(qwen_log_fn fn, void *user_data, qwen_log_level min);

/* ------------------------------------------------------------------- model */

typedef struct qwen_model qwen_model;

/** Load progress: fraction in [0, 1]. Return false to abort the load
 *  (qwen_model_load then returns QWEN_ERR_CANCELLED). */
typedef bool (*qwen_progress_fn)(float fraction, void *user_data);

typedef struct {
    uint32_t struct_size;        /* sizeof(qwen_model_params), set by init */
    int32_t n_threads;           /* threads of the model's one compute pool, which every
                                    session of the model runs on; 0 = all cores. Started at
                                    the first generation, idle (asleep) when nothing runs */
    bool use_mmap;               /* map weights instead of reading them; default true */
    qwen_progress_fn progress;   /* optional, NULL = none */
    void *progress_user_data;
    int32_t n_cached_sessions;   /* idle sessions the prompt cache keeps (qwen_session_release),
                                    least recently used freed first; 0 = 16, negative = none */
} qwen_model_params;

/** Fill `params` with the defaults. */
void qwen_model_params_init(qwen_model_params *params);

/** Load a model. `path` is a Hugging Face checkpoint directory (config.json,
 *  *.safetensors with optional model.safetensors.index.json, qwen.tiktoken) or a
 *  .gguf file. `params` may be NULL (defaults). On success *out owns the model;
 *  on failure *out is set to NULL. */
qwen_status qwen_model_load(const char *path, const qwen_model_params *params, qwen_model **out);

/** Release the caller's reference. Sessions keep the model alive, so the order of
 *  qwen_model_free and qwen_session_free does not matter. NULL is a no-op. */
void qwen_model_free(qwen_model *model);

typedef struct {
    uint32_t struct_size;     /* set by the caller: sizeof(qwen_model_info) */
    const char *arch;         /* "qwen" or "qwen2"; owned by the model */
    int32_t n_vocab;          /* rows of the embedding / output head */
    int32_t n_ctx_train;      /* context length the model was trained for */
    int32_t n_layer;
    int32_t n_embd;
    int32_t n_head;
    int32_t n_head_kv;
    int64_t n_params;         /* parameters counted from tensor shapes */
    const char *weight_type;  /* e.g. "bf16", "gptq-int4", "Q4_K_M"; owned by the model */
    uint64_t file_bytes;      /* bytes of the model file(s) */
    const char *name;         /* general.name or the directory name; owned by the model */
} qwen_model_info;

/** Fill `info` (whose struct_size the caller sets; 0 is read as the full size of
 *  this header's struct). Strings stay valid while the model lives. */
qwen_status qwen_model_get_info(const qwen_model *model, qwen_model_info *info);

/* ------------------------------------------------------------------ tokens */

/** Tokenize UTF-8 `text` (`text_len` bytes; need not be NUL-terminated) exactly as
 *  Qwen's tiktoken tokenizer does (NFC first). With parse_special = false, special
 *  token strings such as "<|im_start|>" are plain text (injection-safe).
 *  Size-query contract: if `capacity` is too small (tokens may be NULL when
 *  capacity is 0), returns QWEN_ERR_BUFFER_TOO_SMALL with *n_tokens = the count
 *  needed. Invalid UTF-8 -> QWEN_ERR_INVALID_ARGUMENT. Thread-safe. */
qwen_status qwen_tokenize(const qwen_model *model, const char *text, size_t text_len,
                          bool parse_special, int32_t *tokens, size_t capacity,
                          size_t *n_tokens);

/** Turn ids back into UTF-8 bytes (written without a terminating NUL; a NUL is
 *  added when room remains). skip_special drops special/control tokens. A byte
 *  sequence that is not valid UTF-8 on its own (e.g. half a character) is written
 *  as is. Same size-query contract as qwen_tokenize, counting bytes. An id outside
 *  [0, n_vocab) -> QWEN_ERR_INVALID_ARGUMENT. Thread-safe. */
qwen_status qwen_detokenize(const qwen_model *model, const int32_t *tokens, size_t n_tokens,
                            bool skip_special, char *buf, size_t capacity, size_t *n_bytes);

/* ----------------------------------------------------------------- session */

typedef struct qwen_session qwen_session;

typedef enum {
    QWEN_ROLE_SYSTEM = 0,
    QWEN_ROLE_USER = 1,
    QWEN_ROLE_ASSISTANT = 2,
    QWEN_ROLE_TOOL = 3          /* a tool's result, answering the assistant's last tool call */
} qwen_role;

typedef struct {
    qwen_role role;
    const char *content;      /* UTF-8, NUL-terminated; copied by the library */
} qwen_message;

/** How a session's KV cache stores keys and values (qwen_session_params.kv_type). */
typedef enum {
    QWEN_KV_F16 = 0,   /* f16: 4 bytes per token per layer per KV channel (keys + values);
                          Qwen2.5-0.5B: 12 KiB per token */
    QWEN_KV_Q8 = 1     /* ggml's Q8_0 (llama.cpp's -ctk q8_0 -ctv q8_0): per 32 values an f16
                          scale and 32 int8, 53% of f16's memory (Qwen2.5-0.5B: 6.4 KiB per
                          token); decode as fast; key channels with a large bias are
                          stored scaled down (queries scaled up: the same scores), so
                          Qwen2.5-Coder-0.5B's perplexity moves +0.05% (BENCHMARKS.md).
                          Needs a head size that is a multiple of 32 */
} qwen_kv_type;

typedef struct {
    uint32_t struct_size;
    int32_t n_ctx;             /* context window in tokens; 0 = the trained length capped at
                                  8192 (dynamic-NTK Qwen v1 checkpoints: 8192). The KV cache
                                  grows with the conversation up to it */
    int32_t n_threads;         /* ignored: sessions compute on the model's pool
                                  (qwen_model_params.n_threads); must not be negative */
    uint64_t seed;             /* sampler seed; 0 = from the clock */
    const char *system_prompt; /* NULL = the model's own default: its chat template's
                                  (Qwen2.5: "You are Qwen, created by Alibaba Cloud. You are
                                  a helpful assistant."; Qwen3: none), for Qwen v1
                                  "You are a helpful assistant."; copied */
    int32_t max_window_size;   /* Qwen v1 (make_context): token budget for system + history
                                  (Qwen's max_window_size); 0 = the checkpoint's
                                  generation_config.json, else 6144. Chat templates render
                                  the whole history (cut only to fit n_ctx) */
    const struct qwen_tool *tools;  /* tools offered from the start (as qwen_session_set_tools);
                                       NULL = none; copied */
    size_t n_tools;
    int32_t kv_type;           /* a qwen_kv_type; default QWEN_KV_F16; another value is
                                  INVALID_ARGUMENT. Prompt prefixes (qwen_session_acquire,
                                  sessions in flight) are only shared between sessions of one
                                  kv_type */
} qwen_session_params;

void qwen_session_params_init(qwen_session_params *params);

/** Create a session (history, KV cache, sampler) on `model`; the session holds a
 *  reference to the model. A session holds no threads; its KV cache (f16, or q8 by
 *  kv_type) grows as the conversation does, up to n_ctx positions.
 *  Errors: INVALID_ARGUMENT (NULL, negative fields, invalid UTF-8 system prompt, an
 *  n_ctx above the model's limit: 32768 for Qwen v1 checkpoints with dynamic NTK, an
 *  unknown kv_type, QWEN_KV_Q8 on a model whose head size is not a multiple of 32),
 *  OUT_OF_MEMORY. A GPTQ checkpoint's layers are repacked the first time a call runs
 *  them; what that finds wrong in the file (a g_idx out of range, a NaN scale) is that
 *  call's BAD_MODEL. */
qwen_status qwen_session_create(qwen_model *model, const qwen_session_params *params,
                                qwen_session **out);
/** NULL is a no-op. Must not overlap a running call on the same session (a pull-form
 *  reply left open is cancelled). */
void qwen_session_free(qwen_session *session);

/* ------------------------------------------------------------- prompt cache
 * The model keeps idle sessions for the prompts their KV caches hold, so a host that
 * re-sends a whole conversation every turn (an OpenAI-style server) only pays for what
 * is new. Per request:
 *
 *     qwen_session *s;
 *     qwen_session_acquire(model, history, n_history, &params, &s);  // holds `history`
 *     qwen_chat(s, &new_message, 1, &gen, on_piece, NULL, &result);
 *     qwen_session_release(s);                                       // back to the cache
 */

/** A session holding `conversation` (the chat so far, oldest first: user, assistant and
 *  tool messages; a QWEN_ROLE_SYSTEM message sets the system prompt; n = 0 for a new
 *  chat), with params' system prompt, tools, seed, n_ctx and max_window_size, ready for
 *  the next message through qwen_chat: the idle session of the prompt cache whose KV
 *  cache shares the longest prefix with the prompt this conversation renders to (when
 *  that covers over half of it), else a fresh one. Release it with qwen_session_release
 *  (or free it). Errors as qwen_session_create, plus INVALID_ARGUMENT for a bad message. */
qwen_status qwen_session_acquire(qwen_model *model, const qwen_message *conversation, size_t n_messages,
                                 const qwen_session_params *params, qwen_session **out);
/** A tool call of an assistant message (function calling): NULL name = none. */
typedef struct {
    const char *name;
    const char *arguments;     /* JSON text, as the model wrote it; NULL = "" */
} qwen_tool_call;
/** qwen_session_acquire for a conversation whose assistant turns called tools:
 *  tool_calls[i] is message i's call (as qwen_session_add_message takes it); tool_calls
 *  may be NULL (no calls). */
qwen_status qwen_session_acquire_with_calls(qwen_model *model, const qwen_message *conversation,
                                            const qwen_tool_call *tool_calls, size_t n_messages,
                                            const qwen_session_params *params, qwen_session **out);
/** As qwen_session_acquire, for a raw continuation (qwen_generate) of `prompt`: the
 *  session whose cache shares the longest prefix with its tokens; its history empty. */
qwen_status qwen_session_acquire_prompt(qwen_model *model, const char *prompt,
                                        const qwen_session_params *params, qwen_session **out);
/** Hand `session` back to its model's prompt cache (kept as the most recently used; the
 *  least recently used beyond qwen_model_params.n_cached_sessions is freed). The caller
 *  must not use `session` afterwards. A session with a call in progress is freed instead.
 *  NULL is a no-op. */
void qwen_session_release(qwen_session *session);
/** Forget the history; keeps the system prompt. The KV cache is kept for prefix
 *  reuse (it only ever serves an identical token prefix), so re-sending a whole
 *  conversation after a reset does not redo its prefill. */
qwen_status qwen_session_reset(qwen_session *session);
/** Replace the system prompt (NULL = the model's own default). Copied. */
qwen_status qwen_session_set_system_prompt(qwen_session *session, const char *system_prompt);
/** The system prompt; NULL when the session uses the model's own default. *system_prompt
 *  stays valid until the session's next mutating call. */
qwen_status qwen_session_get_system_prompt(const qwen_session *session, const char **system_prompt);
/** The session's KV cache memory: bytes one token takes (keys and values of every layer,
 *  in its kv_type) and bytes allocated now (the cache grows with the conversation).
 *  Either out-pointer may be NULL. Errors: INVALID_ARGUMENT (NULL session). */
qwen_status qwen_session_get_kv_bytes(const qwen_session *session, size_t *bytes_per_token,
                                      size_t *bytes_allocated);
/** Number of messages in the history (system prompt not counted); 0 for NULL. */
size_t qwen_session_n_messages(const qwen_session *session);
/** Message i of the history. *content stays valid until the session's next
 *  mutating call (chat, generate, reset, free). */
qwen_status qwen_session_get_message(const qwen_session *session, size_t i, qwen_role *role,
                                     const char **content);
/* ---------------------------------------------------------- function calling
 * Qwen2 / Qwen2.5 / Qwen3 (GGUF and Hugging Face files with a chat template): the
 * template describes the tools (its <tools> block) and renders calls and results in
 * history; the reply's <tool_call>{"name": ..., "arguments": ...}</tool_call> blocks
 * (several per turn; a reply that is one bare JSON call object also counts) join the
 * history as the assistant turn's tool calls (qwen_session_n_tool_calls,
 * qwen_session_get_tool_call_at), the text around them as its content, a Qwen3 thought
 * (<think>...</think>) as its reasoning (qwen_session_get_reasoning). Streamed pieces
 * and qwen_result.text are the raw reply; qwen_chat_next_part hands the reply out split.
 *
 * Qwen (v1) checkpoints: Qwen's function calling, exactly as its own OpenAI-compatible server does it
 * (QwenLM/Qwen openai_api.py): the tools are described in a ReAct instruction put in
 * front of the last user question; an assistant turn that called a tool is rendered as
 * "Thought: ...\nAction: NAME\nAction Input: ARGS", a tool result as
 * "\nObservation: RESULT"; "Observation:" ends a reply; the reply is parsed back into
 * content plus a tool call, or the final answer. Flow:
 *
 *     qwen_tool tools[] = {{"get_weather", "Current weather of a city.",
 *                           "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}"}};
 *     qwen_session_set_tools(s, tools, 1);
 *     qwen_message q = {QWEN_ROLE_USER, "What is the weather in Paris?"};
 *     qwen_chat(s, &q, 1, NULL, NULL, NULL, NULL);
 *     size_t last = qwen_session_n_messages(s) - 1;   // the reply
 *     const char *name, *args;
 *     qwen_session_get_tool_call(s, last, &name, &args);
 *     if (name) {                                      // run the tool, hand back its result
 *         qwen_message r = {QWEN_ROLE_TOOL, "{\"temperature\": 21}"};
 *         qwen_chat(s, &r, 1, NULL, NULL, NULL, NULL); // the answer, in the history
 *     }
 *
 * With tools set, streamed pieces and qwen_result.text are the model's raw ReAct text;
 * the history holds the parsed reply (qwen_session_get_message: the thought before a
 * call, or the final answer). A conversation ending with a QWEN_ROLE_TOOL message
 * continues the assistant's turn, as Qwen's server does. Contents are tokenized with
 * special tokens as plain text (the ids equal Qwen's whenever a content holds no
 * special-token text; Qwen's server would parse them in that case). */

typedef struct qwen_tool {
    const char *name;          /* the name the model calls it by; required */
    const char *description;   /* what the tool is useful for; NULL = none (Qwen v1: "") */
    const char *parameters;    /* JSON text of its parameters' schema; NULL = none (Qwen v1:
                                  {}). Key order kept; re-written as Python's
                                  json.dumps(ensure_ascii=False) writes it */
} qwen_tool;

/** Offer `tools` (copied) on the session's following chat calls; n_tools = 0 offers
 *  none. Kept across qwen_session_reset, like the system prompt. Errors:
 *  INVALID_ARGUMENT (empty name, parameters that are not JSON, invalid UTF-8). */
qwen_status qwen_session_set_tools(qwen_session *session, const qwen_tool *tools, size_t n_tools);
/** Number of tools the session offers (set with qwen_session_set_tools, or saved with a
 *  session it was loaded from); 0 for NULL. */
size_t qwen_session_n_tools(const qwen_session *session);
/** Tool i of those the session offers: parameters as the session holds them (rewritten as
 *  json.dumps writes them); description / parameters NULL where the tool was set without.
 *  The strings stay valid until the session's next mutating call. Errors: INVALID_ARGUMENT
 *  (NULL session or tool, i out of range). */
qwen_status qwen_session_get_tool(const qwen_session *session, size_t i, qwen_tool *tool);
/** Append one message to the history without generating: restoring a conversation, or
 *  an assistant turn that called a tool (tool_name and tool_arguments, copied; both NULL
 *  for a plain message). content NULL = "". System messages: set the system prompt. */
qwen_status qwen_session_add_message(qwen_session *session, qwen_role role, const char *content,
                                     const char *tool_name, const char *tool_arguments);
/** The (first) tool call of history message i: *name and *arguments, or *name = NULL when
 *  it called none. Valid as long as qwen_session_get_message's content. `arguments` may be NULL. */
qwen_status qwen_session_get_tool_call(const qwen_session *session, size_t i, const char **name,
                                       const char **arguments);
/** Number of tool calls of history message i (0 for NULL or an index out of range). */
size_t qwen_session_n_tool_calls(const qwen_session *session, size_t i);
/** Tool call k of history message i (arguments: JSON text, as Python's json.dumps writes
 *  an object). Valid as long as qwen_session_get_message's content; `arguments` may be NULL. */
qwen_status qwen_session_get_tool_call_at(const qwen_session *session, size_t i, size_t k,
                                          const char **name, const char **arguments);
/** Append a tool call to the last history message, which must be an assistant turn
 *  (parallel calls: qwen_session_add_message with the first, then this for each next).
 *  arguments NULL = "". Copied. */
qwen_status qwen_session_add_tool_call(qwen_session *session, const char *name, const char *arguments);
/** The thought of history message i (a thinking model's <think> part), or *reasoning =
 *  NULL when it has none. Valid as long as qwen_session_get_message's content. */
qwen_status qwen_session_get_reasoning(const qwen_session *session, size_t i, const char **reasoning);

/** A whole message of a conversation handed to qwen_session_acquire_messages. */
typedef struct {
    qwen_role role;
    const char *content;               /* NULL = "" */
    const char *reasoning;             /* an assistant turn's thought; NULL = none */
    const qwen_tool_call *tool_calls;  /* an assistant turn's calls, in order; NULL = none */
    size_t n_tool_calls;
} qwen_chat_message;
/** qwen_session_acquire for a conversation of whole messages (several tool calls per
 *  assistant turn, thoughts): what an OpenAI-style server receives. */
qwen_status qwen_session_acquire_messages(qwen_model *model, const qwen_chat_message *conversation,
                                          size_t n_messages, const qwen_session_params *params,
                                          qwen_session **out);

/* ---------------------------------------------------------- saved sessions
 * A conversation saved to a file and continued later, in any process, exactly where it
 * was: the next reply of a loaded session is the one the original would have given
 * (greedy, and sampled when gen.seed is 0: the sampler's state is saved too), and its
 * first call reuses the saved KV cache instead of recomputing the conversation.
 *
 *     qwen_session_save(s, "chat.qsession");
 *     ...                                              // later, another process
 *     qwen_session_load(model, "chat.qsession", NULL, &s);
 *
 * The file holds the history, system prompt, tools, n_ctx, max_window_size, the sampler
 * state and the KV cache's rows in use, behind a format version, the model's fingerprint
 * (a hash of its configuration, tensor names, types and shapes and a sample of every
 * tensor's bytes) and a checksum over the whole file. */

/** Save `session` to `path` (replacing a file there; a new file is readable by its owner
 *  only, 0600). The file is written beside `path` and renamed over it once complete, so a
 *  failed save leaves an existing file as it was.
 *  Errors: INVALID_ARGUMENT (NULL, invalid UTF-8 path), IO (the directory cannot be
 *  written, the disk is full, `path` is a directory), WRONG_STATE (a pull-form reply is
 *  in progress: end it first), BUSY. */
qwen_status qwen_session_save(qwen_session *session, const char *path);

/** A new session on `model` continuing the one saved in `path` (qwen_session_save).
 *  `params` may be NULL: everything comes from the file. Otherwise n_ctx (0 = the
 *  file's) and max_window_size (0 = the file's) apply; its system_prompt, tools, seed and
 *  kv_type are ignored in favour of the file's system prompt, tools, sampler state and KV
 *  cache type. The whole
 *  file is checked before the session is created; on error *out is left untouched.
 *  Errors: INVALID_ARGUMENT (NULL model, path or out; the file belongs to another model),
 *  IO (missing, a directory, unreadable), BAD_MODEL (not a session file, truncated or
 *  corrupt: the message names what and its byte offset), UNSUPPORTED_MODEL (written by a
 *  newer QwenEmbed: "format N, this reads up to M"), CONTEXT_FULL (n_ctx cannot hold the
 *  saved KV cache), OUT_OF_MEMORY. */
qwen_status qwen_session_load(qwen_model *model, const char *path, const qwen_session_params *params,
                              qwen_session **out);

/** Ask the running call on `session` to stop; any thread. The call returns
 *  QWEN_ERR_CANCELLED within one step of the model's engine (one token, or one prompt
 *  chunk of up to 128 tokens), history unchanged and
 *  the keys/values it computed dropped: the next call runs exactly as if the
 *  cancelled one had never been made. */
void qwen_session_cancel(qwen_session *session);

/* -------------------------------------------------------------- generation */

typedef struct {
    uint32_t struct_size;
    int32_t max_tokens;         /* most new tokens; default 512 */
    float temperature;          /* default 1.0; 0 = greedy */
    int32_t top_k;              /* default 0 = off */
    float top_p;                /* default 0.8; 1.0 = off */
    float repetition_penalty;   /* default 1.1; 1.0 = off; over prompt + output ids */
    uint64_t seed;              /* 0 = use the session's sampler state */
    const char *const *stop;    /* extra stop strings, not included in the reply */
    size_t n_stop;
    int32_t enable_thinking;    /* the chat template's enable_thinking (Qwen3's thinking
                                   mode): -1 = the template's default (default), 0 = off,
                                   1 = on; no effect on templates that do not read it */
    const char *grammar;        /* GBNF text (llama.cpp's grammar format) the reply must
                                   match; NULL = none (default). Tokens the grammar refuses
                                   are masked before sampling; the end of the turn is
                                   allowed only where the grammar may end. A thinking
                                   model (qwen_chat) may reason first: its <think> block
                                   comes before the constrained answer, unless
                                   enable_thinking is 0. A bad grammar is INVALID_ARGUMENT
                                   naming the line and column */
    const char *json_schema;    /* JSON Schema text the reply must be an instance of (OpenAI
                                   structured outputs' subset: objects, arrays, enum, const,
                                   anyOf, $ref/$defs, string/number/integer/boolean/null,
                                   string patterns; compiled to a grammar); NULL = none
                                   (default). Not with `grammar`. Unsupported keywords
                                   (not, lookaround in a pattern, ...) are
                                   INVALID_ARGUMENT naming the schema path */
    int32_t logprobs;           /* -1 = off (default); 0..QWEN_MAX_TOP_LOGPROBS = record each
                                   generated token's log probability and this many most
                                   likely alternatives (qwen_session_get_logprob) */
    const char *tool_choice;    /* chat with tools: NULL or "auto" = the model decides
                                   (default); "none" = the tools are not offered for this
                                   reply; "required" = the reply is a call of one of the
                                   tools; any other text = the name of the tool the reply
                                   must call. Forced calls are held to a grammar of the
                                   model's own call format, arguments to the tool's schema */
} qwen_gen_params;

void qwen_gen_params_init(qwen_gen_params *params);

/** Receives pieces of the reply: whole UTF-8 characters, never (part of) a stop
 *  string or a special token. `piece` is valid only during the call. Return true
 *  to continue, false to stop (finish reason QWEN_FINISH_CALLBACK). */
typedef bool (*qwen_stream_fn)(const char *piece, size_t len, void *user_data);

typedef enum {
    QWEN_FINISH_STOP = 0,       /* end-of-turn token or a stop string */
    QWEN_FINISH_LENGTH = 1,     /* max_tokens or the context window */
    QWEN_FINISH_CANCELLED = 2,
    QWEN_FINISH_CALLBACK = 3
} qwen_finish_reason;

typedef struct {
    qwen_finish_reason finish_reason;
    int32_t n_prompt_tokens;
    int32_t n_generated_tokens;
    int32_t n_cached_tokens;    /* prompt tokens reused from the KV cache */
    double prefill_ms;
    double decode_ms;
    const char *text;           /* whole reply; owned by the session, valid until its next call */
} qwen_result;

/* -------------------------------------------------------------- grammars */

/** Check a grammar or a JSON schema as qwen_gen_params would take it (exactly one of
 *  `grammar` (GBNF text) and `json_schema` non-NULL), without a model: compiled, its start
 *  state built. On success writes the GBNF text replies would be held to (a schema's
 *  grammar as the engine compiles it; a grammar as given) with the size-query contract
 *  of qwen_tokenize, counting bytes (`out` may be NULL with `capacity` 0 to ask the size;
 *  NUL-terminated when it fits). Errors: INVALID_ARGUMENT naming the line and column (a
 *  grammar) or the schema path, BUFFER_TOO_SMALL. Thread-safe. */
qwen_status qwen_grammar_check(const char *grammar, const char *json_schema, char *out, size_t capacity,
                               size_t *n_out);

/* ------------------------------------------------------- log probabilities */

#define QWEN_MAX_TOP_LOGPROBS 20

/** A generated token's log probability (natural log) and the most likely tokens at its
 *  step, over the logits after the repetition penalty and the grammar's mask (tokens the
 *  grammar refuses have none), before temperature, top-k and top-p: the distribution
 *  the model and the constraints give, whatever the sampling settings. */
typedef struct {
    int32_t token;              /* the generated token's id (qwen_detokenize gives its bytes) */
    float logprob;
    int32_t n_top;              /* entries of top_* filled: the alternatives asked for */
    int32_t top_tokens[QWEN_MAX_TOP_LOGPROBS];   /* most likely first */
    float top_logprobs[QWEN_MAX_TOP_LOGPROBS];
} qwen_token_logprob;

/** Tokens of the current reply (a pull-form reply in progress: so far) or else of the
 *  session's last reply whose log probabilities were recorded (qwen_gen_params.logprobs
 *  >= 0); 0 when none. -1 when `session` is NULL. */
int32_t qwen_session_n_logprobs(qwen_session *session);

/** Entry `index` (0 .. qwen_session_n_logprobs - 1) of those tokens, in reply order.
 *  Errors: INVALID_ARGUMENT (NULL, index out of range). */
qwen_status qwen_session_get_logprob(qwen_session *session, int32_t index, qwen_token_logprob *out);

/** Append `messages` to the history, render the prompt (the model's chat template; Qwen
 *  v1: make_context), generate the assistant reply (streamed through `cb`, may be
 *  NULL) and append it to the history. The last
 *  message must be the user's (or a tool result, see function calling); a
 *  QWEN_ROLE_SYSTEM message replaces the system prompt.
 *  `cb` runs on the calling thread and must not call into this session.
 *  On any error the history is as before the call. Errors: INVALID_ARGUMENT,
 *  CONTEXT_FULL (the query cannot fit n_ctx), CANCELLED (qwen_session_cancel),
 *  BUSY (another call is running on the session). `out` may be NULL. */
qwen_status qwen_chat(qwen_session *session, const qwen_message *messages, size_t n_messages,
                      const qwen_gen_params *params, qwen_stream_fn cb, void *user_data,
                      qwen_result *out);

/** Raw continuation of `prompt`, no chat template (for base models). The history
 *  is neither used nor changed. Same callback, result and error contract as qwen_chat. */
qwen_status qwen_generate(qwen_session *session, const char *prompt,
                          const qwen_gen_params *params, qwen_stream_fn cb, void *user_data,
                          qwen_result *out);

/** The prompt token ids qwen_chat would send for `messages` appended to the history,
 *  without running the model: the model's chat template as transformers'
 *  apply_chat_template renders it (add_generation_prompt true), or for Qwen v1 ChatML
 *  exactly as Qwen's make_context renders it; oldest turns dropped to fit. Same
 *  size-query contract as qwen_tokenize. */
qwen_status qwen_session_render_prompt(qwen_session *session, const qwen_message *messages,
                                       size_t n_messages, int32_t *tokens, size_t capacity,
                                       size_t *n_tokens);

/** Pull form: begin, then next until *done, then end. *piece is valid until the
 *  next call on the session. qwen_chat_end is required after a successful begin,
 *  also to stop early (the partial reply then joins the history, finish reason
 *  CALLBACK). A cancelled reply shows as *done = true and qwen_chat_end returns
 *  QWEN_ERR_CANCELLED (history unchanged). If qwen_chat_next fails, the reply is
 *  already dropped and qwen_chat_end is not needed. */
qwen_status qwen_chat_begin(qwen_session *session, const qwen_message *messages,
                            size_t n_messages, const qwen_gen_params *params);
qwen_status qwen_chat_next(qwen_session *session, const char **piece, size_t *len, bool *done);

typedef enum {
    QWEN_PART_CONTENT = 0,      /* text for the user */
    QWEN_PART_REASONING = 1,    /* the model's thought (inside <think>...</think>) */
    QWEN_PART_TOOL_CALL = 2     /* a complete tool call */
} qwen_part_kind;

typedef struct {
    qwen_part_kind kind;
    const char *text;           /* CONTENT / REASONING: whole UTF-8 characters; NULL for a call */
    size_t len;
    const char *tool_name;      /* TOOL_CALL: the tool; NULL otherwise */
    const char *tool_arguments; /* TOOL_CALL: its arguments, JSON text; NULL otherwise */
} qwen_part;

/** Pull form, split: instead of qwen_chat_next (not both for one reply), the next part of
 *  the reply: text as it streams (only what may begin a tag held back), the thought, and
 *  each tool call when its block closes (Qwen2/2.5/3); for Qwen v1 the raw text as
 *  CONTENT. The part's strings are valid until the next call on the session. */
qwen_status qwen_chat_next_part(qwen_session *session, qwen_part *part, bool *done);
qwen_status qwen_chat_end(qwen_session *session, qwen_result *out);

#ifdef __cplusplus
}
#endif

#endif /* QWEN_H */
