"""Low-level ctypes mirror of ``include/qwen.h``.

Every struct and function of the C API is declared here, with the C declaration as
a comment above each binding. Nothing here is Pythonic: pointers, status codes and
byte strings, exactly as the header has them. The Pythonic layer lives in
``qwen_embed.model``.

The shared library is found (in this order) through

1. the environment variable ``QWEN_LIBRARY`` (a path to ``libqwen.so``),
2. ``libqwen.so`` next to this package's ``__init__.py`` (the wheel ships it there),
3. ``.build/release/libqwen.so`` in a parent folder of the package (a source
   checkout of QwenEmbed, after ``make build``),
4. ``lib/libqwen.so`` under the ``make install`` prefixes: ``$QWEN_PREFIX``, then
   ``/usr/local`` and ``/usr``,
5. the system's search path (``ldconfig``'s cache, as ``ctypes.util.find_library``),

and loaded on first use (importing ``qwen_embed`` never fails because of it). At load
its ``qwen_abi_version()`` must equal ``QWEN_ABI_VERSION`` below, else
``LibraryError`` is raised: calling a library with other struct layouts would
corrupt memory instead of failing.

The library is never unloaded (a Swift library must not be ``dlclose``d).
"""
from __future__ import annotations

import ctypes
import os
import pathlib
import sys
import threading
from ctypes import (POINTER, Structure, c_bool, c_char, c_char_p, c_double, c_float,
                    c_int, c_int32, c_int64, c_size_t, c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, List, Optional

__all__ = [  # the C names, plus the loader
    "QWEN_ABI_VERSION", "LibraryError", "load_library", "library_path", "find_library",
]

# #define QWEN_ABI_VERSION 1
QWEN_ABI_VERSION = 1

_LIB_NAME = "libqwen.so" if sys.platform.startswith("linux") else (
    "libqwen.dylib" if sys.platform == "darwin" else "qwen.dll")


class LibraryError(OSError):
    """libqwen could not be found, loaded, or has an incompatible ABI version."""


def _callback_type(name: str, restype: Any, *argtypes: Any) -> Any:
    """CFUNCTYPE(restype, *argtypes) whose arguments also accept None (a NULL function
    pointer), as the header allows for every callback; plain CFUNCTYPE rejects None."""

    class CallbackType(ctypes._CFuncPtr):  # type: ignore[name-defined,misc]
        _argtypes_ = argtypes
        _restype_ = restype
        _flags_ = ctypes._FUNCFLAG_CDECL  # type: ignore[attr-defined]

        @classmethod
        def from_param(cls, obj: Any) -> Any:
            if obj is None or isinstance(obj, cls):
                return obj
            raise TypeError(f"expected a {name} (wrap the Python function with _lib.{name}) "
                            f"or None, not {type(obj).__name__}")

    CallbackType.__name__ = CallbackType.__qualname__ = name
    return CallbackType


# ------------------------------------------------------------------ status

# typedef int32_t qwen_status;
qwen_status = c_int32
QWEN_OK = 0
QWEN_ERR_INVALID_ARGUMENT = -1
QWEN_ERR_IO = -2
QWEN_ERR_BAD_MODEL = -3
QWEN_ERR_UNSUPPORTED_MODEL = -4
QWEN_ERR_OUT_OF_MEMORY = -5
QWEN_ERR_CONTEXT_FULL = -6
QWEN_ERR_BUFFER_TOO_SMALL = -7
QWEN_ERR_CANCELLED = -8
QWEN_ERR_BUSY = -9
QWEN_ERR_INTERNAL = -10
QWEN_ERR_NOT_IMPLEMENTED = -11
QWEN_ERR_WRONG_STATE = -12

# ----------------------------------------------------------------- logging

# typedef enum { QWEN_LOG_DEBUG = 0, QWEN_LOG_INFO = 1, QWEN_LOG_WARN = 2, QWEN_LOG_ERROR = 3 } qwen_log_level;
qwen_log_level = c_int
QWEN_LOG_DEBUG = 0
QWEN_LOG_INFO = 1
QWEN_LOG_WARN = 2
QWEN_LOG_ERROR = 3

# typedef void (*qwen_log_fn)(qwen_log_level level, const char *msg, void *user_data);
qwen_log_fn = _callback_type("qwen_log_fn", None, qwen_log_level, c_char_p, c_void_p)

# ------------------------------------------------------------------- model


# typedef struct qwen_model qwen_model;
class qwen_model(Structure):
    """Opaque."""


qwen_model_p = POINTER(qwen_model)

# typedef bool (*qwen_progress_fn)(float fraction, void *user_data);
qwen_progress_fn = _callback_type("qwen_progress_fn", c_bool, c_float, c_void_p)


# typedef struct {
#     uint32_t struct_size;        /* sizeof(qwen_model_params), set by init */
#     int32_t n_threads;           /* threads of the model's one compute pool; 0 = all cores */
#     bool use_mmap;               /* map weights instead of reading them; default true */
#     qwen_progress_fn progress;   /* optional, NULL = none */
#     void *progress_user_data;
#     int32_t n_cached_sessions;   /* idle sessions the prompt cache keeps; 0 = 16, < 0 = none */
# } qwen_model_params;
class qwen_model_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_threads", c_int32),
        ("use_mmap", c_bool),
        ("progress", qwen_progress_fn),
        ("progress_user_data", c_void_p),
        ("n_cached_sessions", c_int32),
    ]


# typedef struct {
#     uint32_t struct_size;     /* set by the caller: sizeof(qwen_model_info) */
#     const char *arch;         /* "qwen" or "qwen2"; owned by the model */
#     int32_t n_vocab;
#     int32_t n_ctx_train;
#     int32_t n_layer;
#     int32_t n_embd;
#     int32_t n_head;
#     int32_t n_head_kv;
#     int64_t n_params;
#     const char *weight_type;  /* owned by the model */
#     uint64_t file_bytes;
#     const char *name;         /* owned by the model */
# } qwen_model_info;
class qwen_model_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("arch", c_char_p),
        ("n_vocab", c_int32),
        ("n_ctx_train", c_int32),
        ("n_layer", c_int32),
        ("n_embd", c_int32),
        ("n_head", c_int32),
        ("n_head_kv", c_int32),
        ("n_params", c_int64),
        ("weight_type", c_char_p),
        ("file_bytes", c_uint64),
        ("name", c_char_p),
    ]


# ----------------------------------------------------------------- session


# typedef struct qwen_session qwen_session;
class qwen_session(Structure):
    """Opaque."""


qwen_session_p = POINTER(qwen_session)

# typedef enum { QWEN_ROLE_SYSTEM = 0, QWEN_ROLE_USER = 1, QWEN_ROLE_ASSISTANT = 2,
#                QWEN_ROLE_TOOL = 3 } qwen_role;
qwen_role = c_int
QWEN_ROLE_SYSTEM = 0
QWEN_ROLE_USER = 1
QWEN_ROLE_ASSISTANT = 2
QWEN_ROLE_TOOL = 3


# typedef struct {
#     const char *name;
#     const char *description;   /* NULL = "" */
#     const char *parameters;    /* JSON text; NULL = {} */
# } qwen_tool;
class qwen_tool(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("description", c_char_p),
        ("parameters", c_char_p),
    ]


# typedef struct {
#     qwen_role role;
#     const char *content;      /* UTF-8, NUL-terminated; copied by the library */
# } qwen_message;
class qwen_message(Structure):
    _fields_ = [
        ("role", qwen_role),
        ("content", c_char_p),
    ]


# typedef struct {
#     const char *name;          /* NULL = no call */
#     const char *arguments;     /* NULL = "" */
# } qwen_tool_call;
class qwen_tool_call(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("arguments", c_char_p),
    ]


# typedef struct {
#     qwen_role role;
#     const char *content;               /* NULL = "" */
#     const char *reasoning;             /* an assistant turn's thought; NULL = none */
#     const qwen_tool_call *tool_calls;  /* an assistant turn's calls, in order; NULL = none */
#     size_t n_tool_calls;
# } qwen_chat_message;
class qwen_chat_message(Structure):
    _fields_ = [
        ("role", qwen_role),
        ("content", c_char_p),
        ("reasoning", c_char_p),
        ("tool_calls", POINTER(qwen_tool_call)),
        ("n_tool_calls", c_size_t),
    ]


# typedef enum { QWEN_PART_CONTENT = 0, QWEN_PART_REASONING = 1, QWEN_PART_TOOL_CALL = 2 } qwen_part_kind;
PART_KINDS = {0: "content", 1: "reasoning", 2: "tool_call"}


# typedef struct {
#     qwen_part_kind kind;
#     const char *text;           /* CONTENT / REASONING: whole UTF-8 characters; NULL for a call */
#     size_t len;
#     const char *tool_name;      /* TOOL_CALL: the tool; NULL otherwise */
#     const char *tool_arguments; /* TOOL_CALL: its arguments, JSON text; NULL otherwise */
# } qwen_part;
class qwen_part(Structure):
    _fields_ = [
        ("kind", c_int),
        ("text", POINTER(c_char)),
        ("len", c_size_t),
        ("tool_name", c_char_p),
        ("tool_arguments", c_char_p),
    ]


# typedef struct {
#     uint32_t struct_size;
#     int32_t n_ctx;             /* context window in tokens; 0 = model default, capped */
#     int32_t n_threads;         /* 0 = the model's */
#     uint64_t seed;             /* sampler seed; 0 = from the clock */
#     const char *system_prompt; /* NULL = "You are a helpful assistant."; copied */
#     int32_t max_window_size;   /* token budget for system + history */
#     const struct qwen_tool *tools;  /* NULL = none; copied */
#     size_t n_tools;
#     int32_t kv_type;           /* a qwen_kv_type; default QWEN_KV_F16 */
# } qwen_session_params;
class qwen_session_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("n_ctx", c_int32),
        ("n_threads", c_int32),
        ("seed", c_uint64),
        ("system_prompt", c_char_p),
        ("max_window_size", c_int32),
        ("tools", POINTER(qwen_tool)),
        ("n_tools", c_size_t),
        ("kv_type", c_int32),
    ]


# typedef enum { QWEN_KV_F16 = 0, QWEN_KV_Q8 = 1 } qwen_kv_type;
QWEN_KV_F16 = 0
QWEN_KV_Q8 = 1


# -------------------------------------------------------------- generation


# typedef struct {
#     uint32_t struct_size;
#     int32_t max_tokens;         /* most new tokens; default 512 */
#     float temperature;          /* default 1.0; 0 = greedy */
#     int32_t top_k;              /* default 0 = off */
#     float top_p;                /* default 0.8; 1.0 = off */
#     float repetition_penalty;   /* default 1.1; 1.0 = off */
#     uint64_t seed;              /* 0 = use the session's sampler state */
#     const char *const *stop;    /* extra stop strings, not included in the reply */
#     size_t n_stop;
# } qwen_gen_params;
class qwen_gen_params(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("max_tokens", c_int32),
        ("temperature", c_float),
        ("top_k", c_int32),
        ("top_p", c_float),
        ("repetition_penalty", c_float),
        ("seed", c_uint64),
        ("stop", POINTER(c_char_p)),
        ("n_stop", c_size_t),
        ("enable_thinking", c_int32),   # -1 = the template's default, 0 = off, 1 = on
        ("grammar", c_char_p),          # GBNF text the reply must match; NULL = none
        ("json_schema", c_char_p),      # JSON Schema text the reply must be an instance of; NULL = none
        ("logprobs", c_int32),          # -1 = off; 0..20 alternatives recorded per token
        ("tool_choice", c_char_p),      # NULL/"auto", "none", "required" or a tool's name
    ]


QWEN_MAX_TOP_LOGPROBS = 20


# typedef struct {
#     int32_t token; float logprob; int32_t n_top;
#     int32_t top_tokens[QWEN_MAX_TOP_LOGPROBS]; float top_logprobs[QWEN_MAX_TOP_LOGPROBS];
# } qwen_token_logprob;
class qwen_token_logprob(Structure):
    _fields_ = [
        ("token", c_int32),
        ("logprob", c_float),
        ("n_top", c_int32),
        ("top_tokens", c_int32 * QWEN_MAX_TOP_LOGPROBS),
        ("top_logprobs", c_float * QWEN_MAX_TOP_LOGPROBS),
    ]


# typedef bool (*qwen_stream_fn)(const char *piece, size_t len, void *user_data);
# (piece as POINTER(c_char): it is read with ctypes.string_at(piece, len))
qwen_stream_fn = _callback_type("qwen_stream_fn", c_bool, POINTER(c_char), c_size_t, c_void_p)

# typedef enum { QWEN_FINISH_STOP = 0, QWEN_FINISH_LENGTH = 1, QWEN_FINISH_CANCELLED = 2,
#                QWEN_FINISH_CALLBACK = 3 } qwen_finish_reason;
qwen_finish_reason = c_int
QWEN_FINISH_STOP = 0
QWEN_FINISH_LENGTH = 1
QWEN_FINISH_CANCELLED = 2
QWEN_FINISH_CALLBACK = 3


# typedef struct {
#     qwen_finish_reason finish_reason;
#     int32_t n_prompt_tokens;
#     int32_t n_generated_tokens;
#     int32_t n_cached_tokens;    /* prompt tokens reused from the KV cache */
#     double prefill_ms;
#     double decode_ms;
#     const char *text;           /* whole reply; owned by the session, valid until its next call */
# } qwen_result;
class qwen_result(Structure):
    _fields_ = [
        ("finish_reason", qwen_finish_reason),
        ("n_prompt_tokens", c_int32),
        ("n_generated_tokens", c_int32),
        ("n_cached_tokens", c_int32),
        ("prefill_ms", c_double),
        ("decode_ms", c_double),
        ("text", c_char_p),
    ]


# ------------------------------------------------------------------ loader

_lock = threading.Lock()
_lib: Optional[ctypes.CDLL] = None
_lib_path: Optional[str] = None


def _candidates() -> List[pathlib.Path]:
    here = pathlib.Path(__file__).resolve().parent
    found = [here / _LIB_NAME]
    for parent in here.parents:
        found.append(parent / ".build" / "release" / _LIB_NAME)
    prefixes = [os.environ.get("QWEN_PREFIX", ""), "/usr/local", "/usr"]
    found += [pathlib.Path(prefix) / "lib" / _LIB_NAME for prefix in prefixes if prefix]
    return found


def find_library() -> str:
    """The path of libqwen this package would load (see the module docstring)."""
    env = os.environ.get("QWEN_LIBRARY")
    if env:
        if not os.path.isfile(env):
            raise LibraryError(f"QWEN_LIBRARY is set to {env!r}, which is not a file")
        return env
    candidates = _candidates()
    for path in candidates:
        if path.is_file():
            return str(path)
    import ctypes.util
    system = ctypes.util.find_library("qwen")   # a name the dynamic loader resolves itself
    if system:
        return system
    tried = "\n  ".join(str(p) for p in candidates[:4])
    raise LibraryError(
        f"{_LIB_NAME} not found. Set QWEN_LIBRARY to its path, put it next to the qwen_embed "
        f"package, or run `make build` in the QwenEmbed checkout. Looked in:\n  {tried}")


def _bind(lib: ctypes.CDLL) -> None:
    for name, argtypes, restype in _SIGNATURES:
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise LibraryError(f"{_lib_path}: missing symbol {name}; the library does not match "
                               f"this binding") from None
        fn.argtypes = argtypes
        fn.restype = restype


def load_library(path: Optional[str] = None) -> ctypes.CDLL:
    """Load (once) and return libqwen, after checking its ABI version.

    ``path`` overrides the lookup on the first call; later calls return the library
    already loaded."""
    global _lib, _lib_path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is not None:
            return _lib
        path = path or find_library()
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            raise LibraryError(f"cannot load {path}: {e}") from None
        try:
            abi = lib.qwen_abi_version
        except AttributeError:
            raise LibraryError(f"{path} is not libqwen (no qwen_abi_version)") from None
        abi.argtypes = []
        abi.restype = c_int32
        version = abi()
        if version != QWEN_ABI_VERSION:
            raise LibraryError(
                f"{path} has ABI version {version}, but this qwen_embed package was written for "
                f"ABI version {QWEN_ABI_VERSION}; install matching versions of the library and "
                f"the Python package")
        _lib_path = path
        _bind(lib)
        _lib = lib
        return lib


def init_params(struct_type: Any, init: Callable[..., Any]) -> Any:
    """A ``struct_type`` filled by its ``qwen_*_params_init``.

    The init function runs on a scratch buffer far larger than the struct, so a newer
    library whose struct has grown (fields are only appended) cannot write past our
    memory; we keep the prefix we know and declare our own ``struct_size``."""
    size = ctypes.sizeof(struct_type)
    scratch = ctypes.create_string_buffer(max(4096, 4 * size))
    init(ctypes.cast(scratch, POINTER(struct_type)))
    params = struct_type.from_buffer_copy(scratch.raw[:size])
    params.struct_size = size
    return params


def library_path() -> Optional[str]:
    """The path of the loaded library (None before it is loaded)."""
    return _lib_path


_SIGNATURES: list = []


class _Function:
    """A C function of libqwen, resolved on first call (loading the library)."""

    __slots__ = ("name", "_fn")

    def __init__(self, name: str) -> None:
        self.name = name
        self._fn: Any = None

    def __call__(self, *args: Any) -> Any:
        fn = self._fn
        if fn is None:
            fn = self._fn = getattr(load_library(), self.name)
        return fn(*args)

    def __repr__(self) -> str:
        return f"<libqwen function {self.name}>"


def _fn(name: str, argtypes: list, restype: Any) -> Callable[..., Any]:
    _SIGNATURES.append((name, argtypes, restype))
    return _Function(name)


# ------------------------------------------------------------- functions

# const char *qwen_status_string(qwen_status status);
qwen_status_string = _fn("qwen_status_string", [qwen_status], c_char_p)

# const char *qwen_last_error(void);
qwen_last_error = _fn("qwen_last_error", [], c_char_p)

# int32_t qwen_abi_version(void);
qwen_abi_version = _fn("qwen_abi_version", [], c_int32)

# const char *qwen_version_string(void);
qwen_version_string = _fn("qwen_version_string", [], c_char_p)

# void qwen_log_set(qwen_log_fn fn, void *user_data, qwen_log_level min);
qwen_log_set = _fn("qwen_log_set", [qwen_log_fn, c_void_p, qwen_log_level], None)

# void qwen_model_params_init(qwen_model_params *params);
qwen_model_params_init = _fn("qwen_model_params_init", [POINTER(qwen_model_params)], None)

# qwen_status qwen_model_load(const char *path, const qwen_model_params *params, qwen_model **out);
qwen_model_load = _fn("qwen_model_load",
                      [c_char_p, POINTER(qwen_model_params), POINTER(qwen_model_p)], qwen_status)

# void qwen_model_free(qwen_model *model);
qwen_model_free = _fn("qwen_model_free", [qwen_model_p], None)

# qwen_status qwen_model_get_info(const qwen_model *model, qwen_model_info *info);
qwen_model_get_info = _fn("qwen_model_get_info", [qwen_model_p, POINTER(qwen_model_info)], qwen_status)

# qwen_status qwen_tokenize(const qwen_model *model, const char *text, size_t text_len,
#                           bool parse_special, int32_t *tokens, size_t capacity,
#                           size_t *n_tokens);
qwen_tokenize = _fn("qwen_tokenize",
                    [qwen_model_p, c_char_p, c_size_t, c_bool, POINTER(c_int32), c_size_t,
                     POINTER(c_size_t)], qwen_status)

# qwen_status qwen_detokenize(const qwen_model *model, const int32_t *tokens, size_t n_tokens,
#                             bool skip_special, char *buf, size_t capacity, size_t *n_bytes);
qwen_detokenize = _fn("qwen_detokenize",
                      [qwen_model_p, POINTER(c_int32), c_size_t, c_bool, POINTER(c_char), c_size_t,
                       POINTER(c_size_t)], qwen_status)

# void qwen_session_params_init(qwen_session_params *params);
qwen_session_params_init = _fn("qwen_session_params_init", [POINTER(qwen_session_params)], None)

# qwen_status qwen_session_create(qwen_model *model, const qwen_session_params *params,
#                                 qwen_session **out);
qwen_session_create = _fn("qwen_session_create",
                          [qwen_model_p, POINTER(qwen_session_params), POINTER(qwen_session_p)],
                          qwen_status)

# void qwen_session_free(qwen_session *session);
qwen_session_free = _fn("qwen_session_free", [qwen_session_p], None)

# qwen_status qwen_session_acquire_with_calls(qwen_model *model, const qwen_message *conversation,
#                                             const qwen_tool_call *tool_calls, size_t n_messages,
#                                             const qwen_session_params *params, qwen_session **out);
qwen_session_acquire_with_calls = _fn("qwen_session_acquire_with_calls",
                                      [qwen_model_p, POINTER(qwen_message), POINTER(qwen_tool_call), c_size_t,
                                       POINTER(qwen_session_params), POINTER(qwen_session_p)], qwen_status)

# qwen_status qwen_session_acquire_messages(qwen_model *model, const qwen_chat_message *conversation,
#                                           size_t n_messages, const qwen_session_params *params,
#                                           qwen_session **out);
qwen_session_acquire_messages = _fn("qwen_session_acquire_messages",
                                    [qwen_model_p, POINTER(qwen_chat_message), c_size_t,
                                     POINTER(qwen_session_params), POINTER(qwen_session_p)], qwen_status)

# size_t qwen_session_n_tool_calls(const qwen_session *session, size_t i);
qwen_session_n_tool_calls = _fn("qwen_session_n_tool_calls", [qwen_session_p, c_size_t], c_size_t)

# qwen_status qwen_session_get_tool_call_at(const qwen_session *session, size_t i, size_t k,
#                                           const char **name, const char **arguments);
qwen_session_get_tool_call_at = _fn("qwen_session_get_tool_call_at",
                                    [qwen_session_p, c_size_t, c_size_t, POINTER(c_char_p), POINTER(c_char_p)],
                                    qwen_status)

# qwen_status qwen_session_add_tool_call(qwen_session *session, const char *name, const char *arguments);
qwen_session_add_tool_call = _fn("qwen_session_add_tool_call", [qwen_session_p, c_char_p, c_char_p], qwen_status)

# qwen_status qwen_session_get_reasoning(const qwen_session *session, size_t i, const char **reasoning);
qwen_session_get_reasoning = _fn("qwen_session_get_reasoning", [qwen_session_p, c_size_t, POINTER(c_char_p)],
                                 qwen_status)

# int32_t qwen_session_n_logprobs(qwen_session *session);
qwen_session_n_logprobs = _fn("qwen_session_n_logprobs", [qwen_session_p], c_int32)

# qwen_status qwen_session_get_logprob(qwen_session *session, int32_t index, qwen_token_logprob *out);
qwen_session_get_logprob = _fn("qwen_session_get_logprob", [qwen_session_p, c_int32, POINTER(qwen_token_logprob)],
                               qwen_status)

# qwen_status qwen_chat_next_part(qwen_session *session, qwen_part *part, bool *done);
qwen_chat_next_part = _fn("qwen_chat_next_part", [qwen_session_p, POINTER(qwen_part), POINTER(c_bool)], qwen_status)

# qwen_status qwen_session_acquire_prompt(qwen_model *model, const char *prompt,
#                                         const qwen_session_params *params, qwen_session **out);
qwen_session_acquire_prompt = _fn("qwen_session_acquire_prompt",
                                  [qwen_model_p, c_char_p, POINTER(qwen_session_params), POINTER(qwen_session_p)],
                                  qwen_status)

# void qwen_session_release(qwen_session *session);
qwen_session_release = _fn("qwen_session_release", [qwen_session_p], None)

# qwen_status qwen_session_save(qwen_session *session, const char *path);
qwen_session_save = _fn("qwen_session_save", [qwen_session_p, c_char_p], qwen_status)

# qwen_status qwen_session_load(qwen_model *model, const char *path, const qwen_session_params *params,
#                               qwen_session **out);
qwen_session_load = _fn("qwen_session_load",
                        [qwen_model_p, c_char_p, POINTER(qwen_session_params), POINTER(qwen_session_p)],
                        qwen_status)

# qwen_status qwen_session_get_system_prompt(const qwen_session *session, const char **system_prompt);
qwen_session_get_system_prompt = _fn("qwen_session_get_system_prompt", [qwen_session_p, POINTER(c_char_p)],
                                     qwen_status)

# qwen_status qwen_session_reset(qwen_session *session);
qwen_session_reset = _fn("qwen_session_reset", [qwen_session_p], qwen_status)

# qwen_status qwen_session_set_system_prompt(qwen_session *session, const char *system_prompt);
qwen_session_set_system_prompt = _fn("qwen_session_set_system_prompt", [qwen_session_p, c_char_p],
                                     qwen_status)

# qwen_status qwen_session_get_kv_bytes(const qwen_session *session, size_t *bytes_per_token,
#                                       size_t *bytes_allocated);
qwen_session_get_kv_bytes = _fn("qwen_session_get_kv_bytes", [qwen_session_p, POINTER(c_size_t), POINTER(c_size_t)],
                                qwen_status)

# size_t qwen_session_n_messages(const qwen_session *session);
qwen_session_n_messages = _fn("qwen_session_n_messages", [qwen_session_p], c_size_t)

# qwen_status qwen_session_get_message(const qwen_session *session, size_t i, qwen_role *role,
#                                      const char **content);
qwen_session_get_message = _fn("qwen_session_get_message",
                               [qwen_session_p, c_size_t, POINTER(qwen_role), POINTER(c_char_p)],
                               qwen_status)

# qwen_status qwen_session_set_tools(qwen_session *session, const qwen_tool *tools, size_t n_tools);
qwen_session_set_tools = _fn("qwen_session_set_tools", [qwen_session_p, POINTER(qwen_tool), c_size_t],
                             qwen_status)

# size_t qwen_session_n_tools(const qwen_session *session);
qwen_session_n_tools = _fn("qwen_session_n_tools", [qwen_session_p], c_size_t)

# qwen_status qwen_session_get_tool(const qwen_session *session, size_t i, qwen_tool *tool);
qwen_session_get_tool = _fn("qwen_session_get_tool", [qwen_session_p, c_size_t, POINTER(qwen_tool)], qwen_status)

# qwen_status qwen_session_add_message(qwen_session *session, qwen_role role, const char *content,
#                                      const char *tool_name, const char *tool_arguments);
qwen_session_add_message = _fn("qwen_session_add_message",
                               [qwen_session_p, qwen_role, c_char_p, c_char_p, c_char_p], qwen_status)

# qwen_status qwen_session_get_tool_call(const qwen_session *session, size_t i, const char **name,
#                                        const char **arguments);
qwen_session_get_tool_call = _fn("qwen_session_get_tool_call",
                                 [qwen_session_p, c_size_t, POINTER(c_char_p), POINTER(c_char_p)],
                                 qwen_status)

# void qwen_session_cancel(qwen_session *session);
qwen_session_cancel = _fn("qwen_session_cancel", [qwen_session_p], None)

# void qwen_gen_params_init(qwen_gen_params *params);
qwen_gen_params_init = _fn("qwen_gen_params_init", [POINTER(qwen_gen_params)], None)

# qwen_status qwen_chat(qwen_session *session, const qwen_message *messages, size_t n_messages,
#                       const qwen_gen_params *params, qwen_stream_fn cb, void *user_data,
#                       qwen_result *out);
qwen_chat = _fn("qwen_chat",
                [qwen_session_p, POINTER(qwen_message), c_size_t, POINTER(qwen_gen_params),
                 qwen_stream_fn, c_void_p, POINTER(qwen_result)], qwen_status)

# qwen_status qwen_generate(qwen_session *session, const char *prompt,
#                           const qwen_gen_params *params, qwen_stream_fn cb, void *user_data,
#                           qwen_result *out);
qwen_generate = _fn("qwen_generate",
                    [qwen_session_p, c_char_p, POINTER(qwen_gen_params), qwen_stream_fn, c_void_p,
                     POINTER(qwen_result)], qwen_status)

# qwen_status qwen_session_render_prompt(qwen_session *session, const qwen_message *messages,
#                                        size_t n_messages, int32_t *tokens, size_t capacity,
#                                        size_t *n_tokens);
qwen_session_render_prompt = _fn("qwen_session_render_prompt",
                                 [qwen_session_p, POINTER(qwen_message), c_size_t, POINTER(c_int32),
                                  c_size_t, POINTER(c_size_t)], qwen_status)

# qwen_status qwen_chat_begin(qwen_session *session, const qwen_message *messages,
#                             size_t n_messages, const qwen_gen_params *params);
qwen_chat_begin = _fn("qwen_chat_begin",
                      [qwen_session_p, POINTER(qwen_message), c_size_t, POINTER(qwen_gen_params)],
                      qwen_status)

# qwen_status qwen_chat_next(qwen_session *session, const char **piece, size_t *len, bool *done);
qwen_chat_next = _fn("qwen_chat_next",
                     [qwen_session_p, POINTER(POINTER(c_char)), POINTER(c_size_t), POINTER(c_bool)],
                     qwen_status)

# qwen_status qwen_chat_end(qwen_session *session, qwen_result *out);
qwen_chat_end = _fn("qwen_chat_end", [qwen_session_p, POINTER(qwen_result)], qwen_status)
