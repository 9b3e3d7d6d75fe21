"""Stress through the C API (the Python binding; ctypes releases the GIL, so the threads
really run at once): many sessions on one model with random cancels and resets, checked
token for token against single-threaded replays; and the edge inputs a server meets
(empty, over-long, invalid UTF-8, NUL bytes, 1 MB prompts, max_tokens 0, stop strings
that are prefixes of each other). Model: the tiny bf16 Qwen v1 checkpoint (its whole
vocabulary, so ChatML works), so that 1,600 turns take seconds."""
import random
import subprocess
import sys
import threading
import time
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import qwen_embed  # noqa: E402
from conftest import rss_kb  # noqa: E402
from qwen_embed.errors import CancelledError, ContextFullError, InvalidArgumentError, QwenError  # noqa: E402

THREADS, TURNS = 8, 200


@pytest.fixture(scope="module")
def model(qwen_v1_checkpoint):
    with qwen_embed.Model(str(qwen_v1_checkpoint("bf16")), n_threads=1) as m:
        yield m


def conversation(model, thread, events_out):
    """One thread's 200 turns on its own session: messages, random resets, random cancels
    from a timer thread. Records what completed: ("reset",) or ("chat", text, max_tokens,
    reply)."""
    rng = random.Random(thread)
    session = model.session(seed=1, n_ctx=1024, n_threads=1)
    for turn in range(TURNS):
        if rng.random() < 0.1:
            session.reset()
            events_out.append(("reset",))
        text = f"thread {thread} turn {turn}: " + " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(rng.randint(1, 6)))
        timer = None
        if rng.random() < 0.3:
            timer = threading.Timer(rng.random() * 0.004, session.cancel)
            timer.start()
        max_tokens = rng.randint(1, 6)
        try:
            reply = session.chat(text, max_tokens=max_tokens, temperature=0)
            events_out.append(("chat", text, max_tokens, reply))
        except CancelledError:
            pass
        finally:
            if timer:
                timer.cancel()
                timer.join()
    session.close()


def test_many_threads_with_cancels_and_resets_equal_single_threaded_replays(model):
    events = [[] for _ in range(THREADS)]
    threads = [threading.Thread(target=conversation, args=(model, t, events[t])) for t in range(THREADS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive(), "a conversation thread hung"
    concurrent_seconds = time.monotonic() - start
    chats = sum(1 for e in events for x in e if x[0] == "chat")
    cancelled = THREADS * TURNS - chats
    print(f"{THREADS} threads x {TURNS} turns in {concurrent_seconds:.1f} s: {chats} replies, {cancelled} cancelled")
    assert cancelled > 20, "too few cancels landed to test them"
    for t in range(THREADS):
        replay = model.session(seed=1, n_ctx=1024, n_threads=1)
        for i, event in enumerate(events[t]):
            if event[0] == "reset":
                replay.reset()
                continue
            _, text, max_tokens, reply = event
            again = replay.chat(text, max_tokens=max_tokens, temperature=0)
            assert again == reply, f"thread {t} event {i}: {again!r} != {reply!r}"
        replay.close()


def test_a_thousand_load_free_cycles_keep_memory_flat(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from small_gguf import write_small_gguf
    path = tmp_path / "small.gguf"
    write_small_gguf(path, "qwen2", "q8_0")
    marks = {}
    for cycle in range(1, 1001):
        model = qwen_embed.Model(str(path), n_threads=1)
        session = model.session(n_ctx=64, n_threads=1)
        session.close()
        model.close()
        if cycle in (100, 1000):
            marks[cycle] = rss_kb()
    growth = marks[1000] - marks[100]
    print(f"RSS after 100 cycles {marks[100]} KB, after 1000 {marks[1000]} KB")
    assert growth < 2048, f"RSS grew {growth} KB over 900 load/session/free cycles"


@pytest.fixture()
def session(model):
    s = model.session(n_ctx=512, n_threads=1, seed=1)
    yield s
    s.close()


def test_edge_inputs(model, session):
    assert isinstance(session.chat("", max_tokens=2, temperature=0), str)          # an empty user turn is a turn
    with pytest.raises(InvalidArgumentError):
        session.generate("", max_tokens=2)                                         # nothing to continue
    with pytest.raises((InvalidArgumentError, UnicodeDecodeError)):
        session.chat(b"\xff\xfe abc", max_tokens=2)                                 # invalid UTF-8
    with pytest.raises((InvalidArgumentError, ValueError)):
        session.chat("a\0b", max_tokens=2)                                         # C strings hold no NUL
    assert model.detokenize(model.tokenize("a\0b")) == "a\0b"                        # lengths, not NULs, bound texts
    assert session.chat("hi", max_tokens=0) == ""                                  # nothing asked, nothing made
    start = time.monotonic()
    with pytest.raises(ContextFullError):
        session.chat("x " * 500_000, max_tokens=2)                                 # a 1 MB prompt
    assert time.monotonic() - start < 10
    with pytest.raises(ContextFullError):
        session.chat("word " * 2000, max_tokens=2)                                 # over the 512-token window
    stops = ["a", "ab", "abc", "b", "e", "t", " "]
    for seed in range(5):
        reply = model.session(n_ctx=512, n_threads=1, seed=seed).chat("tell me", max_tokens=12, stop=stops)
        assert not any(s in reply for s in stops), reply                           # cut before the earliest
    history_before = session.history
    long = model.session(n_ctx=64, n_threads=1, seed=1)
    reply = long.chat("hi", max_tokens=1000, temperature=0)                        # runs into the window: stops there
    assert len(model.tokenize(reply)) < 64
    assert session.history == history_before
