"""The Pythonic layer: Model and Session over the ctypes mirror in ``_lib``.

Rules this module keeps (lessons from llama-cpp-python's issue tracker):

- A ctypes callback object lives in a local/attribute for the whole C call that may
  invoke it (a collected CFUNCTYPE called from C is a crash).
- No Python exception ever leaves a C callback: it is caught, the C call is asked to
  stop, and the exception is re-raised once the C call has returned.
- Streamed bytes go through an incremental UTF-8 decoder, so a piece that ends in
  the middle of a character can never raise or produce mojibake.
- Each handle is freed exactly once (``weakref.finalize``), never while a call on it
  is running, and not at interpreter shutdown (the process is ending anyway, and the
  library may already be unusable then).
- Every call on a session is serialised by a Python lock; a second overlapping call
  gets ``BusyError`` right away, like the C API's QWEN_ERR_BUSY.
"""
from __future__ import annotations

import codecs
import ctypes
import json
import os
import threading
import weakref
from contextlib import contextmanager
from ctypes import POINTER, byref, c_bool, c_char, c_char_p, c_int32, c_size_t
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple,
                    Union)

from . import _lib
from .errors import (BusyError, InvalidArgumentError, QwenError, check, make_error)

DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."

ROLES = {"system": _lib.QWEN_ROLE_SYSTEM, "user": _lib.QWEN_ROLE_USER,
         "assistant": _lib.QWEN_ROLE_ASSISTANT, "tool": _lib.QWEN_ROLE_TOOL}
ROLE_NAMES = {v: k for k, v in ROLES.items()}
ROLES["function"] = _lib.QWEN_ROLE_TOOL  # the legacy OpenAI name of a tool result
FINISH_REASONS = {_lib.QWEN_FINISH_STOP: "stop", _lib.QWEN_FINISH_LENGTH: "length",
                  _lib.QWEN_FINISH_CANCELLED: "cancelled", _lib.QWEN_FINISH_CALLBACK: "callback"}

GEN_KEYS = ("max_tokens", "temperature", "top_k", "top_p", "repetition_penalty", "seed", "stop", "enable_thinking",
            "grammar", "json_schema", "logprobs", "tool_choice")

Message = Union[Tuple[str, str], Dict[str, str]]


def _closed(what: str) -> QwenError:
    return InvalidArgumentError(_lib.QWEN_ERR_INVALID_ARGUMENT, f"the {what} is closed",
                                "invalid argument")


def _utf8(text: Union[str, bytes], name: str) -> bytes:
    if isinstance(text, bytes):
        return text
    if not isinstance(text, str):
        raise TypeError(f"{name} must be str, not {type(text).__name__}")
    return text.encode("utf-8")


def _c_string(text: Union[str, bytes], name: str) -> bytes:
    """UTF-8 bytes for a NUL-terminated C string argument."""
    data = _utf8(text, name)
    if b"\0" in data:
        raise ValueError(f"{name} contains a NUL character")
    return data


def _decode(data: Optional[bytes]) -> str:
    return data.decode("utf-8", errors="replace") if data else ""


# ---------------------------------------------------------------- params

class _GenParams:
    """qwen_gen_params built from keyword arguments, plus the memory it points at."""

    __slots__ = ("struct", "_keep")

    def __init__(self, max_tokens: Optional[int] = None, temperature: Optional[float] = None,
                 top_k: Optional[int] = None, top_p: Optional[float] = None,
                 repetition_penalty: Optional[float] = None, seed: Optional[int] = None,
                 stop: Union[None, str, Sequence[str]] = None, enable_thinking: Optional[bool] = None,
                 grammar: Optional[str] = None, json_schema: Union[None, str, Dict[str, Any]] = None,
                 logprobs: Optional[int] = None, tool_choice: Union[None, str, Dict[str, Any]] = None) -> None:
        p = _lib.init_params(_lib.qwen_gen_params, _lib.qwen_gen_params_init)
        if max_tokens is not None:
            p.max_tokens = int(max_tokens)
        if temperature is not None:
            p.temperature = float(temperature)
        if top_k is not None:
            p.top_k = int(top_k)
        if top_p is not None:
            p.top_p = float(top_p)
        if repetition_penalty is not None:
            p.repetition_penalty = float(repetition_penalty)
        if seed is not None:
            if not 0 <= int(seed) < 2 ** 64:
                raise ValueError(f"seed must be in [0, 2**64), got {seed}")
            p.seed = int(seed)
        if enable_thinking is not None:
            p.enable_thinking = 1 if enable_thinking else 0
        strings: List[bytes] = []   # kept alive with the struct
        if grammar is not None:
            strings.append(_c_string(grammar, "grammar"))
            p.grammar = strings[-1]
        if json_schema is not None:
            if not isinstance(json_schema, (str, bytes)):
                json_schema = json.dumps(json_schema, ensure_ascii=False)
            strings.append(_c_string(json_schema, "json_schema"))
            p.json_schema = strings[-1]
        if logprobs is not None:
            if isinstance(logprobs, bool) or not 0 <= int(logprobs) <= _lib.QWEN_MAX_TOP_LOGPROBS:
                raise ValueError(f"logprobs is the number of alternatives per token, 0..{_lib.QWEN_MAX_TOP_LOGPROBS}; "
                                 f"got {logprobs!r}")
            p.logprobs = int(logprobs)
        if tool_choice is not None:
            if isinstance(tool_choice, dict):   # OpenAI's {"type": "function", "function": {"name": ...}}
                tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name") or ""
            strings.append(_c_string(tool_choice, "tool_choice"))
            p.tool_choice = strings[-1]
        self._keep: Any = strings
        if stop:
            if isinstance(stop, (str, bytes)):
                stop = [stop]
            encoded = [_c_string(s, "stop string") for s in stop]
            if any(not s for s in encoded):
                raise ValueError("stop strings must not be empty")
            array = (c_char_p * len(encoded))(*encoded)
            self._keep = (strings, encoded, array)
            p.stop = ctypes.cast(array, POINTER(c_char_p))
            p.n_stop = len(encoded)
        self.struct = p

    @classmethod
    def from_kwargs(cls, kwargs: Dict[str, Any]) -> "_GenParams":
        unknown = set(kwargs) - set(GEN_KEYS)
        if unknown:
            raise TypeError(f"unknown generation parameter(s): {', '.join(sorted(unknown))}; "
                            f"expected some of {', '.join(GEN_KEYS)}")
        return cls(**kwargs)


def _role(role: Union[str, int]) -> int:
    if isinstance(role, str):
        try:
            return ROLES[role]
        except KeyError:
            raise ValueError(f"unknown role {role!r}; expected system, user, assistant or tool") from None
    if role not in ROLE_NAMES:
        raise ValueError(f"unknown role {role!r}")
    return int(role)


def _normalize_messages(messages: Union[str, Message, Iterable[Message]]) -> List[Tuple[int, str]]:
    """A user string, a (role, content) pair, a {"role", "content"} dict or a list of those."""
    if isinstance(messages, (str, bytes)):
        return [(_lib.QWEN_ROLE_USER, messages.decode("utf-8") if isinstance(messages, bytes) else messages)]
    if isinstance(messages, dict) or (isinstance(messages, tuple) and len(messages) == 2
                                      and isinstance(messages[1], str)):
        messages = [messages]  # type: ignore[list-item]
    out = []
    for m in messages:  # type: ignore[union-attr]
        if isinstance(m, dict):
            role, content = m["role"], m["content"]
        else:
            role, content = m
        if not isinstance(content, str):
            raise TypeError(f"message content must be str, not {type(content).__name__}")
        out.append((_role(role), content))
    if not out:
        raise ValueError("no messages")
    return out


class _Messages:
    """A qwen_message array and the bytes it points at."""

    __slots__ = ("array", "count", "_keep")

    def __init__(self, messages: Sequence[Tuple[int, str]]) -> None:
        encoded = [(role, _c_string(content, "message content")) for role, content in messages]
        self.count = len(encoded)
        self.array = (_lib.qwen_message * max(1, self.count))()
        for i, (role, content) in enumerate(encoded):
            self.array[i].role = role
            self.array[i].content = content
        self._keep = encoded


class _Conversation:
    """A qwen_chat_message array for a conversation, and the bytes it points at. Items:
    (role, content), (role, content, tool call or None) or dicts with "role", "content"
    and optionally "tool_calls" (a list of {"name", "arguments"}, OpenAI's
    {"function": {...}} form too), "tool_call" (one) and "reasoning" (an assistant's thought)."""

    __slots__ = ("messages", "count", "_keep")

    def __init__(self, items: Iterable[Any]) -> None:
        entries = []
        for item in items:
            reasoning = None
            if isinstance(item, dict):
                role, content = item["role"], item.get("content") or ""
                calls = list(item.get("tool_calls") or ([item["tool_call"]] if item.get("tool_call") else []))
                reasoning = item.get("reasoning", item.get("reasoning_content"))
            else:
                role, content, call = (tuple(item) + (None,))[:3]
                calls = [] if call is None else [call]
            encoded_calls = []
            for call in calls:
                if isinstance(call, dict):
                    call = call.get("function", call)
                    call = (call["name"], call.get("arguments", ""))
                encoded_calls.append((_c_string(call[0], "tool_call name"),
                                      _c_string(_arguments_text(call[1]), "tool_call arguments")))
            call_array = (_lib.qwen_tool_call * max(1, len(encoded_calls)))(*encoded_calls)
            entries.append((_role(role), _c_string(content, "message content"),
                            None if reasoning is None else _c_string(reasoning, "reasoning"), call_array, len(encoded_calls)))
        self.count = len(entries)
        self.messages = (_lib.qwen_chat_message * max(1, self.count))()
        for i, (role, content, reasoning, calls, n_calls) in enumerate(entries):
            m = self.messages[i]
            m.role, m.content, m.reasoning = role, content, reasoning
            m.tool_calls, m.n_tool_calls = (calls, n_calls) if n_calls else (None, 0)
        self._keep = entries


class _Tools:
    """A qwen_tool array and the bytes it points at."""

    __slots__ = ("array", "count", "_keep")

    def __init__(self, tools: Sequence[Any]) -> None:
        fields = [tuple(None if x is None else _c_string(x, "tool field") for x in _tool_fields(t, i))
                  for i, t in enumerate(tools)]
        self.count = len(fields)
        self.array = (_lib.qwen_tool * max(1, self.count))()
        for i, (name, description, parameters) in enumerate(fields):
            self.array[i].name, self.array[i].description, self.array[i].parameters = name, description, parameters
        self._keep = fields


def _saved_tools(handle: Any) -> List[Dict[str, Any]]:
    """The tools a session offers, read back from the library as OpenAI ``tools`` entries
    (a loaded session's saved tools)."""
    tools = []
    for i in range(_lib.qwen_session_n_tools(handle)):
        tool = _lib.qwen_tool()
        check(_lib.qwen_session_get_tool(handle, i, byref(tool)), "qwen_session_get_tool")
        function: Dict[str, Any] = {"name": tool.name.decode()}
        if tool.description is not None:
            function["description"] = tool.description.decode()
        if tool.parameters is not None:
            function["parameters"] = json.loads(tool.parameters.decode())
        tools.append({"type": "function", "function": function})
    return tools


KV_TYPES = {"f16": _lib.QWEN_KV_F16, "q8": _lib.QWEN_KV_Q8}


def _session_params(system: Optional[str], n_ctx: int, seed: int, n_threads: int, max_window_size: int,
                    tools: Optional[_Tools] = None, kv_type: str = "f16") -> Tuple[Any, Any]:
    """qwen_session_params for these settings, and the bytes it points at."""
    if kv_type not in KV_TYPES:
        raise ValueError(f"kv_type must be one of {sorted(KV_TYPES)}, got {kv_type!r}")
    params = _lib.init_params(_lib.qwen_session_params, _lib.qwen_session_params_init)
    params.kv_type = KV_TYPES[kv_type]
    params.n_ctx = int(n_ctx)
    params.n_threads = int(n_threads)
    if not 0 <= int(seed) < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    params.seed = int(seed)
    params.max_window_size = int(max_window_size)
    system_bytes = None if system is None else _c_string(system, "system")
    params.system_prompt = system_bytes
    if tools is not None and tools.count:
        params.tools, params.n_tools = ctypes.cast(tools.array, POINTER(_lib.qwen_tool)), tools.count
    return params, (system_bytes, tools)


def _tool_fields(tool: Any, index: int) -> Tuple[str, Optional[str], Optional[str]]:
    """(name, description, parameters JSON) of an OpenAI ``tools`` entry
    ({"type": "function", "function": {...}}) or a legacy ``functions`` entry; None for a
    field the entry lacks (a chat template then sees the tool without it)."""
    if not isinstance(tool, dict):
        raise TypeError(f"tools[{index}] must be a dict, not {type(tool).__name__}")
    if "function" in tool and isinstance(tool["function"], dict):
        if tool.get("type", "function") != "function":
            raise ValueError(f"tools[{index}].type is {tool.get('type')!r}; only function tools exist")
        tool = tool["function"]
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"tools[{index}].name must be a non-empty string")
    description = tool.get("description")
    if description is not None and not isinstance(description, str):
        raise TypeError(f"tools[{index}].description must be a string")
    parameters = tool.get("parameters")
    if parameters is not None and not isinstance(parameters, str):
        parameters = json.dumps(parameters, ensure_ascii=False)
    return name, description, parameters


def _arguments_text(arguments: Any) -> str:
    """A tool call's arguments as text (a dict is written as JSON)."""
    return arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)


def _result_dict(r: _lib.qwen_result) -> Dict[str, Any]:
    return {
        "finish_reason": FINISH_REASONS.get(r.finish_reason, str(r.finish_reason)),
        "n_prompt_tokens": r.n_prompt_tokens,
        "n_generated_tokens": r.n_generated_tokens,
        "n_cached_tokens": r.n_cached_tokens,
        "prefill_ms": r.prefill_ms,
        "decode_ms": r.decode_ms,
        "text": _decode(r.text),
    }


class _PushStream:
    """A qwen_stream_fn for one call: decodes pieces, forwards them, traps exceptions.

    ``error`` holds an exception raised by ``on_text``; the C call is then cancelled
    (so the history stays unchanged) and the caller re-raises it."""

    def __init__(self, session: "Session", handle: Any, on_text: Optional[Callable[[str], Any]]):
        self.session = session
        self.handle = handle
        self.on_text = on_text
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.error: Optional[BaseException] = None
        self.c_fn = _lib.qwen_stream_fn(self._call)  # kept alive by self during the call

    def _call(self, piece: Any, length: int, _user_data: Any) -> bool:
        try:
            if self.error is not None:
                return True  # already cancelling
            if self.session._cancel_requested:
                # cancel() raced with the start of the call (which clears the C flag): repeat it.
                _lib.qwen_session_cancel(self.handle)
                return True
            text = self.decoder.decode(ctypes.string_at(piece, length) if length else b"")
            if text and self.on_text is not None and self.on_text(text) is False:
                return False
            return True
        except BaseException as e:  # noqa: BLE001 - anything, even KeyboardInterrupt
            self.error = e
            try:
                _lib.qwen_session_cancel(self.handle)
            except BaseException:  # noqa: BLE001
                pass
            return True

    def flush(self) -> None:
        tail = self.decoder.decode(b"", final=True)
        if tail and self.on_text is not None and self.error is None:
            self.on_text(tail)

    def release(self) -> None:
        self.c_fn = None  # break the cycle self -> c_fn -> bound method -> self
        self.on_text = None


# ------------------------------------------------------------------ model

class Model:
    """A loaded Qwen model (immutable, thread-safe). ``Model(path, n_threads=0)``.

    ``path`` is a Hugging Face checkpoint directory or a .gguf file. ``n_threads`` sizes
    the model's one compute pool, which all its sessions share: sessions used from
    several threads at once are decoded together in batched steps. ``progress`` is an
    optional ``fn(fraction) -> bool | None``; returning False aborts the load
    (``CancelledError``). ``n_cached_sessions``: idle sessions the prompt cache keeps
    (``acquire_session``; 0 = 16, negative = none). Use as a context manager or call
    ``close()``; sessions created from the model keep working after it is closed."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], n_threads: int = 0, *,
                 use_mmap: bool = True, progress: Optional[Callable[[float], Any]] = None,
                 n_cached_sessions: int = 0) -> None:
        self.path = os.fspath(path)
        self._handle: Any = None
        self._users = 0
        self._cond = threading.Condition()
        self._info: Optional[Dict[str, Any]] = None
        lib = _lib.load_library()
        params = _lib.init_params(_lib.qwen_model_params, _lib.qwen_model_params_init)
        if n_threads < 0:
            raise ValueError(f"n_threads must be >= 0, got {n_threads}")
        params.n_threads = int(n_threads)
        params.use_mmap = bool(use_mmap)
        params.n_cached_sessions = int(n_cached_sessions)
        trapped: List[BaseException] = []
        c_progress = None
        if progress is not None:
            def on_progress(fraction: float, _ud: Any) -> bool:
                try:
                    return progress(fraction) is not False
                except BaseException as e:  # noqa: BLE001
                    trapped.append(e)
                    return False
            c_progress = _lib.qwen_progress_fn(on_progress)
            params.progress = c_progress
        out = _lib.qwen_model_p()
        status = lib.qwen_model_load(_c_string(self.path, "path"), byref(params), byref(out))
        error = make_error(status, "qwen_model_load") if status != _lib.QWEN_OK else None
        del c_progress  # only now may the callback be collected
        if trapped:
            if out:
                lib.qwen_model_free(out)
            raise trapped[0]
        if error is not None:
            raise error
        self._handle = out
        self._finalizer = weakref.finalize(self, lib.qwen_model_free, out)
        self._finalizer.atexit = False

    # -- handle management

    @contextmanager
    def _use(self) -> Iterator[Any]:
        with self._cond:
            handle = self._handle
            if handle is None:
                raise _closed("model")
            self._users += 1
        try:
            yield handle
        finally:
            with self._cond:
                self._users -= 1
                if self._users == 0:
                    self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Release the model. Idempotent. Sessions created by the user keep the
        underlying model alive."""
        with self._cond:
            if self._handle is None:
                return
            self._handle = None
            while self._users:
                self._cond.wait()
        self._finalizer()

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<qwen_embed.Model {self.path!r} ({state})>"

    # -- info and tokens

    @property
    def info(self) -> Dict[str, Any]:
        """arch, name, n_vocab, n_ctx_train, n_layer, n_embd, n_head, n_head_kv,
        n_params, weight_type, file_bytes."""
        if self._info is None:
            info = _lib.qwen_model_info()
            info.struct_size = ctypes.sizeof(_lib.qwen_model_info)
            with self._use() as h:
                check(_lib.qwen_model_get_info(h, byref(info)), "qwen_model_get_info")
                self._info = {
                    "arch": _decode(info.arch),
                    "name": _decode(info.name),
                    "n_vocab": info.n_vocab,
                    "n_ctx_train": info.n_ctx_train,
                    "n_layer": info.n_layer,
                    "n_embd": info.n_embd,
                    "n_head": info.n_head,
                    "n_head_kv": info.n_head_kv,
                    "n_params": info.n_params,
                    "weight_type": _decode(info.weight_type),
                    "file_bytes": info.file_bytes,
                }
        return dict(self._info)

    def tokenize(self, text: Union[str, bytes], special: bool = False) -> List[int]:
        """Token ids of ``text`` (str, or UTF-8 bytes). With ``special=True``, special
        token strings such as "<|im_start|>" become their ids; otherwise they are text."""
        data = _utf8(text, "text")
        capacity = len(data) + 1  # BPE: at most one token per byte
        with self._use() as h:
            while True:
                tokens = (c_int32 * capacity)()
                n = c_size_t(0)
                status = _lib.qwen_tokenize(h, data, len(data), bool(special), tokens, capacity, byref(n))
                if status == _lib.QWEN_ERR_BUFFER_TOO_SMALL and n.value > capacity:
                    capacity = n.value
                    continue
                check(status, "qwen_tokenize")
                return tokens[:n.value]

    def detokenize_bytes(self, ids: Iterable[int], skip_special: bool = False) -> bytes:
        """The raw UTF-8 bytes of ``ids`` (may end in part of a character)."""
        ids = list(ids)
        array = (c_int32 * max(1, len(ids)))(*ids)
        capacity = 8 * len(ids) + 16
        with self._use() as h:
            while True:
                buf = ctypes.create_string_buffer(capacity)
                n = c_size_t(0)
                status = _lib.qwen_detokenize(h, array, len(ids), bool(skip_special), buf, capacity, byref(n))
                if status == _lib.QWEN_ERR_BUFFER_TOO_SMALL and n.value > capacity:
                    capacity = n.value + 1
                    continue
                check(status, "qwen_detokenize")
                return buf.raw[:n.value]

    def token_bytes(self, token: int) -> bytes:
        """The bytes of one token id (cached): a piece of UTF-8 text, possibly part of a
        character."""
        cache = self.__dict__.setdefault("_token_bytes", {})
        if token not in cache:
            cache[token] = self.detokenize_bytes([token])
        return cache[token]

    def detokenize(self, ids: Iterable[int], skip_special: bool = False) -> str:
        """The text of ``ids``; bytes that are not valid UTF-8 on their own (half a
        character) become U+FFFD."""
        return self.detokenize_bytes(ids, skip_special).decode("utf-8", errors="replace")

    # -- sessions

    def session(self, system: Optional[str] = None, n_ctx: int = 0, seed: int = 0,
                n_threads: int = 0, max_window_size: int = 0, kv_type: str = "f16") -> "Session":
        """A new conversation on this model (see Session). ``system=None``: the model's own
        default (its chat template's; Qwen v1: "You are a helpful assistant.").
        ``kv_type``: "f16" or "q8" (the KV cache in Q8_0 blocks: 53% of f16's memory)."""
        return Session(self, system=system, n_ctx=n_ctx, seed=seed, n_threads=n_threads,
                       max_window_size=max_window_size, kv_type=kv_type)

    def acquire_session(self, messages: Iterable[Any] = (), system: Optional[str] = None,
                        tools: Optional[Sequence[Dict[str, Any]]] = None, *, n_ctx: int = 0, seed: int = 0,
                        max_window_size: int = 0, kv_type: str = "f16") -> "Session":
        """A session holding the conversation ``messages`` (oldest first; (role, content),
        (role, content, tool call) or dicts with "role", "content" and optional
        "tool_calls" / "tool_call" and "reasoning"), ready for the next message through
        ``chat``: the idle session whose KV cache shares the longest prefix with that
        conversation's prompt (system prompt and tools included), or a fresh one.
        ``system=None``: the model's own default system prompt
        (a "system" message in ``messages`` sets it too). Only caches of ``kv_type`` are
        reused. As a context manager it goes back to the model's prompt cache on exit; or
        call ``release()``."""
        conversation = _Conversation(messages)
        tool_list = list(tools or [])
        tool_array = _Tools(tool_list)
        params, _keep = _session_params(system, n_ctx, seed, 0, max_window_size, tool_array, kv_type)
        out = _lib.qwen_session_p()
        with self._use() as h:
            check(_lib.qwen_session_acquire_messages(h, conversation.messages, conversation.count,
                                                     byref(params), byref(out)), "qwen_session_acquire_messages")
        return Session._adopt(self, out, tool_list)

    def acquire_prompt_session(self, prompt: str, *, n_ctx: int = 0, seed: int = 0,
                               kv_type: str = "f16") -> "Session":
        """A session for ``generate(prompt)``: the idle session whose cache shares the
        longest prefix with that prompt's tokens, or a fresh one (see acquire_session)."""
        params, _keep = _session_params(None, n_ctx, seed, 0, 0, kv_type=kv_type)
        out = _lib.qwen_session_p()
        with self._use() as h:
            check(_lib.qwen_session_acquire_prompt(h, _c_string(prompt, "prompt"), byref(params), byref(out)),
                  "qwen_session_acquire_prompt")
        return Session._adopt(self, out, [])

    def load_session(self, path: Union[str, "os.PathLike[str]"], n_ctx: int = 0, *,
                     max_window_size: int = 0) -> "Session":
        """A new session continuing the one ``Session.save`` wrote to ``path``, exactly where
        it was (history, system prompt, tools, sampler state, KV cache), in this process or
        any other. ``n_ctx`` / ``max_window_size``: 0 = the saved session's. The saved tools
        are offered on its chat calls; its ``tools`` property lists them as OpenAI ``tools``
        entries. Raises ``QwenIOError`` (missing,
        a directory, unreadable), ``BadModelError`` (not a session file, truncated or corrupt;
        the message names the byte offset), ``UnsupportedModelError`` (from a newer
        QwenEmbed), ``InvalidArgumentError`` (saved with another model), ``ContextFullError``
        (``n_ctx`` cannot hold the saved KV cache)."""
        data = _c_string(os.fspath(path), "path")
        params, _keep = _session_params(None, n_ctx, 0, 0, max_window_size)
        out = _lib.qwen_session_p()
        with self._use() as h:
            check(_lib.qwen_session_load(h, data, byref(params), byref(out)), "qwen_session_load")
        session = Session.__new__(Session)
        session._setup(self, out, _saved_tools(out), release_on_exit=False)
        return session

    @staticmethod
    def _conversation(query: str, history: Optional[Sequence[Tuple[str, str]]]) -> List[Tuple[int, str]]:
        conversation: List[Tuple[int, str]] = []
        for turn in history or ():
            q, r = turn
            conversation.append((_lib.QWEN_ROLE_USER, q))
            conversation.append((_lib.QWEN_ROLE_ASSISTANT, r))
        conversation.append((_lib.QWEN_ROLE_USER, query))
        return conversation

    def chat(self, query: str, history: Optional[Sequence[Tuple[str, str]]] = None,
             system: Optional[str] = None, **gen: Any) -> Tuple[str, List[Tuple[str, str]]]:
        """``response, history = model.chat(query, history)``, as in Qwen's examples.
        ``history`` is a list of (query, response) pairs; a new list is returned."""
        params = _GenParams.from_kwargs(gen)
        conversation = self._conversation(query, history)
        with self.acquire_session(conversation[:-1], system=system) as session:
            response = session._chat_push(conversation[-1:], params, None)
        return response, [tuple(t) for t in (history or ())] + [(query, response)]  # type: ignore[misc]

    def chat_stream(self, query: str, history: Optional[Sequence[Tuple[str, str]]] = None,
                    system: Optional[str] = None, **gen: Any) -> Iterator[str]:
        """Yields the reply to ``query`` piece by piece (text deltas). Closing the
        generator early stops the generation."""
        params = _GenParams.from_kwargs(gen)  # bad arguments fail here, not at the first next()
        conversation = self._conversation(query, history)
        if self.closed:
            raise _closed("model")

        def deltas() -> Iterator[str]:
            with self.acquire_session(conversation[:-1], system=system) as session:
                yield from session._chat_pull(conversation[-1:], params)
        return deltas()


# ---------------------------------------------------------------- session

class Session:
    """One conversation: history, KV cache and sampler state, on one model.

    Use it from one thread at a time (``cancel()`` excepted); a call that overlaps a
    running one raises ``BusyError``. Sessions on several threads run together on the
    model's engine. ``model.session(system=..., n_ctx=0, seed=0, kv_type="f16")``, or
    ``model.acquire_session(messages)`` for one from the model's prompt cache.
    ``n_threads`` is ignored (the model's pool computes for every session)."""

    def __init__(self, model: Model, system: Optional[str] = None, n_ctx: int = 0,
                 seed: int = 0, n_threads: int = 0, max_window_size: int = 0, kv_type: str = "f16") -> None:
        lib = _lib.load_library()
        params, _keep = _session_params(system, n_ctx, seed, n_threads, max_window_size, kv_type=kv_type)
        out = _lib.qwen_session_p()
        with model._use() as h:
            check(lib.qwen_session_create(h, byref(params), byref(out)), "qwen_session_create")
        self._setup(model, out, [], release_on_exit=False)

    @classmethod
    def _adopt(cls, model: Model, handle: Any, tools: List[Dict[str, Any]]) -> "Session":
        """A Session object for a handle the prompt cache handed out."""
        session = cls.__new__(cls)
        session._setup(model, handle, tools, release_on_exit=True)
        return session

    def _setup(self, model: Model, handle: Any, tools: List[Dict[str, Any]], release_on_exit: bool) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._owner: Optional[int] = None
        self._cancel_requested = False
        self._pending_end = False
        self._release_on_exit = release_on_exit
        self.last_result: Optional[Dict[str, Any]] = None
        self._tools: List[Dict[str, Any]] = tools
        self._handle: Any = handle
        self._finalizer = weakref.finalize(self, _lib.qwen_session_free, handle)
        self._finalizer.atexit = False

    # -- handle management

    @contextmanager
    def _locked(self, call: str) -> Iterator[Any]:
        """The handle, held exclusively for one C call (or a few back to back)."""
        if not self._lock.acquire(blocking=False):
            raise BusyError(_lib.QWEN_ERR_BUSY, "the session is running another call", "session busy", call)
        self._owner = threading.get_ident()
        try:
            handle = self._handle
            if handle is None:
                raise _closed("session")
            if self._pending_end:  # a stream abandoned while the session was busy
                self._pending_end = False
                _lib.qwen_chat_end(handle, None)
            yield handle
        finally:
            self._owner = None
            self._lock.release()

    @property
    def closed(self) -> bool:
        return self._handle is None

    def close(self) -> None:
        """Free the session: cancels a running call and waits for it to return. Idempotent."""
        if self._handle is None:
            return
        if self._owner == threading.get_ident():
            raise RuntimeError("a session cannot be closed from inside its own stream callback")
        self.cancel()
        with self._lock:
            if self._handle is None:
                return
            self._handle = None
        self._finalizer()

    def release(self) -> None:
        """Hand the session back to its model's prompt cache (its KV cache kept for a
        later ``acquire_session``); the object is closed afterwards. Idempotent."""
        if self._handle is None:
            return
        if self._owner == threading.get_ident():
            raise RuntimeError("a session cannot be released from inside its own stream callback")
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is None:
                return
            self._finalizer.detach()
            if self._pending_end:   # a stream abandoned while the session was busy
                _lib.qwen_chat_end(handle, None)
            _lib.qwen_session_release(handle)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._release_on_exit:
            self.release()
        else:
            self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.history)} messages"
        return f"<qwen_embed.Session ({state})>"

    # -- state

    def cancel(self) -> None:
        """Stop the running call (from any thread): it raises CancelledError within one
        token or prefill chunk and leaves the history unchanged. No-op when idle."""
        handle = self._handle
        if handle is not None:
            self._cancel_requested = True
            _lib.qwen_session_cancel(handle)

    def reset(self) -> None:
        """Forget the history and the KV cache; keeps the system prompt."""
        with self._locked("qwen_session_reset") as h:
            check(_lib.qwen_session_reset(h), "qwen_session_reset")

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Save the session to ``path`` (replacing a file there) for ``Model.load_session``:
        history, system prompt, tools, sampler state and KV cache. Written beside ``path`` and
        renamed over it when complete, so a failed save leaves an existing file as it was.
        Raises ``QwenIOError`` (the directory cannot be written), ``WrongStateError`` (a
        streamed reply is in progress)."""
        data = _c_string(os.fspath(path), "path")
        with self._locked("qwen_session_save") as h:
            check(_lib.qwen_session_save(h, data), "qwen_session_save")

    @property
    def system_prompt(self) -> Optional[str]:
        """The system prompt; None when the session uses the model's own default."""
        with self._locked("qwen_session_get_system_prompt") as h:
            text = c_char_p()
            check(_lib.qwen_session_get_system_prompt(h, byref(text)), "qwen_session_get_system_prompt")
            return None if text.value is None else _decode(text.value)

    @system_prompt.setter
    def system_prompt(self, value: Optional[str]) -> None:
        data = None if value is None else _c_string(value, "system prompt")
        with self._locked("qwen_session_set_system_prompt") as h:
            check(_lib.qwen_session_set_system_prompt(h, data), "qwen_session_set_system_prompt")

    def _raw_history(self) -> List[Tuple[int, str, List[Tuple[str, str]], Optional[str]]]:
        """(role, content, tool calls [(name, arguments)], reasoning or None) per history message."""
        with self._locked("qwen_session_get_message") as h:
            n = _lib.qwen_session_n_messages(h)
            out = []
            role = _lib.qwen_role()
            content, name, arguments, reasoning = c_char_p(), c_char_p(), c_char_p(), c_char_p()
            for i in range(n):
                check(_lib.qwen_session_get_message(h, i, byref(role), byref(content)),
                      "qwen_session_get_message")
                calls = []
                for k in range(_lib.qwen_session_n_tool_calls(h, i)):
                    check(_lib.qwen_session_get_tool_call_at(h, i, k, byref(name), byref(arguments)),
                          "qwen_session_get_tool_call_at")
                    calls.append((_decode(name.value), _decode(arguments.value)))
                check(_lib.qwen_session_get_reasoning(h, i, byref(reasoning)), "qwen_session_get_reasoning")
                out.append((role.value, _decode(content.value), calls,
                            None if reasoning.value is None else _decode(reasoning.value)))
            return out

    @property
    def history(self) -> List[Tuple[str, str]]:
        """The conversation as (role, content) pairs, system prompt not included."""
        return [(ROLE_NAMES.get(r, str(r)), c) for r, c, _, _ in self._raw_history()]

    @property
    def messages(self) -> List[Dict[str, Any]]:
        """The conversation as dicts: role, content; on an assistant turn that called tools
        "tool_calls" (a list of {"name", "arguments"}) and "tool_call" (the first); on one
        with a thought (Qwen3's thinking mode) "reasoning". With tools set, the last one is
        the parsed reply: the text around the calls, or the final answer."""
        out = []
        for r, c, calls, reasoning in self._raw_history():
            message: Dict[str, Any] = {"role": ROLE_NAMES.get(r, str(r)), "content": c}
            if calls:
                message["tool_calls"] = [{"name": n, "arguments": a} for n, a in calls]
                message["tool_call"] = message["tool_calls"][0]
            if reasoning is not None:
                message["reasoning"] = reasoning
            out.append(message)
        return out

    @property
    def kv_bytes(self) -> Dict[str, int]:
        """The KV cache's memory: "per_token" (keys and values of every layer, in the
        session's kv_type) and "allocated" (bytes held now; the cache grows with the
        conversation)."""
        per_token, allocated = ctypes.c_size_t(), ctypes.c_size_t()
        with self._locked("qwen_session_get_kv_bytes") as h:
            check(_lib.qwen_session_get_kv_bytes(h, byref(per_token), byref(allocated)), "qwen_session_get_kv_bytes")
        return {"per_token": per_token.value, "allocated": allocated.value}

    @property
    def tools(self) -> List[Dict[str, Any]]:
        """The tools offered on chat calls (function calling), as set."""
        return list(self._tools)

    @tools.setter
    def tools(self, tools: Optional[Sequence[Dict[str, Any]]]) -> None:
        """Offer ``tools`` (OpenAI ``tools`` entries or legacy ``functions`` entries;
        None or [] = none) on the following chat calls: the chat template describes them
        (Qwen v1: Qwen's ReAct prompt) and each reply joins the history parsed (see
        ``messages``)."""
        tools = list(tools or [])
        array = _Tools(tools)
        with self._locked("qwen_session_set_tools") as h:
            check(_lib.qwen_session_set_tools(h, array.array, array.count), "qwen_session_set_tools")
        self._tools = tools

    def add_message(self, role: Union[str, int], content: str,
                    tool_call: Optional[Dict[str, Any]] = None,
                    tool_calls: Optional[Sequence[Dict[str, Any]]] = None) -> None:
        """Append a message to the history without generating (restoring a conversation,
        or an assistant turn that called tools: ``tool_call={"name", "arguments"}`` or
        ``tool_calls=[...]``, arguments as text or a dict)."""
        data = _c_string(content or "", "message content")
        calls = list(tool_calls or ([tool_call] if tool_call is not None else []))
        encoded = [(_c_string(c["name"], "tool_call name"), _c_string(_arguments_text(c.get("arguments", "")),
                                                                       "tool_call arguments")) for c in calls]
        first = encoded[0] if encoded else (None, None)
        with self._locked("qwen_session_add_message") as h:
            check(_lib.qwen_session_add_message(h, _role(role), data, first[0], first[1]), "qwen_session_add_message")
            for name, arguments in encoded[1:]:
                check(_lib.qwen_session_add_tool_call(h, name, arguments), "qwen_session_add_tool_call")

    # -- generation

    def _chat_push(self, messages: Sequence[Tuple[int, str]], params: _GenParams,
                   on_text: Optional[Callable[[str], Any]]) -> str:
        msgs = _Messages(messages)
        result = _lib.qwen_result()
        self.last_result = None
        with self._locked("qwen_chat") as h:
            self._cancel_requested = False
            stream = _PushStream(self, h, on_text)
            try:
                status = _lib.qwen_chat(h, msgs.array, msgs.count, byref(params.struct), stream.c_fn,
                                        None, byref(result))
                error = make_error(status, "qwen_chat") if status != _lib.QWEN_OK else None
                if stream.error is not None:
                    raise stream.error
                if error is not None:
                    raise error
                self.last_result = _result_dict(result)
                stream.flush()
            finally:
                stream.release()
        return self.last_result["text"]

    def _chat_pull(self, messages: Sequence[Tuple[int, str]], params: _GenParams) -> Iterator[str]:
        msgs = _Messages(messages)
        self.last_result = None
        with self._locked("qwen_chat_begin") as h:
            self._cancel_requested = False
            check(_lib.qwen_chat_begin(h, msgs.array, msgs.count, byref(params.struct)), "qwen_chat_begin")
        del msgs, params  # copied by the library
        open_ = True
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        piece = POINTER(c_char)()
        length = c_size_t(0)
        done = c_bool(False)
        try:
            while True:
                with self._locked("qwen_chat_next") as h:
                    if self._cancel_requested:
                        _lib.qwen_session_cancel(h)  # cancel() may have raced with begin
                    status = _lib.qwen_chat_next(h, byref(piece), byref(length), byref(done))
                    if status != _lib.QWEN_OK:
                        open_ = False  # the library drops the reply on a failed next
                        raise make_error(status, "qwen_chat_next")
                    data = ctypes.string_at(piece, length.value) if length.value else b""
                if done.value:
                    break
                text = decoder.decode(data)
                if text:
                    yield text
            tail = decoder.decode(b"", final=True)
            if tail:
                yield tail
            open_ = False
            self._end_pull()
        finally:
            if open_:
                self._end_quietly()

    def logprobs(self, start: int = 0) -> List[Dict[str, Any]]:
        """Log probabilities of the reply in progress (a streamed reply: so far) or else of
        the last reply, from token ``start`` on, when it asked for them (``logprobs=N``):
        one dict per generated token, ``{"token": id, "bytes": the token's bytes,
        "logprob": float, "top_logprobs": [{"token", "bytes", "logprob"}, ...]}`` (most
        likely first). Over the logits after the repetition penalty and the grammar's mask,
        before temperature / top-k / top-p."""
        out: List[Dict[str, Any]] = []
        entry = _lib.qwen_token_logprob()
        with self._locked("qwen_session_get_logprob") as h:
            n = _lib.qwen_session_n_logprobs(h)
            for i in range(max(0, start), max(0, n)):
                check(_lib.qwen_session_get_logprob(h, i, byref(entry)), "qwen_session_get_logprob")
                top = [{"token": entry.top_tokens[k], "bytes": self.model.token_bytes(entry.top_tokens[k]),
                        "logprob": float(entry.top_logprobs[k])} for k in range(entry.n_top)]
                out.append({"token": entry.token, "bytes": self.model.token_bytes(entry.token),
                            "logprob": float(entry.logprob), "top_logprobs": top})
        return out

    def chat_parts(self, message: Union[str, Message, Iterable[Message]], **gen: Any) -> Iterator[Tuple[str, Any]]:
        """Send ``message`` and yield the reply split as it streams (qwen_chat_next_part):
        ("content", text), ("reasoning", text) for a thinking model's thought, and
        ("tool_call", {"name", "arguments"}) once each call's block closes (Qwen2/2.5/3;
        Qwen v1 yields its raw text as content). Closing the generator early ends the
        reply, as with ``chat(stream=True)``."""
        msgs = _Messages(_normalize_messages(message))
        params = _GenParams.from_kwargs(gen)
        self.last_result = None
        with self._locked("qwen_chat_begin") as h:
            self._cancel_requested = False
            check(_lib.qwen_chat_begin(h, msgs.array, msgs.count, byref(params.struct)), "qwen_chat_begin")
        del msgs, params  # copied by the library
        return self._parts()

    def _parts(self) -> Iterator[Tuple[str, Any]]:
        open_ = True
        part = _lib.qwen_part()
        done = c_bool(False)
        try:
            while True:
                with self._locked("qwen_chat_next_part") as h:
                    if self._cancel_requested:
                        _lib.qwen_session_cancel(h)
                    status = _lib.qwen_chat_next_part(h, byref(part), byref(done))
                    if status != _lib.QWEN_OK:
                        open_ = False  # the library drops the reply on a failed next
                        raise make_error(status, "qwen_chat_next_part")
                    if done.value:
                        break
                    kind = _lib.PART_KINDS.get(part.kind, "content")
                    if kind == "tool_call":
                        value: Any = {"name": _decode(part.tool_name), "arguments": _decode(part.tool_arguments)}
                    else:
                        value = ctypes.string_at(part.text, part.len).decode("utf-8", errors="replace")
                yield kind, value
            open_ = False
            self._end_pull()
        finally:
            if open_:
                self._end_quietly()

    def _end_pull(self) -> None:
        """qwen_chat_end after the last piece of a pull: the result in ``last_result``."""
        result = _lib.qwen_result()
        with self._locked("qwen_chat_end") as h:
            check(_lib.qwen_chat_end(h, byref(result)), "qwen_chat_end")
            self.last_result = _result_dict(result)

    def _end_quietly(self) -> None:
        """End an abandoned pull (generator closed early or failed): the partial reply
        is kept in the history (finish reason "callback"), as qwen_chat_end does."""
        if self._handle is None:
            return
        if self._lock.acquire(blocking=False):
            try:
                if self._handle is not None:
                    _lib.qwen_chat_end(self._handle, None)
            finally:
                self._lock.release()
        else:  # busy (or collected inside one of our own calls): end it before the next call
            self._pending_end = True

    def chat(self, message: Union[str, Message, Iterable[Message]], stream: bool = False,
             callback: Optional[Callable[[str], Any]] = None, **gen: Any) -> Any:
        """Send ``message`` (a user string, or (role, content) pairs / dicts) and return
        the reply text. With ``stream=True``, return a generator of text deltas instead
        (built on qwen_chat_begin/next/end; closing it early ends the reply, keeping the
        partial text in the history). ``callback(text)`` (non-streaming) sees each delta
        and may return False to stop. ``**gen``: max_tokens, temperature, top_k, top_p,
        repetition_penalty, seed, stop, enable_thinking (a chat template's thinking mode:
        True / False; None = the template's default)."""
        messages = _normalize_messages(message)
        params = _GenParams.from_kwargs(gen)
        if stream:
            if callback is not None:
                raise TypeError("callback is for stream=False; iterate the stream instead")
            return self._chat_pull(messages, params)
        return self._chat_push(messages, params, callback)

    def generate(self, prompt: str, callback: Optional[Callable[[str], Any]] = None, **gen: Any) -> str:
        """Raw continuation of ``prompt`` without the chat template (base models).
        The history is neither used nor changed."""
        data = _c_string(prompt, "prompt")
        params = _GenParams.from_kwargs(gen)
        result = _lib.qwen_result()
        self.last_result = None
        with self._locked("qwen_generate") as h:
            self._cancel_requested = False
            stream = _PushStream(self, h, callback)
            try:
                status = _lib.qwen_generate(h, data, byref(params.struct), stream.c_fn, None, byref(result))
                error = make_error(status, "qwen_generate") if status != _lib.QWEN_OK else None
                if stream.error is not None:
                    raise stream.error
                if error is not None:
                    raise error
                self.last_result = _result_dict(result)
                stream.flush()
            finally:
                stream.release()
        return self.last_result["text"]

    def render_prompt(self, message: Union[str, Message, Iterable[Message]]) -> List[int]:
        """The prompt ids ``chat(message)`` would run, without running the model."""
        msgs = _Messages(_normalize_messages(message))
        capacity = 256
        with self._locked("qwen_session_render_prompt") as h:
            while True:
                tokens = (c_int32 * capacity)()
                n = c_size_t(0)
                status = _lib.qwen_session_render_prompt(h, msgs.array, msgs.count, tokens, capacity, byref(n))
                if status == _lib.QWEN_ERR_BUFFER_TOO_SMALL and n.value > capacity:
                    capacity = n.value
                    continue
                check(status, "qwen_session_render_prompt")
                return tokens[:n.value]
