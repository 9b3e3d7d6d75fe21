"""An OpenAI-compatible server over qwen_embed, on FastAPI + uvicorn (``pip install
qwen-embed[server]``), with a web chat page at ``/``.

    qwen-embed-server -m MODEL [--host 127.0.0.1] [--port 8000] [--parallel 4]
                      [--queue 16] [--threads N] [--api-key KEY] [-c CTX]
    (from a source checkout: python examples/python/openai_server.py -m MODEL ...)

Endpoints
    POST /v1/chat/completions   messages (system/developer, user, assistant with
                                tool_calls, tool/function results), tools / functions,
                                tool_choice, stream (SSE), stream_options.include_usage,
                                max_tokens, temperature, top_p, top_k,
                                repetition_penalty, stop, seed, logprobs,
                                top_logprobs, response_format (text,
                                json_object, json_schema: constrained decoding),
                                chat_template_kwargs.enable_thinking
    POST /v1/completions        raw continuation of prompt (qwen_generate), logprobs
    GET  /v1/models             the model served
    GET  /health                {"status": "ok", "running": R, "waiting": W}
    GET  /                      the web chat page

Fields the engine cannot honour (n > 1, non-zero presence/frequency penalties,
logit_bias, a JSON schema outside the engine's subset) get a 400 naming them rather than
being ignored.

Structured output: response_format json_object (any JSON object) and json_schema
(strict or not: the reply is always held to the schema) are the engine's grammar-
constrained decoding; tool_choice "required" or a named function forces a call the same
way, in the model's own call format. Log probabilities are over the logits after the
repetition penalty and the grammar's mask, before temperature / top_p.

Scheduling: --parallel requests generate at once; the engine decodes them together in
batched steps on the model's one pool of --threads threads. Each request gets its
session from the engine's prompt cache (the session whose KV cache shares the longest
prefix of the request's conversation, so a client that re-sends the whole conversation
every turn only pays for the new messages). Up to --queue more wait in line, first come
first served; beyond that, 429 with Retry-After. A client that disconnects (while
waiting, during prefill or decoding, streamed or not) has its generation cancelled and
its slot given to the next in line.

Function calling is the engine's. Qwen2/2.5/3 (the model's chat template, <tool_call>
blocks): calls come back as tool_calls (finish_reason "tool_calls"), several per reply;
streamed, text streams as it is generated and each call is sent when its block closes; a
thinking model's thought comes back as reasoning_content (streamed as it is written).
Qwen (v1) (Qwen's ReAct prompt, as Qwen's own openai_api.py): one call per reply, its
thought as content; a streamed request with tools streams the parsed result once the
reply is complete. Legacy ``functions`` requests get function_call.

--port 0 picks a free port; the first stdout line is always "listening on http://HOST:PORT".
The request parsing (parse_request, parse_completion_request) needs nothing beyond the
standard library; FastAPI and uvicorn are imported only to serve.
"""
import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import json
import logging
import math
import os
import pathlib
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import qwen_embed

log = logging.getLogger("qwen_embed.server")

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant",
         "tool": "tool", "function": "tool"}
ROLE_IDS = {"user": qwen_embed.model.ROLES["user"], "assistant": qwen_embed.model.ROLES["assistant"],
            "tool": qwen_embed.model.ROLES["tool"]}
MAX_BODY = 32 * 1024 * 1024
PAGE = pathlib.Path(__file__).resolve().parent / "web" / "chat.html"


class RequestError(Exception):
    """A request the server refuses: HTTP status and an OpenAI-style error object."""

    def __init__(self, status, message, code=None, param=None, kind="invalid_request_error", headers=None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind
        self.headers = headers or {}

    def body(self):
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# ---------------------------------------------------------------- request parsing

@dataclass
class ChatRequest:
    system: Optional[str]               # None: the model's own default
    # {"role": role id, "content": str, "tool_calls": [(name, arguments)], "reasoning": str or None}
    conversation: List[Dict[str, Any]]
    gen: Dict[str, Any]
    stream: bool = False
    include_usage: bool = False
    tools: List[Dict[str, Any]] = field(default_factory=list)
    legacy_functions: bool = False      # answered with function_call instead of tool_calls


def text_of(content, where):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": ...}, ...]
        parts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                parts.append(part["text"])
            else:
                raise RequestError(400, f"{where}: only text parts are supported", param=where)
        return "".join(parts)
    raise RequestError(400, f"{where} must be a string or a list of text parts", param=where)


def _unsupported(body, fields):
    """400 naming the fields the engine cannot honour: {name: predicate(value) -> bad}."""
    bad = [name for name, is_bad in fields.items() if name in body and body[name] is not None and is_bad(body[name])]
    if bad:
        raise RequestError(400, f"unsupported: {', '.join(bad)} (this server generates one choice of text, "
                                "without penalties other than repetition_penalty, or logit bias)",
                           param=bad[0])


def _sampling(body, gen, default_max=None):
    def number(name, kind, target=None, low=None, high=None):
        value = body.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise RequestError(400, f"{name} must be a{'n integer' if kind is int else ' number'}", param=name)
        if math.isnan(value) or (low is not None and value < low) or (high is not None and value > high):
            raise RequestError(400, f"{name} must be in [{low}, {high}]", param=name)
        gen[target or name] = kind(value)

    if default_max is not None:
        gen["max_tokens"] = default_max
    number("max_tokens", int, low=0, high=1 << 20)
    number("max_completion_tokens", int, target="max_tokens", low=0, high=1 << 20)
    number("temperature", float, low=0, high=2)
    number("top_p", float, low=0, high=1)
    number("top_k", int, low=0, high=1 << 20)
    number("repetition_penalty", float, low=0.01, high=10)
    number("seed", int, low=0, high=2 ** 64 - 1)
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop) or len(stop) > 16:
            raise RequestError(400, "stop must be a string or a list of at most 16 strings", param="stop")
        stop = [s for s in stop if s]
        if stop:
            gen["stop"] = stop


def _stream_flags(body):
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(400, "stream must be a boolean", param="stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise RequestError(400, "stream_options must be an object", param="stream_options")
    return stream, bool(options.get("include_usage"))


def _tool_definitions(body):
    """(tools for the session, legacy functions?) from tools/functions and tool_choice."""
    tools, functions = body.get("tools"), body.get("functions")
    if tools is not None and functions is not None:
        raise RequestError(400, "give tools or functions, not both", param="functions")
    legacy = functions is not None
    entries = functions if legacy else tools
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise RequestError(400, f"{'functions' if legacy else 'tools'} must be a list", param="tools")
    defs = []
    for i, entry in enumerate(entries):
        where = f"{'functions' if legacy else 'tools'}[{i}]"
        if not isinstance(entry, dict):
            raise RequestError(400, f"{where} must be an object", param=where)
        if not legacy:
            if entry.get("type", "function") != "function" or not isinstance(entry.get("function"), dict):
                raise RequestError(400, f"{where}: only {{\"type\": \"function\", \"function\": {{...}}}} tools exist",
                                   param=where)
            entry = entry["function"]
        name, description, parameters = entry.get("name"), entry.get("description", ""), entry.get("parameters", {})
        if not isinstance(name, str) or not name:
            raise RequestError(400, f"{where}.name must be a non-empty string", param=where)
        if description is None:
            description = ""
        if not isinstance(description, str):
            raise RequestError(400, f"{where}.description must be a string", param=where)
        if not isinstance(parameters, dict):
            raise RequestError(400, f"{where}.parameters must be a JSON schema object", param=where)
        defs.append({"name": name, "description": description, "parameters": parameters})

    choice = body.get("tool_choice", body.get("function_call"))
    if choice is None or choice == "auto":
        return defs, legacy
    if choice == "none":
        return [], legacy
    if choice == "required":
        if not defs:
            raise RequestError(400, "tool_choice \"required\" needs tools", param="tool_choice")
        return defs, legacy
    if isinstance(choice, dict):
        wanted = choice.get("function", choice) if isinstance(choice.get("function", choice), dict) else {}
        name = wanted.get("name")
        named = [d for d in defs if d["name"] == name]
        if not named:
            raise RequestError(400, f"tool_choice names {name!r}, which is not among the tools", param="tool_choice")
        return named, legacy   # only that tool is offered, and the reply is forced to call it
    raise RequestError(400, "tool_choice must be \"auto\", \"none\" or {\"type\": \"function\", ...}",
                       param="tool_choice")


def _response_format(body, gen):
    """response_format -> gen["json_schema"]: json_object is any JSON object; json_schema
    holds the reply to its schema whether strict or not."""
    fmt = body.get("response_format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise RequestError(400, "response_format must be {\"type\": \"text\" | \"json_object\" | \"json_schema\"}",
                           param="response_format")
    if fmt["type"] == "json_object":
        gen["json_schema"] = {"type": "object"}
    elif fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema", {}), dict):
            raise RequestError(400, "response_format.json_schema must be {\"name\": ..., \"schema\": {...}}",
                               param="response_format")
        gen["json_schema"] = spec.get("schema", {})


def _chat_logprobs(body, gen):
    """logprobs (bool) and top_logprobs (0..20) -> gen["logprobs"] (alternatives per token)."""
    wanted, top = body.get("logprobs"), body.get("top_logprobs")
    if wanted is not None and not isinstance(wanted, bool):
        raise RequestError(400, "logprobs must be a boolean", param="logprobs")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= 20:
            raise RequestError(400, "top_logprobs must be an integer in [0, 20]", param="top_logprobs")
        if not wanted:
            raise RequestError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    if wanted:
        gen["logprobs"] = top or 0


def openai_logprobs(entries):
    """Session.logprobs() entries as OpenAI's chat logprobs content."""
    def one(token_bytes, logprob):
        return {"token": token_bytes.decode("utf-8", errors="replace"), "logprob": logprob, "bytes": list(token_bytes)}
    return [dict(one(e["bytes"], e["logprob"]),
                 top_logprobs=[one(t["bytes"], t["logprob"]) for t in e["top_logprobs"]]) for e in entries]


def legacy_logprobs(entries, offset=0):
    """Session.logprobs() entries as /v1/completions' logprobs (tokens, token_logprobs,
    top_logprobs, text_offset); `offset` is the text offset of the first."""
    tokens, offsets = [], []
    for e in entries:
        offsets.append(offset)
        text = e["bytes"].decode("utf-8", errors="replace")
        tokens.append(text)
        offset += len(text)
    return {"tokens": tokens, "token_logprobs": [e["logprob"] for e in entries],
            "top_logprobs": [{t["bytes"].decode("utf-8", errors="replace"): t["logprob"] for t in e["top_logprobs"]}
                             for e in entries],
            "text_offset": offsets}


def _arguments_text(arguments, where):
    if isinstance(arguments, str):
        return arguments
    if isinstance(arguments, (dict, list)):
        return json.dumps(arguments, ensure_ascii=False)
    raise RequestError(400, f"{where} must be a JSON string", param=where)


def parse_request(body) -> ChatRequest:
    """A /v1/chat/completions body -> ChatRequest, or RequestError (a 4xx naming the field)."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list", param="messages")
    _unsupported(body, {
        "n": lambda v: v != 1,
        "presence_penalty": lambda v: v != 0, "frequency_penalty": lambda v: v != 0,
        "logit_bias": lambda v: v != {},
    })
    tools, legacy = _tool_definitions(body)
    systems, conversation = [], []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise RequestError(400, f"{where} must be an object", param=where)
        role = ROLES.get(m.get("role")) if isinstance(m.get("role"), str) else None
        if role is None:
            raise RequestError(400, f"{where}.role {m.get('role')!r} is not supported "
                                    "(system, developer, user, assistant, tool, function)", param=f"{where}.role")
        text = text_of(m.get("content"), f"{where}.content")
        if role == "system":
            systems.append(text)
            continue
        calls, reasoning = [], None
        if role == "assistant":
            reasoning = m.get("reasoning_content")
            if reasoning is not None and not isinstance(reasoning, str):
                raise RequestError(400, f"{where}.reasoning_content must be a string", param=f"{where}.reasoning_content")
            tool_calls = m.get("tool_calls")
            if tool_calls is not None:
                if not isinstance(tool_calls, list):
                    raise RequestError(400, f"{where}.tool_calls must be a list", param=f"{where}.tool_calls")
                for j, call in enumerate(tool_calls):
                    fn = call.get("function") if isinstance(call, dict) else None
                    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                        raise RequestError(400, f"{where}.tool_calls[{j}].function.name must be a non-empty string",
                                           param=f"{where}.tool_calls")
                    calls.append((fn["name"], _arguments_text(fn.get("arguments", ""), f"{where}.tool_calls[{j}]")))
            legacy_call = m.get("function_call")
            if legacy_call is not None:
                if not isinstance(legacy_call, dict) or not isinstance(legacy_call.get("name"), str) \
                        or not legacy_call["name"]:
                    raise RequestError(400, f"{where}.function_call.name must be a non-empty string",
                                       param=f"{where}.function_call")
                calls.append((legacy_call["name"], _arguments_text(legacy_call.get("arguments", ""),
                                                                   f"{where}.function_call")))
        conversation.append({"role": ROLE_IDS[role], "content": text, "tool_calls": calls, "reasoning": reasoning})
    if not conversation:
        raise RequestError(400, "messages holds no user, assistant or tool message", param="messages")
    system = "\n\n".join(systems) if systems else None
    gen: Dict[str, Any] = {}
    _sampling(body, gen)
    _response_format(body, gen)
    _chat_logprobs(body, gen)
    choice = body.get("tool_choice", body.get("function_call"))
    if tools and (choice == "required" or isinstance(choice, dict)):
        if "json_schema" in gen:
            raise RequestError(400, "a forced tool call cannot take a response_format too", param="tool_choice")
        gen["tool_choice"] = "required" if choice == "required" else tools[0]["name"]
    kwargs = body.get("chat_template_kwargs")
    if kwargs is not None:
        if not isinstance(kwargs, dict):
            raise RequestError(400, "chat_template_kwargs must be an object", param="chat_template_kwargs")
        if kwargs.get("enable_thinking") is not None:
            if not isinstance(kwargs["enable_thinking"], bool):
                raise RequestError(400, "chat_template_kwargs.enable_thinking must be a boolean",
                                   param="chat_template_kwargs")
            gen["enable_thinking"] = kwargs["enable_thinking"]
    stream, include_usage = _stream_flags(body)
    return ChatRequest(system, conversation, gen, stream, include_usage, tools, legacy)


def parse_completion_request(body):
    """A /v1/completions body -> (prompt, gen, stream, include_usage), or RequestError."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str) or not prompt:
        raise RequestError(400, "prompt must be a non-empty string (one prompt per request)", param="prompt")
    _unsupported(body, {
        "n": lambda v: v != 1, "best_of": lambda v: v != 1,
        "echo": lambda v: v is not False, "suffix": lambda v: v != "",
        "presence_penalty": lambda v: v != 0, "frequency_penalty": lambda v: v != 0,
        "logit_bias": lambda v: v != {},
    })
    gen: Dict[str, Any] = {}
    _sampling(body, gen, default_max=16)   # OpenAI's default for completions
    logprobs = body.get("logprobs")
    if logprobs is not None:
        if isinstance(logprobs, bool) or not isinstance(logprobs, int) or not 0 <= logprobs <= 5:
            raise RequestError(400, "logprobs must be an integer in [0, 5]", param="logprobs")
        gen["logprobs"] = logprobs
    _response_format(body, gen)
    stream, include_usage = _stream_flags(body)
    return prompt, gen, stream, include_usage


ERROR_STATUS = {
    qwen_embed.InvalidArgumentError: 400,
    qwen_embed.ContextFullError: 400,
    qwen_embed.BusyError: 503,
    qwen_embed.QwenNotImplementedError: 501,
}


def request_error(e):
    """Any failure -> RequestError (the engine's errors keep their message)."""
    if isinstance(e, RequestError):
        return e
    if isinstance(e, qwen_embed.QwenError):
        status = next((code for cls, code in ERROR_STATUS.items() if isinstance(e, cls)), 500)
        code = "context_length_exceeded" if isinstance(e, qwen_embed.ContextFullError) else None
        return RequestError(status, str(e), code=code,
                            kind="invalid_request_error" if status == 400 else "server_error")
    return RequestError(500, f"internal error: {e!r}", kind="server_error")


FINISH = {"stop": "stop", "length": "length", "callback": "stop"}


# ---------------------------------------------------------------- scheduling

class ClientGone(Exception):
    """The client disconnected; its work is cancelled and nothing is sent."""


class Admission:
    """``slots`` requests run at once; up to ``queue`` more wait, first come first
    served; beyond that a 429. Used from the event loop thread only."""

    def __init__(self, slots, queue):
        self.slots, self.queue = slots, queue
        self.running = 0
        self.waiters = collections.deque()      # futures, oldest first
        self.mean_seconds = 5.0                 # moving average of a request's slot time

    def retry_after(self):
        return max(1, math.ceil(self.mean_seconds * (len(self.waiters) + 1) / self.slots))

    async def enter(self, is_disconnected):
        if self.running < self.slots and not self.waiters:
            self.running += 1
            return
        if len(self.waiters) >= self.queue:
            seconds = self.retry_after()
            raise RequestError(429, f"the server is busy ({self.running} running, {len(self.waiters)} waiting); "
                                    f"retry in {seconds} s", kind="rate_limit_error", code="rate_limit_exceeded",
                               headers={"Retry-After": str(seconds)})
        turn = asyncio.get_running_loop().create_future()
        self.waiters.append(turn)
        try:
            while not turn.done():
                await asyncio.wait({turn}, timeout=0.25)
                if not turn.done() and await is_disconnected():
                    raise ClientGone()
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.leave(0.0)        # we were handed a slot: pass it on
            else:
                turn.cancel()
                self.waiters.remove(turn)
            raise

    def leave(self, seconds):
        if seconds:
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * seconds
        while self.waiters:
            turn = self.waiters.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes to the next in line
                return
        self.running -= 1


class Generation:
    """One engine call on a worker thread; its pieces arrive on an asyncio queue.
    ``work(on_text)`` runs in the thread and returns the call's outcome."""

    def __init__(self, executor, session, work, on_final):
        self.session = session
        self.on_final = on_final    # awaited before the outcome is handed over
        self.cancelled = False      # the call was cancelled because its client left
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue = asyncio.Queue()
        self.future = self.loop.run_in_executor(executor, self._run, work)

    def _put(self, item):
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def _run(self, work):
        try:
            outcome = work(lambda text: self._put(("text", text)))
            self._put(("done", outcome))
        except BaseException as e:  # noqa: BLE001 - handed to the request
            self._put(("error", e))

    async def events(self, is_disconnected):
        """("text", piece)... then ("done", outcome) or ("error", exception); raises
        ClientGone (after cancelling the call) if the client leaves meanwhile."""
        checked = time.monotonic()
        while True:
            try:
                kind, value = await asyncio.wait_for(self.queue.get(), timeout=0.25)
            except asyncio.TimeoutError:
                kind = None
            # Every quarter second, pieces flowing or not: a closed connection is not
            # otherwise noticed while a stream's writes still succeed.
            if kind is None or time.monotonic() - checked > 0.25:
                checked = time.monotonic()
                if await is_disconnected():
                    self.cancel()
                    raise ClientGone()
            if kind is None:
                continue
            if kind != "text":
                # Slot and session are given back before the client sees the end, so its
                # next request finds the session (and its cache) idle.
                await self.on_final()
                yield kind, value
                return
            yield kind, value

    def cancel(self):
        self.cancelled = True
        self.session.cancel()

    async def finished(self):
        """Cancel the call if it is still running and wait for its thread to end."""
        if not self.future.done():
            self.cancel()
        try:
            await asyncio.shield(self.future)
        except BaseException:  # noqa: BLE001 - the outcome was already handed over (or not wanted)
            pass


async def final_outcome(events, first):
    """The call's outcome once its pieces have passed (a non-streamed answer does not
    need them); the call's exception if it failed."""
    kind, value = first
    async for kind, value in events:
        pass
    if kind == "error":
        raise value
    return value


# ---------------------------------------------------------------- the app

class LogAndGuard:
    """ASGI middleware: the API key on /v1/*, and one log line per request once its
    response is complete (streams included), with the note a handler left in
    request.state.log_note. Plain ASGI rather than BaseHTTPMiddleware, which would put
    streamed bodies behind a queue where a client's disconnect is no longer seen."""

    def __init__(self, app, api_key=None):
        self.app, self.api_key = app, api_key

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.monotonic()
        status = {"code": 0}
        client = scope.get("client") or ("-", 0)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)
        try:
            authorization = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
            if self.api_key and scope["path"].startswith("/v1/") and authorization != f"Bearer {self.api_key}":
                err = RequestError(401, "invalid or missing API key (Authorization: Bearer KEY)",
                                   kind="authentication_error", code="invalid_api_key")
                body = json.dumps(err.body()).encode()
                await recording_send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
            await self.app(scope, receive, recording_send)
        finally:
            log.info('%s "%s %s" %d %.0f ms%s', client[0], scope["method"], scope["path"], status["code"],
                     (time.monotonic() - start) * 1000, (scope.get("state") or {}).get("log_note", ""))


def create_app(model, model_id="qwen", parallel=4, queue=16, n_ctx=0, api_key=None, kv_type="f16"):
    """The FastAPI application serving ``model`` (sessions from its prompt cache, their KV
    caches of ``kv_type``: "f16" or "q8")."""
    import anyio
    from fastapi import FastAPI, Request
    from fastapi.middleware.cors import CORSMiddleware
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    # Qwen (v1) chats in Qwen's ReAct format; Qwen2/2.5/3 in their chat templates' own.
    react = model.info.get("arch") == "qwen"
    admission = Admission(max(1, parallel), max(0, queue))
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="qwen-gen")
    created = int(time.time())
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        executor.shutdown(wait=True, cancel_futures=True)

    app = FastAPI(title="qwen-embed", version=qwen_embed.__version__, docs_url="/docs", redoc_url=None,
                  lifespan=lifespan)
    app.state.executor, app.state.admission = executor, admission

    def error_response(err):
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    app.add_middleware(LogAndGuard, api_key=api_key)
    # Browser apps on other origins may call the API (as with Qwen's own server); with
    # --api-key they still need the key. Outermost, so preflights need no key.
    app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])

    @app.exception_handler(RequestError)
    async def on_request_error(request, err):
        return error_response(err)

    @app.exception_handler(qwen_embed.QwenError)
    async def on_engine_error(request, exc):
        err = request_error(exc)
        if err.status >= 500:
            log.error("%d on %s %s\n%s", err.status, request.method, request.url.path,
                      "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return error_response(err)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request, exc):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(RequestError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}",
                                           kind=kind))

    @app.exception_handler(Exception)
    async def on_crash(request, exc):
        log.error("500 on %s %s\n%s", request.method, request.url.path,
                  "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
        return error_response(RequestError(500, f"internal error: {exc!r}", kind="server_error"))

    async def read_json(request):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            raise RequestError(413, f"the request body is over {MAX_BODY} bytes")
        data = bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BODY:
                raise RequestError(413, f"the request body is over {MAX_BODY} bytes")
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise RequestError(400, f"the body is not valid JSON: {e}") from None

    def usage(r):
        return {"prompt_tokens": r["n_prompt_tokens"], "completion_tokens": r["n_generated_tokens"],
                "total_tokens": r["n_prompt_tokens"] + r["n_generated_tokens"],
                "prompt_tokens_details": {"cached_tokens": r["n_cached_tokens"]}}

    async def run(request, acquire, work, respond):
        """Admission, a session (``acquire()``, from the prompt cache), the engine call on
        a worker thread, then
        ``await respond(events, first_event)``: a complete response (the call is over when
        it returns) or a StreamingResponse (released when its stream ends). The first
        event, awaited here, comes after the prefill, so a failure there still gets its
        HTTP status. Slot and session are released whatever happens."""
        try:
            await admission.enter(request.is_disconnected)
        except ClientGone:
            request.state.log_note = " (client left while waiting; cancelled)"
            return JSONResponse({"error": {"message": "the client left", "type": "client_closed"}}, status_code=499)
        started = time.monotonic()
        held = {"session": None, "generation": None}

        async def release():
            """Give back the session and the slot, once (the call cancelled and over first)."""
            generation, session = held.pop("generation", None), held.pop("session", None)
            if "released" in held:
                return
            held["released"] = True
            if generation is not None:
                await generation.finished()
                if generation.cancelled:
                    request.state.log_note = " (client left; cancelled)"
            if session is not None:
                session.release()
            admission.leave(time.monotonic() - started)

        handed_over = False
        try:
            session = held["session"] = await asyncio.get_running_loop().run_in_executor(executor, acquire)
            generation = held["generation"] = Generation(executor, session,
                                                         lambda on_text: work(session, on_text), release)
            events = generation.events(request.is_disconnected)
            first = await events.__anext__()
            if first[0] == "error":
                raise first[1]
            response = await respond(events, first)
            if isinstance(response, StreamingResponse):
                stream = response.body_iterator

                async def released_at_end():
                    try:
                        async for part in stream:
                            yield part
                    finally:
                        with anyio.CancelScope(shield=True):
                            await release()
                response.body_iterator = released_at_end()
                handed_over = True
            return response
        except ClientGone:
            request.state.log_note = " (client left; cancelled)"
            return JSONResponse({"error": {"message": "the client left", "type": "client_closed"}}, status_code=499)
        finally:
            if not handed_over:
                with anyio.CancelScope(shield=True):
                    await release()

    def sse(obj):
        return "data: " + (obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)) + "\n\n"

    async def sse_events(events, first, piece, closing, opening=None):
        """A call's server-sent events: `opening`, one event per piece (`piece(text)`), then
        `closing(outcome)` and [DONE]; an error event if the call fails. A client that
        leaves ends it (the call is cancelled and noted by release)."""
        if opening is not None:
            yield sse(opening)
        kind, value = first
        try:
            while True:
                if kind == "text":
                    yield sse(piece(value))
                elif kind == "error":
                    yield sse(request_error(value).body())
                    return
                else:
                    for event in closing(value):
                        yield sse(event)
                    yield sse("[DONE]")
                    return
                kind, value = await events.__anext__()
        except ClientGone:
            return

    def streaming(body_iterator):
        return StreamingResponse(body_iterator, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    # -- routes

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_id, "running": admission.running, "waiting": len(admission.waiters)}

    def model_card():
        return {"id": model_id, "object": "model", "created": created, "owned_by": "qwen-embed"}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name}")
    async def one_model(name: str):
        if name != model_id:
            raise RequestError(404, f"no model {name!r}; this server serves {model_id!r}", kind="not_found_error")
        return model_card()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse_request(await read_json(request))
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        stamp = int(time.time())

        last = req.conversation[-1]
        if last["tool_calls"]:
            raise RequestError(400, "the last message must be the user's or a tool result", param="messages")
        history = req.conversation[:-1]

        def acquire():
            return model.acquire_session(history, system=req.system, tools=req.tools, n_ctx=n_ctx, kv_type=kv_type)

        wants_logprobs = "logprobs" in req.gen

        def work(session, on_text):
            sent = 0   # log probabilities streamed so far
            if req.stream and not react:   # the reply split as it streams: text, thought, calls
                for part in session.chat_parts([(last["role"], last["content"])], **req.gen):
                    if wants_logprobs:
                        entries = session.logprobs(sent)
                        sent += len(entries)
                        part = (part, entries)
                    on_text(part)
            else:
                session.chat([(last["role"], last["content"])], callback=None if req.tools else on_text, **req.gen)
            rest = session.logprobs(sent) if wants_logprobs else None
            return session.last_result, session.messages[-1], rest

        def call_entry(call):
            return {"id": "call_" + uuid.uuid4().hex[:24], "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]}}

        def message_of(reply):
            """The assistant message of a parsed reply as OpenAI writes it, and its finish reason."""
            calls = reply.get("tool_calls", [])
            message = {"role": "assistant", "content": reply["content"] or (None if calls else "")}
            if reply.get("reasoning") is not None:
                message["reasoning_content"] = reply["reasoning"]
            if not calls:
                return message, None
            if req.legacy_functions:
                message["function_call"] = {"name": calls[0]["name"], "arguments": calls[0]["arguments"]}
                return message, "function_call"
            message["tool_calls"] = [call_entry(call) for call in calls]
            return message, "tool_calls"

        def chunk(delta, finish=None, logprobs=None):
            return {"id": cid, "object": "chat.completion.chunk", "created": stamp, "model": model_id,
                    "choices": [{"index": 0, "delta": delta,
                                 "logprobs": {"content": openai_logprobs(logprobs)} if logprobs else None,
                                 "finish_reason": finish}]}

        def note(r):
            request.state.log_note = (f" chat {r['n_prompt_tokens']}+{r['n_generated_tokens']} tokens "
                                      f"({r['n_cached_tokens']} cached) {r['finish_reason']}")

        async def collect(events, first):
            r, reply, logprobs = await final_outcome(events, first)
            note(r)
            message, finish = message_of(reply) if req.tools or not react else ({"role": "assistant", "content": r["text"]}, None)
            return JSONResponse({
                "id": cid, "object": "chat.completion", "created": stamp, "model": model_id,
                "choices": [{"index": 0, "message": message,
                             "logprobs": {"content": openai_logprobs(logprobs)} if logprobs is not None else None,
                             "finish_reason": finish or FINISH.get(r["finish_reason"], "stop")}],
                "usage": usage(r)})

        calls_sent = []

        def piece(part):
            """The chunk of one streamed piece: raw text (Qwen v1), or a part of the split
            reply, with the log probabilities of the tokens since the last chunk when asked."""
            logprobs = None
            if wants_logprobs and isinstance(part, tuple) and isinstance(part[1], list):
                part, logprobs = part
            if isinstance(part, str):
                return chunk({"content": part}, logprobs=logprobs)
            kind, value = part
            if kind == "reasoning":
                return chunk({"reasoning_content": value}, logprobs=logprobs)
            if kind == "tool_call":
                calls_sent.append(value)
                if req.legacy_functions:
                    return chunk({"function_call": {"name": value["name"], "arguments": value["arguments"]}},
                                 logprobs=logprobs)
                return chunk({"tool_calls": [dict(call_entry(value), index=len(calls_sent) - 1)]}, logprobs=logprobs)
            return chunk({"content": value}, logprobs=logprobs)

        async def stream(events, first):
            def closing(outcome):
                r, reply, logprobs = outcome
                note(r)
                finish = FINISH.get(r["finish_reason"], "stop")
                events_out = []
                if calls_sent:
                    finish = "function_call" if req.legacy_functions else "tool_calls"
                elif req.tools and react:   # the parsed reply, once complete
                    message, call_finish = message_of(reply)
                    delta = {k: v for k, v in message.items() if k != "role"}
                    if "tool_calls" in delta:
                        delta["tool_calls"] = [dict(delta["tool_calls"][0], index=0)]
                    events_out.append(chunk(delta))
                    finish = call_finish or finish
                events_out.append(chunk({}, finish, logprobs=logprobs))
                if req.include_usage:
                    events_out.append({"id": cid, "object": "chat.completion.chunk", "created": stamp,
                                       "model": model_id, "choices": [], "usage": usage(r)})
                return events_out
            return streaming(sse_events(events, first, piece, closing,
                                        opening=chunk({"role": "assistant", "content": ""})))

        return await run(request, acquire, work, stream if req.stream else collect)

    @app.post("/v1/completions")
    async def completions(request: Request):
        prompt, gen, stream, include_usage = parse_completion_request(await read_json(request))
        cid = "cmpl-" + uuid.uuid4().hex[:24]
        stamp = int(time.time())

        def work(session, on_text):
            text = session.generate(prompt, callback=on_text, **gen)
            return session.last_result, text, session.logprobs() if "logprobs" in gen else None

        def choice(text, finish, logprobs=None):
            return {"id": cid, "object": "text_completion", "created": stamp, "model": model_id,
                    "choices": [{"index": 0, "text": text, "logprobs": logprobs, "finish_reason": finish}]}

        def note(r):
            request.state.log_note = f" generate {r['n_prompt_tokens']}+{r['n_generated_tokens']} tokens"

        async def collect(events, first):
            r, text, logprobs = await final_outcome(events, first)
            note(r)
            body = choice(text, FINISH.get(r["finish_reason"], "stop"),
                          legacy_logprobs(logprobs) if logprobs is not None else None)
            body["usage"] = usage(r)
            return JSONResponse(body)

        async def streamed(events, first):
            def closing(outcome):
                r, _, logprobs = outcome
                note(r)
                events_out = [choice("", FINISH.get(r["finish_reason"], "stop"),
                                     legacy_logprobs(logprobs) if logprobs is not None else None)]
                if include_usage:
                    events_out.append({"id": cid, "object": "text_completion", "created": stamp,
                                       "model": model_id, "choices": [], "usage": usage(r)})
                return events_out
            return streaming(sse_events(events, first, lambda text: choice(text, None), closing))

        return await run(request, lambda: model.acquire_prompt_session(prompt, n_ctx=n_ctx, kv_type=kv_type), work,
                         streamed if stream else collect)

    return app


# ---------------------------------------------------------------- command line

def main(argv=None):
    p = argparse.ArgumentParser(prog="qwen-embed-server",
                                description="OpenAI-compatible server and web chat page over qwen_embed.")
    p.add_argument("-m", "--model", required=True, help="a .gguf file or a Hugging Face checkpoint directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = any free port")
    p.add_argument("--parallel", type=int, default=4,
                   help="requests generating at once (decoded together, one session each)")
    p.add_argument("--queue", type=int, default=16, help="requests waiting for a slot; beyond that 429")
    p.add_argument("--threads", type=int, default=0,
                   help="threads of the model's compute pool, shared by all requests (0 = all cores)")
    p.add_argument("-c", "--ctx", type=int, default=0, help="context window per session (0 = model default)")
    p.add_argument("--kv-type", choices=["f16", "q8"], default="f16",
                   help="KV cache type of every session: q8 takes about half the memory (see BENCHMARKS.md)")
    p.add_argument("--model-id", default=None, help="the id /v1/models reports (default: the file name)")
    p.add_argument("--api-key", default=os.environ.get("QWEN_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1/* (default: $QWEN_API_KEY; none = open)")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = p.parse_args(argv)
    if args.parallel < 1 or args.queue < 0 or args.threads < 0:
        p.error("--parallel must be >= 1, --queue and --threads >= 0")

    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    try:
        import socket

        import fastapi  # noqa: F401 - create_app imports it; checked here for a clear message
        import uvicorn
    except ImportError as e:
        print(f"qwen-embed-server: {e.name} is missing; install the server extra: pip install 'qwen-embed[server]'",
              file=sys.stderr)
        return 1
    try:
        model = qwen_embed.Model(args.model, n_threads=args.threads, n_cached_sessions=max(16, 2 * args.parallel))
    except (qwen_embed.QwenError, qwen_embed.LibraryError) as e:
        print(f"qwen-embed-server: {e}", file=sys.stderr)
        return 1
    model_id = args.model_id or pathlib.Path(args.model.rstrip("/")).name
    if model_id.endswith(".gguf"):
        model_id = model_id[:-5]
    app = create_app(model, model_id, args.parallel, args.queue, args.ctx, args.api_key, args.kv_type)
    try:
        family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((args.host, args.port))
        sock.listen(2048)
    except OSError as e:
        print(f"qwen-embed-server: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        model.close()
        return 1
    host, port = sock.getsockname()[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    log.info("serving %s from %s: %d at once, %d waiting, %s compute threads%s", model_id,
             os.path.abspath(args.model), args.parallel, args.queue, args.threads or "all",
             ", API key required" if args.api_key else "")
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=30,
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
