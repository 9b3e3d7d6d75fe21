"""Smoke tests of the qwen_embed bindings against the real libqwen.so and the real
Qwen2.5-Coder-0.5B-Instruct GGUF.

libqwen: $QWEN_LIBRARY, else the package folder, else <repo>/.build/release (make build).
Model:   $QWEN_MODEL, else the last stdout line of `bash scripts/fetch-model.sh`.
Both are required: a missing one fails the tests with a message (never a silent skip).
Only the session tests skip, and only while the library reports QWEN_ERR_NOT_IMPLEMENTED.
"""
import ctypes
import os
import pathlib
import subprocess
import sys
import threading
import time
from ctypes import byref, c_size_t

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import qwen_embed  # noqa: E402
from qwen_embed import _lib  # noqa: E402
from qwen_embed.errors import (BadModelError, BusyError, CancelledError, InvalidArgumentError,  # noqa: E402
                               QwenError, QwenIOError, QwenNotImplementedError)

THREADS = int(os.environ.get("QWEN_TEST_THREADS", "0"))
FRANCE = "What is the capital of France? Answer in one sentence."


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def lib():
    try:
        return _lib.load_library()
    except _lib.LibraryError as e:
        pytest.fail(f"libqwen could not be loaded: {e}\n(set QWEN_LIBRARY or run `make build`)")


@pytest.fixture(scope="module")
def model_path():
    path = os.environ.get("QWEN_MODEL")
    if not path:
        script = ROOT / "scripts" / "fetch-model.sh"
        try:
            out = subprocess.run(["bash", str(script)], cwd=ROOT, capture_output=True, text=True,
                                 timeout=3600)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.fail(f"cannot run {script} to find the model: {e}; set QWEN_MODEL")
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            pytest.fail(f"{script} failed (exit {out.returncode}): {out.stderr.strip()[-2000:]}; set QWEN_MODEL")
        path = lines[-1]
    if not os.path.isfile(path):
        pytest.fail(f"model not found at {path!r}; set QWEN_MODEL or run scripts/fetch-model.sh")
    return path


@pytest.fixture(scope="module")
def model(lib, model_path):
    with qwen_embed.Model(model_path, n_threads=THREADS) as m:
        yield m


@pytest.fixture(scope="module")
def sessions(model):
    """Skips (naming why) while the library does not run sessions yet."""
    try:
        with model.session() as s:
            s.chat("Hi", max_tokens=1, temperature=0)
    except QwenNotImplementedError as e:
        pytest.skip(f"sessions are not implemented in this libqwen build yet: {e}")
    return model


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------ no model needed

def test_version_and_abi(lib):
    assert lib.qwen_abi_version() == _lib.QWEN_ABI_VERSION == 1
    assert qwen_embed.abi_version() == 1
    version = qwen_embed.library_version()
    assert version and version[0].isdigit(), version
    assert _lib.library_path() and os.path.isfile(_lib.library_path())


def test_params_structs_match_the_library(lib):
    # The library's *_params_init writes its own sizeof into struct_size: a layout
    # drift between qwen.h and _lib.py shows up here instead of as memory corruption.
    for struct, init in [(_lib.qwen_model_params, _lib.qwen_model_params_init),
                         (_lib.qwen_session_params, _lib.qwen_session_params_init),
                         (_lib.qwen_gen_params, _lib.qwen_gen_params_init)]:
        scratch = ctypes.create_string_buffer(4096)
        init(ctypes.cast(scratch, ctypes.POINTER(struct)))
        size = ctypes.c_uint32.from_buffer(scratch).value
        assert size == ctypes.sizeof(struct), f"{struct.__name__}: library {size}, binding {ctypes.sizeof(struct)}"
    gen = _lib.init_params(_lib.qwen_gen_params, _lib.qwen_gen_params_init)
    assert (gen.max_tokens, gen.top_k, gen.n_stop) == (512, 0, 0)
    assert gen.temperature == pytest.approx(1.0) and gen.top_p == pytest.approx(0.8)
    assert gen.repetition_penalty == pytest.approx(1.1)
    mp = _lib.init_params(_lib.qwen_model_params, _lib.qwen_model_params_init)
    assert mp.use_mmap is True and mp.n_threads == 0


def test_status_strings(lib):
    codes = [_lib.QWEN_OK, _lib.QWEN_ERR_INVALID_ARGUMENT, _lib.QWEN_ERR_IO, _lib.QWEN_ERR_BAD_MODEL,
             _lib.QWEN_ERR_UNSUPPORTED_MODEL, _lib.QWEN_ERR_OUT_OF_MEMORY, _lib.QWEN_ERR_CONTEXT_FULL,
             _lib.QWEN_ERR_BUFFER_TOO_SMALL, _lib.QWEN_ERR_CANCELLED, _lib.QWEN_ERR_BUSY,
             _lib.QWEN_ERR_INTERNAL, _lib.QWEN_ERR_NOT_IMPLEMENTED]
    texts = [qwen_embed.status_string(c) for c in codes]
    assert all(texts), texts
    assert len(set(texts)) == len(texts), texts
    assert qwen_embed.status_string(-12345)  # unknown codes still get text, never NULL
    assert qwen_embed.status_string(_lib.QWEN_ERR_CANCELLED) == "cancelled"


def test_load_missing_path_is_io_error(lib, tmp_path):
    missing = tmp_path / "no-such-model.gguf"
    out = _lib.qwen_model_p()
    status = lib.qwen_model_load(str(missing).encode(), None, byref(out))
    assert status == _lib.QWEN_ERR_IO
    assert not out
    message = qwen_embed.last_error()
    assert message and "no-such-model" in message, message
    with pytest.raises(QwenIOError) as info:
        qwen_embed.Model(missing)
    assert info.value.status == -2 and "no-such-model" in str(info.value)
    assert isinstance(info.value, QwenError)


def test_load_garbage_is_bad_model(lib, tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(os.urandom(4096))
    out = _lib.qwen_model_p()
    assert lib.qwen_model_load(str(garbage).encode(), None, byref(out)) == _lib.QWEN_ERR_BAD_MODEL
    assert not out and qwen_embed.last_error()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + os.urandom(64))
    for path in (garbage, truncated):
        with pytest.raises(BadModelError) as info:
            qwen_embed.Model(path)
        assert info.value.status == -3 and info.value.message


def test_last_error_is_per_thread(lib, tmp_path):
    out = _lib.qwen_model_p()
    assert lib.qwen_model_load(str(tmp_path / "missing.gguf").encode(), None, byref(out)) == -2
    seen = []
    t = threading.Thread(target=lambda: seen.append(qwen_embed.last_error()))
    t.start()
    t.join()
    assert seen == [""]
    assert "missing" in qwen_embed.last_error()


def test_null_misuse_through_the_low_level(lib):
    n = c_size_t(99)
    assert lib.qwen_tokenize(None, b"hi", 2, False, None, 0, byref(n)) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert qwen_embed.last_error()
    assert lib.qwen_detokenize(None, None, 0, False, None, 0, byref(n)) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_model_get_info(None, None) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_model_load(None, None, None) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_session_create(None, None, None) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_session_reset(None) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_chat(None, None, 0, None, None, None, None) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_chat_next(None, None, None, None) == _lib.QWEN_ERR_INVALID_ARGUMENT
    assert lib.qwen_session_n_messages(None) == 0
    lib.qwen_model_free(None)   # no-ops
    lib.qwen_session_free(None)
    lib.qwen_session_cancel(None)


def test_find_library_honours_qwen_library(monkeypatch, tmp_path):
    monkeypatch.setenv("QWEN_LIBRARY", str(tmp_path / "nope.so"))
    with pytest.raises(_lib.LibraryError, match="QWEN_LIBRARY"):
        _lib.find_library()


def test_unknown_generation_parameter_is_a_type_error(model):
    with pytest.raises(TypeError, match="temprature"):
        model.chat_stream("hi", temprature=0)


# ------------------------------------------------------------- model, tokens

def test_info(model, model_path):
    info = model.info
    assert info["arch"] == "qwen2"
    assert (info["n_layer"], info["n_embd"], info["n_head"], info["n_head_kv"]) == (24, 896, 14, 2)
    assert info["n_vocab"] == 151936
    assert info["n_ctx_train"] >= 32768
    assert 400_000_000 < info["n_params"] < 700_000_000
    assert info["weight_type"]
    assert info["file_bytes"] == os.path.getsize(model_path)


def test_tokenize(model):
    assert model.tokenize("Hello, world!") == [9707, 11, 1879, 0]
    assert model.tokenize("") == []
    assert model.tokenize(b"Hello, world!") == [9707, 11, 1879, 0]


def test_size_query_contract(model):
    n = c_size_t(0)
    with model._use() as h:
        status = _lib.qwen_tokenize(h, b"Hello, world!", 13, False, None, 0, byref(n))
    assert status == _lib.QWEN_ERR_BUFFER_TOO_SMALL and n.value == 4
    ids = (ctypes.c_int32 * 4)(9707, 11, 1879, 0)
    with model._use() as h:
        status = _lib.qwen_detokenize(h, ids, 4, False, None, 0, byref(n))
    assert status == _lib.QWEN_ERR_BUFFER_TOO_SMALL and n.value == 13


@pytest.mark.parametrize("text", [
    "Hello, world!", "  leading and trailing  \n\n", "def f(x):\n    return x ** 2\n",
    "héllo wörld ñ", "你好，世界！", "emoji 👍🏽 and 🇫🇷", "<|im_start|>user\nhi<|im_end|>",
    "a" * 5000,
])
def test_round_trip(model, text):
    assert model.detokenize(model.tokenize(text)) == text


def test_special_tokens(model):
    assert model.tokenize("<|im_start|>", special=True) == [151644]
    plain = model.tokenize("<|im_start|>")
    assert 151644 not in plain and len(plain) > 1
    assert model.detokenize([151644]) == "<|im_start|>"
    assert model.detokenize([151644, 9707], skip_special=True) == "Hello"


def test_invalid_input_is_an_error(model):
    with pytest.raises(InvalidArgumentError) as info:
        model.tokenize(b"abc\xff\xfe")
    assert info.value.status == -1 and info.value.message
    with pytest.raises(InvalidArgumentError):
        model.detokenize([151936])
    with pytest.raises(InvalidArgumentError):
        model.detokenize([-1])


def test_partial_utf8_is_replaced_not_raised(model):
    ids = model.tokenize("👍")
    raw = model.detokenize_bytes(ids)
    assert raw == "👍".encode()
    if len(ids) > 1:  # a token holding half a character decodes to U+FFFD
        assert "\ufffd" in model.detokenize(ids[:1])


def test_tokenize_from_many_threads(model):
    expected = model.tokenize("The quick brown fox jumps over the lazy dog. " * 20)
    errors = []

    def work():
        try:
            for _ in range(20):
                assert model.tokenize("The quick brown fox jumps over the lazy dog. " * 20) == expected
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_closed_model(lib, model_path):
    m = qwen_embed.Model(model_path, n_threads=THREADS)
    m.close()
    m.close()
    with pytest.raises(QwenError, match="closed"):
        m.tokenize("x")


# ----------------------------------------------------------------- sessions

def test_session_create_close_cycles_do_not_leak(model):
    try:
        model.session().close()
    except QwenNotImplementedError as e:
        pytest.skip(f"sessions are not implemented in this libqwen build yet: {e}")
    for _ in range(20):  # warm up allocator pools
        with model.session(n_ctx=512):
            pass
    before = rss_bytes()
    for i in range(1000):
        s = model.session(system=f"You are assistant number {i}.", n_ctx=512)
        s.close()
        s.close()  # idempotent: freed exactly once
    growth = rss_bytes() - before
    assert growth < 8 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB over 1000 session cycles"


def test_sessions_outlive_their_model(lib, model_path):
    m = qwen_embed.Model(model_path, n_threads=THREADS)
    try:
        s = m.session()
    except QwenNotImplementedError as e:
        m.close()
        pytest.skip(f"sessions are not implemented in this libqwen build yet: {e}")
    m.close()  # the session keeps the C model alive
    assert s.history == []
    s.close()


def test_greedy_chat(sessions):
    with sessions.session() as s:
        reply = s.chat(FRANCE, temperature=0, max_tokens=32)
        assert reply.startswith("The capital of France is Paris."), reply
        assert s.history == [("user", FRANCE), ("assistant", reply)]
        r = s.last_result
        assert r["finish_reason"] in ("stop", "length")
        assert r["n_prompt_tokens"] > 10 and 0 < r["n_generated_tokens"] <= 32
        assert r["prefill_ms"] >= 0 and r["decode_ms"] >= 0 and r["text"] == reply
        s.chat("And of Germany?", temperature=0, max_tokens=16)
        assert len(s.history) == 4
        assert s.last_result["n_cached_tokens"] > 0  # the first turn came from the KV cache
        s.reset()
        assert s.history == []


def test_streaming_matches_non_streaming(sessions):
    with sessions.session() as a, sessions.session() as b:
        full = a.chat(FRANCE, temperature=0, max_tokens=24)
        deltas = list(b.chat(FRANCE, stream=True, temperature=0, max_tokens=24))
        assert all(isinstance(d, str) and d for d in deltas)
        assert "".join(deltas) == full == b.last_result["text"]
        assert len(b.history) == 2
        seen = []
        c_reply = b.chat("Thanks!", callback=seen.append, temperature=0, max_tokens=8)
        assert "".join(seen) == c_reply and len(b.history) == 4


def test_model_chat_like_qwen(sessions):
    response, history = sessions.chat(FRANCE, temperature=0, max_tokens=32)
    assert response.startswith("The capital of France is Paris."), response
    assert history == [(FRANCE, response)]
    deltas = list(sessions.chat_stream("And of Italy?", history=history, temperature=0, max_tokens=16))
    assert "Rome" in "".join(deltas)
    response2, history2 = sessions.chat("And of Italy?", history=history, temperature=0, max_tokens=16)
    assert response2 == "".join(deltas)
    assert history2 == [(FRANCE, response), ("And of Italy?", response2)]
    assert history == [(FRANCE, response)]  # the caller's list is not modified


def test_stream_closed_early_frees_the_session(sessions):
    with sessions.session() as s:
        stream = s.chat("Count from 1 to 100, one number per line.", stream=True, temperature=0, max_tokens=200)
        for i, _ in enumerate(stream):
            if i == 2:
                break
        stream.close()
        assert len(s.history) == 2  # the partial reply is kept, as qwen_chat_end does
        assert s.chat("Hi", max_tokens=2, temperature=0)  # usable again
        unstarted = s.chat("never run", stream=True)
        del unstarted  # a generator never started begins nothing
        assert s.chat("Hi again", max_tokens=2, temperature=0) is not None


def test_stop_strings_and_generate(sessions):
    with sessions.session() as s:
        reply = s.chat("Count from 1 to 10, separated by commas.", temperature=0, max_tokens=40, stop=["5"])
        assert "5" not in reply and "4" in reply, reply
        text = s.generate("def fibonacci(n):", temperature=0, max_tokens=12)
        assert text and s.last_result["n_generated_tokens"] <= 12
        assert len(s.history) == 2  # generate leaves the history alone


def test_callback_exception_propagates_and_cancels(sessions):
    class Boom(Exception):
        pass

    def explode(text):
        raise Boom(text)
    with sessions.session() as s:
        with pytest.raises(Boom):
            s.chat("Tell me a story.", callback=explode, max_tokens=64)
        assert s.history == []  # cancelled: history unchanged
        assert s.chat("Hi", max_tokens=2, temperature=0) is not None


def test_busy(sessions):
    with sessions.session() as s:
        started = threading.Event()
        errors = []

        def slow(text):
            started.set()
            time.sleep(0.05)

        def run():
            try:
                s.chat("Count to 50.", callback=slow, max_tokens=40)
            except CancelledError:
                pass
        t = threading.Thread(target=run)
        t.start()
        assert started.wait(120)
        try:
            s.chat("overlap", max_tokens=1)
        except BusyError as e:
            errors.append(e)
        s.cancel()
        t.join(120)
        assert errors and errors[0].status == _lib.QWEN_ERR_BUSY


@pytest.mark.parametrize("form", ["push", "pull"])
def test_cancel_from_another_thread(sessions, form):
    with sessions.session() as s:
        first_piece = threading.Event()
        outcome = []

        def run():
            try:
                prompt = "Write the numbers from 1 to 2000 in words, one per line."
                if form == "push":
                    s.chat(prompt, callback=lambda _t: first_piece.set(), max_tokens=2000)
                else:
                    for _ in s.chat(prompt, stream=True, max_tokens=2000):
                        first_piece.set()
                outcome.append("finished")
            except BaseException as e:  # noqa: BLE001
                outcome.append(e)

        t = threading.Thread(target=run)
        started = time.monotonic()
        t.start()
        assert first_piece.wait(120), "no token within 120 s"
        s.cancel()
        t.join(60)
        assert not t.is_alive(), "cancel did not stop the generation"
        assert time.monotonic() - started < 120
        assert isinstance(outcome[0], CancelledError), outcome
        assert outcome[0].status == _lib.QWEN_ERR_CANCELLED == -8
        assert s.history == [] and s.last_result is None
        assert s.chat("Hi", max_tokens=2, temperature=0) is not None  # still usable
