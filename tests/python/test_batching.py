"""The engine from Python on the real model: conversations on several Python threads are
decoded together (throughput against one after another, identical greedy replies), the
prompt cache (``model.acquire_session``), idle sessions without threads, and the log
callback receiving the engine's events."""
import os
import sys
import threading
import time

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "bindings" / "python"))
import qwen_embed  # noqa: E402

PROMPTS = [
    "Write a long story about a lighthouse keeper.",
    "Explain in detail how a compiler turns source code into machine code.",
    "Describe the water cycle step by step, in depth.",
    "Write a detailed history of the bicycle.",
    "Explain how public-key cryptography works, with examples.",
    "Write a long poem about the sea.",
    "Describe, in detail, how to bake bread at home.",
    "Explain the rules of chess thoroughly.",
]
GENERATED = 48


@pytest.fixture(scope="module")
def model(model_path):
    with qwen_embed.Model(model_path, n_threads=2) as m:
        yield m


def converse(model, prompt, out, i):
    with model.session() as s:
        out[i] = (s.chat(prompt, max_tokens=GENERATED, temperature=0, repetition_penalty=1.0),
                  s.last_result["n_generated_tokens"])


def tokens_per_second(model, n, together):
    out = [None] * n
    start = time.monotonic()
    if together:
        threads = [threading.Thread(target=converse, args=(model, PROMPTS[i], out, i)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    else:
        for i in range(n):
            converse(model, PROMPTS[i], out, i)
    return sum(generated for _, generated in out) / (time.monotonic() - start), out


@pytest.mark.parametrize("n, required", [(4, 2.5), (8, 3.0)])
def test_conversations_at_once_are_decoded_together(model, n, required):
    """n conversations on n Python threads: >= required x the total tokens/s of the same n
    one after another (2 threads, the default model), and the same greedy replies. The
    machine is shared: the throughput gets up to five attempts, the replies none."""
    best = 0.0
    for _ in range(5):
        alone, replies_alone = tokens_per_second(model, n, together=False)
        together, replies_together = tokens_per_second(model, n, together=True)
        assert [r for r, _ in replies_together] == [r for r, _ in replies_alone]
        assert all(g == GENERATED for _, g in replies_alone), "a prompt ended early: pick a longer one"
        best = max(best, together / alone)
        print(f"{n} conversations: {alone:.1f} tok/s one after another, {together:.1f} tok/s at once: {together / alone:.2f}x")
        if best >= required:
            break
    assert best >= required, f"{n} at once: {best:.2f}x the throughput of one after another (required {required}x)"


def test_acquire_session_reuses_the_cached_conversation(model):
    with model.acquire_session(system="You are a terse assistant.") as s:
        assert s.system_prompt == "You are a terse assistant."
        answer = s.chat("What is the capital of France?", max_tokens=12, temperature=0)
    conversation = [("user", "What is the capital of France?"), {"role": "assistant", "content": answer}]
    with model.acquire_session(conversation, system="You are a terse assistant.") as s:
        assert [m["content"] for m in s.messages] == [conversation[0][1], answer]
        s.chat("And of Italy?", max_tokens=12, temperature=0)
        r = s.last_result
        assert 20 < r["n_cached_tokens"] < r["n_prompt_tokens"]
    assert s.closed
    # model.chat(query, history) goes through the same cache.
    response, history = model.chat("And of Spain?", history=[("What is the capital of France?", answer)],
                                   system="You are a terse assistant.", max_tokens=8, temperature=0)
    assert response and history[-1] == ("And of Spain?", response)


def test_acquire_session_with_tools_and_calls(model):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city.",
                                               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    conversation = [("user", "Weather in Paris?"),
                    {"role": "assistant", "content": "I will look it up.",
                     "tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    with model.acquire_session(conversation, tools=tools) as s:
        assert s.tools == tools
        assert s.messages[1]["tool_call"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
        s.chat([("tool", '{"temperature": 21}')], max_tokens=16, temperature=0)
        assert s.messages[-1]["role"] == "assistant"


def thread_count():
    return len(os.listdir("/proc/self/task"))


def test_idle_sessions_hold_no_threads(model):
    with model.session() as s:
        s.chat("Hi", max_tokens=2)      # the engine's threads run from here on
    before = thread_count()
    sessions = [model.session() for _ in range(100)]
    assert thread_count() == before
    assert sessions[42].chat("Say ok.", max_tokens=3, temperature=0)
    for s in sessions:
        s.close()


def test_log_callback_receives_the_engines_events(model_path):
    seen = []
    qwen_embed.set_log_callback(lambda level, message: seen.append((level, message)), level="info")
    try:
        with qwen_embed.Model(model_path, n_threads=2) as m, m.session() as s:
            s.chat("Hi", max_tokens=2)
    finally:
        qwen_embed.set_log_callback(None)
    messages = [m for _, m in seen]
    assert any(m.startswith("loaded ") and "kernels" in m for m in messages), messages
    assert any("engine: started" in m for m in messages), messages
    assert all(level != "debug" for level, _ in seen)
