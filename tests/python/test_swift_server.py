"""qwen-swift-server (examples/swift-server: QwenEmbed embedded in a Hummingbird 2 app)
on the real model, through the official `openai` client and raw sockets: chat streamed
and not (the chunks join into the non-streamed text), completions, a tool-call round trip,
/v1/models, /health, the page at /, 400s naming the bad field, admission (429 with
Retry-After), the API key, and clients that hang up (mid-stream, while waiting, during a
non-streamed prefill) freeing the server at once.

The binary is built by `make swift-server` (which `make test` runs; QWEN_SWIFT_SERVER may
name another build)."""
import http.client
import json
import os
import pathlib
import socket
import time

import pytest

from conftest import ListeningProcess

openai = pytest.importorskip("openai")

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(os.environ.get("QWEN_SWIFT_SERVER",
                                     ROOT / "examples" / "swift-server" / ".build" / "release" / "qwen-swift-server"))
PAGE = ROOT / "bindings" / "python" / "qwen_embed" / "web" / "chat.html"
PARALLEL, QUEUE = 1, 1
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ESSAY = "Write a very long essay about the history of computing, with many details."

if not os.access(BINARY, os.X_OK):
    pytest.fail(f"{BINARY} is not built: make swift-server (make test builds it)", pytrace=False)


class SwiftServer(ListeningProcess):
    """qwen-swift-server on 127.0.0.1, a free port; its stderr is the request log."""

    def __init__(self, model: str, *args: str):
        super().__init__([str(BINARY), "-m", model, "--host", "127.0.0.1", "--port", "0", *args], startup_seconds=120)

    def connection(self, timeout=120):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        """(status, headers, parsed JSON or text) of one request on a new connection."""
        c = self.connection()
        data = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
        c.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
        r = c.getresponse()
        raw = r.read().decode()
        c.close()
        try:
            return r.status, r.headers, json.loads(raw)
        except ValueError:
            return r.status, r.headers, raw

    def health(self):
        return self.request("GET", "/health")[2]

    def wait_idle(self, seconds):
        """Seconds until no request runs or waits (fails after `seconds`)."""
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            h = self.health()
            if h["running"] == 0 and h["waiting"] == 0:
                return time.monotonic() - start
            time.sleep(0.05)
        raise AssertionError(f"still busy after {seconds} s: {self.health()}\n{self.log()[-3000:]}")


@pytest.fixture(scope="module")
def server(model_path):
    s = SwiftServer(model_path, "--parallel", str(PARALLEL), "--queue", str(QUEUE))
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def start_stream(server, content=ESSAY, max_tokens=1500, wait=True):
    """A raw streaming chat request; returns its socket once content chunks flow (wait=False: at once)."""
    body = json.dumps({"messages": [{"role": "user", "content": content}], "stream": True,
                       "max_tokens": max_tokens, "temperature": 0.7}).encode()
    sock = socket.create_connection((server.host, server.port), timeout=120)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    seen = b""
    while wait and seen.count(b'"content"') < 4:
        data = sock.recv(4096)
        assert data, seen
        seen += data
    assert not wait or seen.startswith(b"HTTP/1.1 200"), seen[:200]
    return sock


def test_chat_plain_and_streamed_chunks_join_into_the_same_text(client):
    messages = [{"role": "user", "content": "What is the capital of France? One sentence."}]
    r = client.chat.completions.create(model="qwen", messages=messages, temperature=0, max_tokens=16)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant" and "Paris" in choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 10
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens

    chunks = list(client.chat.completions.create(model="qwen", messages=messages, temperature=0, max_tokens=16,
                                                 stream=True, stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [choice.finish_reason]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == r.usage.completion_tokens

    # A follow-up turn re-sends the conversation (system and assistant messages included).
    follow = [{"role": "system", "content": "You are terse."}] + messages + [
        {"role": "assistant", "content": choice.message.content}, {"role": "user", "content": "And of Germany?"}]
    r2 = client.chat.completions.create(model="qwen", messages=follow, temperature=0, max_tokens=16)
    assert "Berlin" in r2.choices[0].message.content
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens
    # Once more with the reply: the engine's prompt cache hands back the session holding it.
    follow += [{"role": "assistant", "content": r2.choices[0].message.content}, {"role": "user", "content": "And of Spain?"}]
    r3 = client.chat.completions.create(model="qwen", messages=follow, temperature=0, max_tokens=8)
    assert r3.usage.prompt_tokens_details.cached_tokens > r2.usage.prompt_tokens // 2


def test_completions_streamed_and_not(client):
    r = client.completions.create(model="qwen", prompt="def fibonacci(n):", max_tokens=12, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text.strip()
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 12
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="qwen", prompt="def fibonacci(n):", max_tokens=12, temperature=0, stream=True) if c.choices)
    assert streamed == r.choices[0].text


def check_reply(choice):
    """A tools reply is well-formed either way: a tool call (finish_reason tool_calls) or
    content (stop or length)."""
    message = choice.message
    assert message.role == "assistant"
    if choice.finish_reason == "tool_calls":
        assert message.tool_calls and len(message.tool_calls) == 1
        call = message.tool_calls[0]
        assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
        assert isinstance(call.function.arguments, str)
    else:
        assert choice.finish_reason in ("stop", "length") and not message.tool_calls
        assert isinstance(message.content, str)


def test_tool_call_round_trip(client):
    """Tools offered -> a tool call or an answer; a tool result sent back gets an answer.
    (The 0.5B model does not reliably call tools, so both outcomes are accepted.)"""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER], temperature=0,
                                       max_tokens=64)
    check_reply(r.choices[0])
    if r.choices[0].finish_reason == "tool_calls":
        assistant = r.choices[0].message.model_dump(exclude_none=True)
        call_id = r.choices[0].message.tool_calls[0].id
    else:   # the model answered: the client's round trip as it would be after a call
        call_id = "call_0"
        assistant = {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    followed = messages + [assistant, {"role": "tool", "tool_call_id": call_id,
                                       "content": json.dumps({"temperature_c": 21})}]
    r2 = client.chat.completions.create(model="qwen", messages=followed, tools=[WEATHER], temperature=0,
                                        max_tokens=64)
    check_reply(r2.choices[0])
    if r2.choices[0].finish_reason != "tool_calls":
        assert r2.choices[0].message.content.strip()
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens

    # Streamed with tools: the parsed reply arrives once complete, with one finish reason
    # that agrees with it.
    chunks = list(client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER],
                                                 temperature=0, max_tokens=64, stream=True))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [r.choices[0].finish_reason]
    called = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
    assert bool(called) == (finishes[0] == "tool_calls")
    if called:
        assert called[0][0].index == 0 and called[0][0].function.name == "get_weather"

    # Legacy functions answer with function_call; tool_choice "none" and a named tool are accepted.
    legacy = client.chat.completions.create(model="qwen", messages=messages, functions=[WEATHER["function"]],
                                            temperature=0, max_tokens=64)
    assert legacy.choices[0].finish_reason in ("function_call", "stop", "length")
    assert (legacy.choices[0].message.function_call is not None) == (legacy.choices[0].finish_reason == "function_call")
    plain = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER], tool_choice="none",
                                           temperature=0, max_tokens=8)
    assert plain.choices[0].finish_reason in ("stop", "length") and not plain.choices[0].message.tool_calls
    named = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER], temperature=0,
                                           max_tokens=8,
                                           tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert named.choices[0].finish_reason in ("tool_calls", "stop", "length")


def test_models_health_and_page(server, client):
    models = client.models.list()
    assert [m.id for m in models.data] == ["qwen2.5-coder-0.5b-instruct"] and models.data[0].object == "model"
    assert client.models.retrieve("qwen2.5-coder-0.5b-instruct").owned_by == "qwen-embed"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    status, _, body = server.request("GET", "/health")
    assert status == 200 and body == {"status": "ok", "model": "qwen2.5-coder-0.5b-instruct", "running": 0,
                                      "waiting": 0}
    c = server.connection()
    c.request("GET", "/")
    r = c.getresponse()
    page = r.read().decode()
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/html")
    assert page == PAGE.read_text(encoding="utf-8") and 'id="stop"' in page
    c.close()


def test_bad_requests_are_400s_naming_the_field(server, client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}], n=2)
    assert refused.value.body["param"] == "n" and "n" in refused.value.body["message"]
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "hi"}], temperature=5)
    assert refused.value.body["param"] == "temperature"

    hi = [{"role": "user", "content": "hi"}]
    cases = [
        ({"messages": hi, "logprobs": True}, "logprobs"),
        ({"messages": hi, "response_format": {"type": "json_object"}}, "response_format"),
        ({"messages": hi, "tools": [WEATHER], "tool_choice": "required"}, "tool_choice"),
        ({"messages": hi, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
         "tool_choice"),
        ({"messages": hi, "tools": [{"type": "function"}]}, "tools[0]"),
        ({"messages": hi, "tools": {"a": 1}}, "tools"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": ["user"], "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": [["hi"]]}]}, "messages[0].content"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": ""}}]}]}, "messages[0].tool_calls"),
        ({"messages": []}, "messages"),
        ({"messages": "hi"}, "messages"),
        ({"messages": hi, "max_tokens": -1}, "max_tokens"),
        ({"messages": hi, "max_tokens": 1.5}, "max_tokens"),
        ({"messages": hi, "top_k": -1}, "top_k"),
        ({"messages": hi, "top_p": 0}, "top_p"),
        ({"messages": hi, "repetition_penalty": 0}, "repetition_penalty"),
        ({"messages": hi, "seed": "7"}, "seed"),
        ({"messages": hi, "seed": 18446744073709551616}, "seed"),
        ({"messages": hi, "stop": [1]}, "stop"),
        ({"messages": hi, "stream": "yes"}, "stream"),
        ({"messages": hi, "stream_options": 3}, "stream_options"),
    ]
    c = server.connection()
    for body, param in cases:
        c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        error = json.loads(r.read())["error"]
        assert r.status == 400 and error["param"] == param and error["type"] == "invalid_request_error", (body, error)
        assert error["message"], body
    # The same kept-alive connection still answers.
    c.request("GET", "/health")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    for body, param in [({"prompt": ""}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"),
                        ({"prompt": "x", "echo": True}, "echo"), ({"prompt": "x", "best_of": 2}, "best_of")]:
        c.request("POST", "/v1/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        error = json.loads(r.read())["error"]
        assert r.status == 400 and error["param"] == param, (body, error)
    for raw in ("{not json", "[1, 2", '{"messages": "\\ud800"}', "\"x\" 1", "[" * 5000):
        c.request("POST", "/v1/chat/completions", raw, {"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 400 and "not valid JSON" in json.loads(r.read())["error"]["message"], raw
    c.request("POST", "/v1/chat/completions", b"\xff\xfe", {"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 400 and "not valid JSON" in json.loads(r.read())["error"]["message"]
    for method, path in (("POST", "/nope"), ("GET", "/v1/nope"), ("DELETE", "/v1/models")):
        c.request(method, path)
        r = c.getresponse()
        assert r.status in (404, 405) and "error" in json.loads(r.read())
    c.close()
    c = server.connection()
    c.putrequest("POST", "/v1/chat/completions")
    c.putheader("Content-Length", str(64 * 1024 * 1024))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413 and "error" in json.loads(r.read())
    c.close()
    assert server.health()["running"] == 0
    assert '"POST /v1/chat/completions" 400' in server.log()    # the request log


def test_hangups_free_the_server(server, client):
    """A client that hangs up mid-stream and one that leaves while waiting for the slot are
    cancelled at once; a third, beyond the line, gets a 429 with Retry-After; the next
    request is answered promptly."""
    streaming = start_stream(server)
    waiting = start_stream(server, wait=False)
    deadline = time.monotonic() + 5
    while server.health()["waiting"] < QUEUE and time.monotonic() < deadline:
        time.sleep(0.05)
    h = server.health()
    assert h["running"] == PARALLEL and h["waiting"] == QUEUE, h
    status, headers, body = server.request("POST", "/v1/chat/completions",
                                           {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert status == 429 and headers["Retry-After"].isdigit() and body["error"]["type"] == "rate_limit_error"

    waiting.close()
    deadline = time.monotonic() + 5
    while server.health()["waiting"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.health()["waiting"] == 0 and server.health()["running"] == 1
    streaming.close()
    assert server.wait_idle(5) < 5
    start = time.monotonic()
    r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "Say OK."}],
                                       temperature=0, max_tokens=4)
    assert r.choices[0].message.content and time.monotonic() - start < 10
    assert server.log().count("(client left") >= 2, server.log()[-3000:]


def test_non_streamed_hangup_during_prefill(server):
    """A non-streamed request whose client leaves during a long prefill is cancelled."""
    body = json.dumps({"messages": [{"role": "user", "content": "Summarize: " + "lorem ipsum dolor " * 1500}],
                       "max_tokens": 8}).encode()
    sock = socket.create_connection((server.host, server.port), timeout=60)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(1.0)
    assert server.health()["running"] == 1      # prefilling
    sock.close()
    assert server.wait_idle(5) < 5


def test_api_key(model_path):
    s = SwiftServer(model_path, "--api-key", "sesame", "--quiet")
    try:
        assert s.request("GET", "/v1/models")[0] == 401
        assert s.request("GET", "/v1/models", headers={"Authorization": "Bearer wrong"})[2]["error"]["code"] \
            == "invalid_api_key"
        assert s.request("GET", "/health")[0] == 200 and s.request("GET", "/")[0] == 200
        keyed = openai.OpenAI(base_url=s.url + "/v1", api_key="sesame", max_retries=0, timeout=60)
        assert keyed.models.list().data[0].id == "qwen2.5-coder-0.5b-instruct"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).models.list()
        # Preflights need no key.
        c = s.connection()
        c.request("OPTIONS", "/v1/chat/completions", headers={
            "Origin": "http://example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        r = c.getresponse()
        r.read()
        assert r.status in (200, 204) and r.headers["Access-Control-Allow-Origin"] == "*"
        c.close()
        assert s.log() == ""   # --quiet
    finally:
        s.close()


def test_sigterm_ends_running_calls_and_lingering_connections(model_path):
    """On SIGTERM the running generation is cancelled (its client told why) and a
    connection whose client wrote again after its generation's response does not hold
    the server: it exits at once."""
    s = SwiftServer(model_path, "--parallel", "1", "--quiet")
    try:
        body = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}).encode()
        lingering = socket.create_connection((s.host, s.port), timeout=30)
        lingering.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        reply = b""
        while b'"chat.completion"' not in reply:
            data = lingering.recv(4096)
            assert data, reply
            reply += data
        assert b"Connection: close" in reply
        try:   # a client that ignores Connection: close
            lingering.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError:
            pass
        streaming = start_stream(s)
        start = time.monotonic()
        s.proc.terminate()
        assert s.proc.wait(10) == 0 and time.monotonic() - start < 5
        rest = b""
        while True:
            data = streaming.recv(4096)
            if not data:
                break
            rest += data
        assert b"shutting down" in rest and b"[DONE]" not in rest
        lingering.close()
        streaming.close()
    finally:
        s.close()
