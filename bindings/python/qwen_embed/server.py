"""A small OpenAI-compatible chat server over qwen_embed, standard library only.

    qwen-embed-server -m MODEL [--host 127.0.0.1] [--port 8000] [--threads N]
    (from a source checkout: python examples/python/openai_server.py -m MODEL ...)

Endpoints
    POST /v1/chat/completions   messages, max_tokens (or max_completion_tokens),
                                temperature, top_p, stop, seed, stream (SSE chunks,
                                then "data: [DONE]"), stream_options.include_usage
    GET  /v1/models             the one model served
    GET  /health

Each request runs on a session taken from a small pool (one per concurrent request,
--parallel of them). The pool prefers a session whose history is a prefix of the
request's conversation, so a client that sends the whole conversation every turn
(as OpenAI clients do) only pays for the new messages: the rest is in that
session's KV cache. --port 0 picks a free port; the first stdout line is always
"listening on http://HOST:PORT".
"""
import argparse
import json
import os
import pathlib
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import qwen_embed

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_BODY = 32 * 1024 * 1024


class RequestError(Exception):
    def __init__(self, status, message, code=None, param=None, kind="invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.kind = status, message, code, param, kind


# ------------------------------------------------------------------- pool

class SessionPool:
    """At most ``size`` sessions; a request borrows one for its duration."""

    def __init__(self, model, size, n_ctx=0):
        self.model, self.size, self.n_ctx = model, max(1, size), n_ctx
        self.cond = threading.Condition()
        self.idle = []        # least recently used first
        self.created = 0
        self.closed = False

    @staticmethod
    def _reuse(session, system, conversation):
        """How many of ``conversation``'s messages ``session`` already holds (-1: none usable)."""
        if session.system_prompt != system:
            return -1
        history = session._raw_history()
        if len(history) < len(conversation) and conversation[:len(history)] == history:
            return len(history)
        return -1

    def acquire(self, system, conversation, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.closed:
                    raise RequestError(503, "the server is shutting down", kind="server_error")
                if self.idle:
                    scores = [self._reuse(s, system, conversation) for s in self.idle]
                    best = max(range(len(self.idle)), key=lambda i: (scores[i], -i))
                    # No idle session holds part of this conversation: rather than wipe
                    # one's cache, open another while the pool has room.
                    if scores[best] >= 0 or self.created >= self.size:
                        return self.idle.pop(best)
                if self.created < self.size:
                    self.created += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RequestError(503, "all sessions are busy; try again later", kind="server_error")
                self.cond.wait(left)
        try:
            return self.model.session(n_ctx=self.n_ctx)
        except BaseException:
            with self.cond:
                self.created -= 1
                self.cond.notify()
            raise

    def release(self, session):
        with self.cond:
            if self.closed:
                session.close()
                return
            self.idle.append(session)
            self.cond.notify()

    def close(self):
        with self.cond:
            self.closed = True
            idle, self.idle = self.idle, []
            self.cond.notify_all()
        for s in idle:
            s.close()


# ---------------------------------------------------------------- request

def text_of(content, index):
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
                raise RequestError(400, f"messages[{index}].content: only text parts are supported",
                                   param=f"messages[{index}].content")
        return "".join(parts)
    raise RequestError(400, f"messages[{index}].content must be a string or a list of text parts",
                       param=f"messages[{index}].content")


def parse_request(body):
    """-> (system, conversation [(role, text)], generation kwargs, stream, include_usage)"""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, "messages must be a non-empty list", param="messages")
    systems, conversation = [], []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise RequestError(400, f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = ROLES.get(m.get("role")) if isinstance(m.get("role"), str) else None
        if role is None:
            raise RequestError(400, f"messages[{i}].role {m.get('role')!r} is not supported "
                                    "(system, developer, user, assistant)", param=f"messages[{i}].role")
        text = text_of(m.get("content"), i)
        if role == "system":
            systems.append(text)
        else:
            conversation.append((role, text))
    if not conversation:
        raise RequestError(400, "messages holds no user or assistant message", param="messages")
    system = "\n\n".join(systems) if systems else qwen_embed.DEFAULT_SYSTEM_PROMPT
    if body.get("n", 1) != 1:
        raise RequestError(400, "only n = 1 is supported", param="n")

    gen = {}

    def number(name, kind, target=None, low=None, high=None):
        value = body.get(name)
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise RequestError(400, f"{name} must be a{'n integer' if kind is int else ' number'}", param=name)
        if (low is not None and value < low) or (high is not None and value > high):
            raise RequestError(400, f"{name} must be in [{low}, {high}]", param=name)
        gen[target or name] = kind(value)

    number("max_tokens", int, low=1)
    number("max_completion_tokens", int, target="max_tokens", low=1)
    number("temperature", float, low=0, high=2)
    number("top_p", float, low=0, high=1)
    number("seed", int, low=0, high=2 ** 64 - 1)
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise RequestError(400, "stop must be a string or a list of strings", param="stop")
        stop = [s for s in stop if s]
        if stop:
            gen["stop"] = stop
    stream = bool(body.get("stream", False))
    options = body.get("stream_options") or {}
    include_usage = bool(isinstance(options, dict) and options.get("include_usage"))
    return system, conversation, gen, stream, include_usage


ERROR_STATUS = {
    qwen_embed.InvalidArgumentError: 400,
    qwen_embed.ContextFullError: 400,
    qwen_embed.BusyError: 503,
    qwen_embed.CancelledError: 503,
    qwen_embed.QwenNotImplementedError: 501,
}


def request_error(e):
    if isinstance(e, RequestError):
        return e
    if isinstance(e, qwen_embed.QwenError):
        status = next((code for cls, code in ERROR_STATUS.items() if isinstance(e, cls)), 500)
        code = "context_length_exceeded" if isinstance(e, qwen_embed.ContextFullError) else None
        return RequestError(status, str(e), code=code,
                            kind="invalid_request_error" if status == 400 else "server_error")
    return RequestError(500, f"internal error: {e!r}", kind="server_error")


FINISH = {"stop": "stop", "length": "length", "callback": "stop"}


# ---------------------------------------------------------------- handler

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qwen-embed-openai/0.1"
    # set on the class by make_server
    pool = None
    model_id = "qwen"
    created = 0
    queue_timeout = 300.0
    quiet = False

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    # -- plumbing

    def _send_json(self, status, obj, extra_headers=()):
        data = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Access-Control-Allow-Origin", "*")
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, err):
        self._send_json(err.status, {"error": {"message": err.message, "type": err.kind,
                                               "param": err.param, "code": err.code}})

    def _sse(self, obj):
        payload = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False)
        self.wfile.write(b"data: " + payload.encode("utf-8") + b"\n\n")
        self.wfile.flush()

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError(411, "Content-Length is required")
        try:
            length = int(length)
        except ValueError:
            raise RequestError(400, "bad Content-Length") from None
        if length < 0 or length > MAX_BODY:
            raise RequestError(413, "request body too large")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RequestError(400, f"the body is not valid JSON: {e}") from None

    # -- routes

    def do_OPTIONS(self):
        self.send_response(204)
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", "Content-Type, Authorization")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [self._model_card()]})
        elif path == f"/v1/models/{self.model_id}":
            self._send_json(200, self._model_card())
        elif path in ("/health", ""):
            self._send_json(200, {"status": "ok", "model": self.model_id})
        else:
            self._send_error(RequestError(404, f"no route GET {path}", kind="not_found_error"))

    def _model_card(self):
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "qwen-embed"}

    def do_POST(self):
        path = self.path.split("?", 1)[0].rstrip("/")
        if path != "/v1/chat/completions":
            self._send_error(RequestError(404, f"no route POST {path}", kind="not_found_error"))
            return
        try:
            system, conversation, gen, stream, include_usage = parse_request(self._read_json())
        except RequestError as e:
            self._send_error(e)
            return
        roles = {"user": qwen_embed.model.ROLES["user"], "assistant": qwen_embed.model.ROLES["assistant"]}
        conversation = [(roles[r], t) for r, t in conversation]
        try:
            session = self.pool.acquire(system, conversation, self.queue_timeout)
        except BaseException as e:  # noqa: BLE001
            self._send_error(request_error(e))
            return
        try:
            self._complete(session, system, conversation, gen, stream, include_usage)
        finally:
            self.pool.release(session)

    def _complete(self, session, system, conversation, gen, stream, include_usage):
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())
        headers_sent = False
        try:
            todo = session.prepare(system, conversation)
            if not stream:
                text = session.chat(todo, **gen)
                r = session.last_result
                self._send_json(200, {
                    "id": cid, "object": "chat.completion", "created": created, "model": self.model_id,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "logprobs": None, "finish_reason": FINISH.get(r["finish_reason"], "stop")}],
                    "usage": self._usage(r),
                })
                return
            deltas = session.chat(todo, stream=True, **gen)
            # Begin and prefill before the headers, so that a failure there (context
            # full, bad parameters) still gets a proper HTTP status.
            first = next(deltas, None)
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.send_header("Access-Control-Allow-Origin", "*")
            self.end_headers()
            self.close_connection = True
            headers_sent = True

            def chunk(delta, finish=None):
                return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": self.model_id,
                        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            try:
                self._sse(chunk({"role": "assistant", "content": ""}))
                if first:
                    self._sse(chunk({"content": first}))
                for text in deltas:
                    self._sse(chunk({"content": text}))
            except (BrokenPipeError, ConnectionResetError):
                deltas.close()  # the client left: stop generating, free the session
                return
            finally:
                deltas.close()
            r = session.last_result
            self._sse(chunk({}, FINISH.get(r["finish_reason"], "stop")))
            if include_usage:
                self._sse({"id": cid, "object": "chat.completion.chunk", "created": created,
                           "model": self.model_id, "choices": [], "usage": self._usage(r)})
            self._sse("[DONE]")
        except (BrokenPipeError, ConnectionResetError):
            return
        except BaseException as e:  # noqa: BLE001 - every failure becomes an OpenAI error object
            err = request_error(e)
            if not headers_sent:
                self._send_error(err)
            else:
                try:
                    self._sse({"error": {"message": err.message, "type": err.kind, "param": err.param,
                                         "code": err.code}})
                except OSError:
                    pass

    @staticmethod
    def _usage(r):
        return {"prompt_tokens": r["n_prompt_tokens"], "completion_tokens": r["n_generated_tokens"],
                "total_tokens": r["n_prompt_tokens"] + r["n_generated_tokens"],
                "prompt_tokens_details": {"cached_tokens": r["n_cached_tokens"]}}


def make_server(model, host, port, parallel=2, n_ctx=0, model_id=None, queue_timeout=300.0, quiet=False):
    pool = SessionPool(model, parallel, n_ctx)
    handler = type("QwenHandler", (Handler,), {
        "pool": pool, "model_id": model_id or "qwen", "created": int(time.time()),
        "queue_timeout": queue_timeout, "quiet": quiet,
    })
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.pool = pool
    return server


def main(argv=None):
    p = argparse.ArgumentParser(description="OpenAI-compatible chat server over qwen_embed.")
    p.add_argument("-m", "--model", required=True, help="a .gguf file or a Hugging Face checkpoint directory")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 = any free port")
    p.add_argument("--threads", type=int, default=0, help="compute threads per request (0 = all cores)")
    p.add_argument("--parallel", type=int, default=2, help="sessions, i.e. requests served at once")
    p.add_argument("-c", "--ctx", type=int, default=0, help="context window per session (0 = model default)")
    p.add_argument("--model-id", default=None, help="the id /v1/models reports (default: the file name)")
    p.add_argument("--queue-timeout", type=float, default=300.0, help="seconds a request waits for a session")
    p.add_argument("--quiet", action="store_true", help="no request log on stderr")
    args = p.parse_args(argv)

    try:
        model = qwen_embed.Model(args.model, n_threads=args.threads)
    except (qwen_embed.QwenError, qwen_embed.LibraryError) as e:
        print(f"qwen-embed-server: {e}", file=sys.stderr)
        return 1
    model_id = args.model_id or pathlib.Path(args.model.rstrip("/")).name
    if model_id.endswith(".gguf"):
        model_id = model_id[:-5]
    try:
        server = make_server(model, args.host, args.port, args.parallel, args.ctx, model_id,
                             args.queue_timeout, args.quiet)
    except OSError as e:
        print(f"qwen-embed-server: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}", flush=True)
    print(f"serving {model_id} from {os.path.abspath(args.model)}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.pool.close()
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
