"""qwen-embed-server (FastAPI + uvicorn) on the real model, through the official
`openai` client and raw sockets: chat and completions, streamed and not, a tool-call
round trip, clients hanging up (streamed, and during a non-streamed prefill), bad
requests with keep-alive intact, the API key, a 500's traceback in the log, and 100
concurrent streaming clients answered or refused with 429 by design."""
import asyncio
import http.client
import json
import logging
import pathlib
import socket
import sys
import time
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))
sys.path.insert(0, str(ROOT / "scripts"))

import openai  # noqa: E402

import qwen_embed  # noqa: E402
import qwen_embed.server  # noqa: E402
from bench_server import concurrent_streams  # noqa: E402
from conftest import ServerProcess  # noqa: E402

PARALLEL, QUEUE = 2, 16
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather of a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ESSAY = "Write a very long essay about the history of computing, with many details."


@pytest.fixture(scope="module")
def server(model_path):
    s = ServerProcess(model_path, "--parallel", str(PARALLEL), "--queue", str(QUEUE))
    yield s
    s.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=300)


def connection(server):
    parts = urllib.parse.urlsplit(server.url)
    return http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)


def health(server):
    c = connection(server)
    c.request("GET", "/health")
    body = json.loads(c.getresponse().read())
    c.close()
    return body


def wait_idle(server, seconds):
    """Seconds until no request is running or waiting (fails after `seconds`)."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        h = health(server)
        if h["running"] == 0 and h["waiting"] == 0:
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"still busy after {seconds} s: {health(server)}\n{server.log()[-3000:]}")


def test_chat_plain_and_streamed_with_the_openai_client(client):
    messages = [{"role": "user", "content": "What is the capital of France? One sentence."}]
    r = client.chat.completions.create(model="qwen", messages=messages, temperature=0, max_tokens=16)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert "Paris" in r.choices[0].message.content
    assert r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 10

    stream = client.chat.completions.create(model="qwen", messages=messages, temperature=0, max_tokens=16,
                                            stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Paris" in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0

    # The next turn re-sends the conversation; the pool's session holds its prefix.
    follow = messages + [{"role": "assistant", "content": r.choices[0].message.content},
                         {"role": "user", "content": "And of Germany?"}]
    r2 = client.chat.completions.create(model="qwen", messages=follow, temperature=0, max_tokens=16)
    assert "Berlin" in r2.choices[0].message.content
    assert r2.usage.prompt_tokens_details.cached_tokens > r.usage.prompt_tokens // 2


def test_completions(client):
    r = client.completions.create(model="qwen", prompt="def fibonacci(n):", max_tokens=12, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text.strip()
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model="qwen", prompt="def fibonacci(n):", max_tokens=12, temperature=0, stream=True) if c.choices)
    assert streamed.strip()


def test_tool_call_round_trip(client):
    """tool call -> tool result -> final answer, as an OpenAI client drives it."""
    messages = [{"role": "user", "content": "What is the weather in Paris right now? Use the get_weather tool."}]
    r = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER], temperature=0,
                                       max_tokens=96)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id.startswith("call_") and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps({"city": "Paris", "temperature_c": 21, "sky": "sunny"})})
    r2 = client.chat.completions.create(model="qwen", messages=messages, tools=[WEATHER], temperature=0,
                                        extra_body={"repetition_penalty": 1.0}, max_tokens=96)
    final = r2.choices[0]
    # The result reached the model (the call and the <tool_response> turn added to the prompt)
    # on the first request's cached prefix. This 0.5B model then repeats its call object and
    # echoes the result instead of answering in words (llama-server --jinja, same prompt, does
    # the same): several objects that are not all calls stay text.
    assert r2.usage.prompt_tokens > r.usage.prompt_tokens + 20
    assert r2.usage.prompt_tokens_details.cached_tokens > r.usage.prompt_tokens // 2   # same session, reused
    assert final.finish_reason == "stop" and not final.message.tool_calls
    assert "21" in final.message.content

    # Streamed with tools: text as it comes, the call once its block closes.
    chunks = list(client.chat.completions.create(model="qwen", messages=messages[:1], tools=[WEATHER],
                                                 temperature=0, max_tokens=96, stream=True))
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["tool_calls"]
    streamed = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert [(t.index, t.function.name, json.loads(t.function.arguments)) for t in streamed] == \
        [(0, "get_weather", {"city": "Paris"})]
    assert not any("<tool_call>" in (c.choices[0].delta.content or "") for c in chunks if c.choices)

    # Legacy functions get a function_call; tool_choice "none" offers no tools.
    legacy = client.chat.completions.create(model="qwen", messages=messages[:1], functions=[WEATHER["function"]],
                                            temperature=0, max_tokens=96)
    assert legacy.choices[0].finish_reason == "function_call" and legacy.choices[0].message.function_call.name
    plain = client.chat.completions.create(model="qwen", messages=messages[:1], tools=[WEATHER],
                                           tool_choice="none", temperature=0, max_tokens=8)
    assert plain.choices[0].finish_reason in ("stop", "length") and not plain.choices[0].message.tool_calls


def start_stream(server, content=ESSAY, max_tokens=1500, wait=True):
    """A raw streaming request; returns the socket once content chunks are flowing
    (wait=False: at once)."""
    body = json.dumps({"messages": [{"role": "user", "content": content}], "stream": True,
                       "max_tokens": max_tokens, "temperature": 0.7}).encode()
    parts = urllib.parse.urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=120)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    seen = b""
    while wait and seen.count(b'"content"') < 4:
        data = sock.recv(4096)
        assert data, seen
        seen += data
    assert not wait or seen.startswith(b"HTTP/1.1 200"), seen[:200]
    return sock


def test_hangups_free_their_slots(server, client):
    """Three clients hang up: two mid-stream, one waiting in line; the next request is
    answered at once (their generations were cancelled, not left running for 1500 tokens)."""
    socks = [start_stream(server) for _ in range(PARALLEL)]
    socks.append(start_stream(server, wait=False))
    time.sleep(0.5)
    assert health(server)["waiting"] == 1
    for s in socks:
        s.close()
    assert wait_idle(server, 5) < 5
    start = time.monotonic()
    r = client.chat.completions.create(model="qwen", messages=[{"role": "user", "content": "Say OK."}],
                                       temperature=0, max_tokens=4)
    assert r.choices[0].message.content and time.monotonic() - start < 10
    assert server.log().count("(client left") >= 3, server.log()[-3000:]


def test_non_streamed_hangup_during_prefill(server):
    """A non-streamed request whose client leaves during a long prefill is cancelled."""
    body = json.dumps({"messages": [{"role": "user", "content": "Summarize: " + "lorem ipsum dolor " * 1500}],
                       "max_tokens": 8}).encode()
    parts = urllib.parse.urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=60)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    time.sleep(1.0)
    assert health(server)["running"] == 1      # prefilling
    sock.close()
    assert wait_idle(server, 5) < 5


def test_bad_requests_name_the_field_and_keep_the_connection(server):
    c = connection(server)
    refused = [
        ({"messages": [{"role": "user", "content": "hi"}], "n": 2}, 400, "n"),
        ({"messages": [{"role": "user", "content": "hi"}], "logprobs": True, "top_logprobs": 21}, 400, "top_logprobs"),
        ({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "xml"}}, 400, "response_format"),
        ({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "string", "pattern": "^(?=a)a+$"}}}}, 400, "lookaround"),
        ({"messages": [{"role": "user", "content": "hi"}], "tool_choice": "required"}, 400, "tool_choice"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 400, "role"),
        ({"messages": [{"role": "tool", "content": "42"}]}, 400, "tool result must follow"),
        ({"messages": []}, 400, "messages"),
    ]
    for body, status, words in refused:
        c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        error = json.loads(r.read())["error"]
        assert r.status == status and words in error["message"], (body, r.status, error)
        # The same kept-alive connection serves the next request.
        c.request("GET", "/health")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read())["status"] == "ok"
    for method, path in (("POST", "/nope"), ("GET", "/v1/nope"), ("DELETE", "/v1/models")):
        c.request(method, path, json.dumps({"padding": "x" * 5000}), {"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status in (404, 405) and "error" in json.loads(r.read())
        c.request("GET", "/v1/models")
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read())["data"][0]["object"] == "model"
    c.request("POST", "/v1/chat/completions", "{not json", {"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 400 and "not valid JSON" in json.loads(r.read())["error"]["message"]
    c.close()
    c = connection(server)
    c.putrequest("POST", "/v1/chat/completions")
    c.putheader("Content-Length", str(64 * 1024 * 1024))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413
    c.close()
    assert '"POST /v1/chat/completions" 400' in server.log()    # the request log


def test_100_concurrent_streams_answered_or_refused_with_429(server):
    """100 streaming clients at once: each is served (its stream completes) or refused
    with 429 + Retry-After by design; nothing else fails."""
    result = asyncio.run(concurrent_streams(server.url, 100, max_tokens=8))
    assert result["other_failures"] == [], result["other_failures"][:3]
    assert result["served"] + result["refused"] == 100
    assert result["served"] >= PARALLEL + QUEUE and result["refused"] > 0
    assert result["retry_after_missing"] == 0
    print(f"\n100 streams: {result['served']} served, {result['refused']} refused (429); first token "
          f"p50 {result['ttft_p50']:.2f} s p99 {result['ttft_p99']:.2f} s; {result['tokens_per_s']:.1f} tok/s")


# -- in process: the API key, the page, a 500's traceback

@pytest.fixture(scope="module")
def model(model_path):
    with qwen_embed.Model(model_path) as m:
        yield m


def test_api_key_page_and_traceback_for_a_500(model, caplog, monkeypatch):
    from fastapi.testclient import TestClient
    app = qwen_embed.server.create_app(model, "qwen", parallel=1, queue=2, api_key="sesame")
    with TestClient(app, raise_server_exceptions=False) as tc:
        assert tc.get("/v1/models").status_code == 401
        assert tc.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert tc.get("/v1/models", headers={"Authorization": "Bearer sesame"}).status_code == 200
        assert tc.get("/health").status_code == 200
        preflight = tc.options("/v1/chat/completions", headers={
            "Origin": "http://example.com", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] in ("*", "http://example.com")
        page = tc.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'id="stop"' in page.text and 'id="system"' in page.text

        def broken(*args, **kwargs):
            raise RuntimeError("the prompt cache broke")
        monkeypatch.setattr(model, "acquire_session", broken)
        with caplog.at_level(logging.INFO, logger="qwen_embed.server"):
            r = tc.post("/v1/chat/completions", headers={"Authorization": "Bearer sesame"},
                        json={"messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 500 and "the prompt cache broke" in r.json()["error"]["message"]
        assert "Traceback" in caplog.text and "RuntimeError: the prompt cache broke" in caplog.text
        assert tc.get("/health").json()["running"] == 0    # the slot came back


def test_request_parsing_refuses_every_malformed_body_with_a_400():
    """Regressions found by tests/fuzz/fuzz_server_request.py (a role that is not a
    string raised TypeError, a 500), and malformed tool fields."""
    parse = qwen_embed.server.parse_request
    for body in ({"messages": [{"role": ["user"], "content": "hi"}]},
                 {"messages": [{"role": {"x": 1}, "content": "hi"}]},
                 {"messages": [{"role": "user", "content": [["hi"]]}]},
                 {"messages": "hi"}, [], None, {"messages": [{"role": "user", "content": "hi"}], "stop": [1]},
                 {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
                 {"messages": [{"role": "user", "content": "hi"}], "tools": {"a": 1}},
                 {"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": ""}}]}]},
                 {"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"function": {"name": "x"}}},
                 {"messages": [{"role": "user", "content": "hi"}], "temperature": float("nan")},
                 {"messages": [{"role": "user", "content": "hi"}], "top_k": -1},
                 {"messages": [{"role": "user", "content": "hi"}], "repetition_penalty": 0},
                 {"messages": [{"role": "user", "content": "hi"}], "seed": "7"},
                 {"messages": [{"role": "user", "content": "hi"}], "stream": "yes"}):
        with pytest.raises(qwen_embed.server.RequestError) as refused:
            parse(body)
        assert refused.value.status == 400 and refused.value.message
    # What the engine receives: every sampling field, tools by name, a named tool forced.
    req = parse({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}],
                 "max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.05,
                 "seed": 7, "stop": ["\n\n", ""], "tools": [WEATHER], "tool_choice": {"type": "function",
                 "function": {"name": "get_weather"}}})
    assert req.gen == {"max_tokens": 5, "temperature": 0.5, "top_p": 0.9, "top_k": 40, "repetition_penalty": 1.05,
                       "seed": 7, "stop": ["\n\n"], "tool_choice": "get_weather"}
    assert req.system == "S" and [t["name"] for t in req.tools] == ["get_weather"]
