"""Saved sessions through the binding (Session.save, Model.load_session) on the real model:
a session saved here and loaded in another process continues token for token as the
original does (sampled from the restored random state, then greedy), and damaged, foreign
or newer files, empty files, missing paths and directories are refused with their
QwenError subclass and a message, leaving an existing session as it was."""
import json
import os
import pathlib
import shutil
import struct
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import qwen_embed  # noqa: E402
from qwen_embed.errors import (BadModelError, InvalidArgumentError, QwenIOError,  # noqa: E402
                               UnsupportedModelError, WrongStateError)

SYSTEM = "You are a terse assistant."
TURNS = [("Name three prime numbers.", dict(temperature=0, max_tokens=24)),
         ("And three more?", dict(temperature=0.8, top_p=0.9, max_tokens=24)),   # seed 0: the session's random state
         ("Which is the largest?", dict(temperature=0, max_tokens=24))]

# Loads the saved session in a fresh process and runs TURNS[1:] on it.
CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import qwen_embed
turns = json.loads(sys.argv[4])
with qwen_embed.Model(sys.argv[2], n_threads=2) as model:
    session = model.load_session(sys.argv[3])
    out = {"messages": session.messages, "system": session.system_prompt, "replies": []}
    for text, gen in turns:
        reply = session.chat(text, **gen)
        out["replies"].append({"text": reply, "tokens": model.tokenize(reply), "result": session.last_result})
    out["after"] = session.messages
print(json.dumps(out))
"""


def hash64(data: bytes) -> int:
    """Sources/QwenEmbed/Loading/Fingerprint.swift's Hash64: the session file's checksum."""
    mask = (1 << 64) - 1
    h = 0x5157454E53455353

    def mix(h, word):
        m = ((h ^ word) * 0x9E3779B97F4A7C15) & mask
        return ((m << 27) | (m >> 37)) & mask
    whole = len(data) // 8
    for word in struct.unpack_from(f"<{whole}Q", data):
        h = mix(h, word)
    if len(data) % 8:
        h = mix(h, int.from_bytes(data[whole * 8:], "little"))
    z = mix(h, len(data))
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def resealed(data: bytes) -> bytes:
    """`data` with its trailing checksum recomputed, so the checks behind it are reached."""
    body = data[:-8]
    return body + struct.pack("<Q", hash64(body))


@pytest.fixture(scope="module")
def model(model_path):
    with qwen_embed.Model(model_path, n_threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    """(path of a session saved after TURNS[0], the original's replies to TURNS[1:] with
    their tokens, its messages at the save)."""
    path = tmp_path_factory.mktemp("saved") / "chat.qsession"
    with model.session(system=SYSTEM, n_ctx=1024, seed=5) as session:
        text, gen = TURNS[0]
        session.chat(text, **gen)
        session.save(path)
        messages = session.messages
        replies = []
        for text, gen in TURNS[1:]:
            reply = session.chat(text, **gen)
            replies.append({"text": reply, "tokens": model.tokenize(reply), "result": session.last_result})
    return path, replies, messages


def test_another_process_continues_token_for_token(model_path, saved):
    path, replies, messages = saved
    proc = subprocess.run([sys.executable, "-c", CHILD, str(ROOT / "bindings" / "python"), model_path, str(path),
                           json.dumps(TURNS[1:])], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout)
    assert child["system"] == SYSTEM
    assert child["messages"] == messages
    for ours, theirs in zip(replies, child["replies"]):
        assert ours["tokens"] and theirs["tokens"] == ours["tokens"], (ours["text"], theirs["text"])
        assert theirs["text"] == ours["text"]
        assert theirs["result"]["n_generated_tokens"] == ours["result"]["n_generated_tokens"]
        assert theirs["result"]["n_cached_tokens"] == ours["result"]["n_cached_tokens"] > 0
    assert len(child["after"]) == len(messages) + 2 * len(replies)


def refusal(model, path, error, fragment):
    with pytest.raises(error) as info:
        model.load_session(path)
    assert fragment.lower() in info.value.message.lower(), info.value.message
    return info.value.message


def test_bad_files_are_refused_and_an_existing_session_is_left_as_it_was(model, saved, tmp_path, qwen_v1_checkpoint):
    path, replies, _ = saved
    good = path.read_bytes()
    existing = model.load_session(path)
    before = existing.messages
    bad = tmp_path / "bad.qsession"

    cuts = sorted(set(list(range(0, 30)) + list(range(30, len(good), max(1, len(good) // 60))) + [len(good) - 1]))
    for cut in cuts:
        bad.write_bytes(good[:cut])
        refusal(model, bad, BadModelError, "empty" if cut == 0 else "truncated" if cut < 28 else "checksum")
    for offset in sorted(set(list(range(0, 24)) + list(range(24, len(good), max(1, len(good) // 80))) + [len(good) - 1])):
        flipped = bytearray(good)
        flipped[offset] ^= 0x41
        bad.write_bytes(bytes(flipped))
        refusal(model, bad, BadModelError, "not a QwenEmbed session file" if offset < 8 else "checksum")

    newer = bytearray(good)
    newer[8:12] = struct.pack("<I", 7)
    bad.write_bytes(resealed(bytes(newer)))
    refusal(model, bad, UnsupportedModelError, "written by a newer QwenEmbed (format 7, this reads up to 1)")
    bad.write_bytes(resealed(good[:-9] + good[-8:]))
    refusal(model, bad, BadModelError, "at byte")

    # A session of another model (the tiny Qwen v1 checkpoint): refused by the fingerprint.
    with qwen_embed.Model(str(qwen_v1_checkpoint("bf16")), n_threads=2) as tiny:
        with tiny.session(n_ctx=256) as other:
            other.chat("hi", temperature=0, max_tokens=2)
            other.save(bad)
        refusal(tiny, path, InvalidArgumentError, "belongs to another model")   # and the other way round
    refusal(model, bad, InvalidArgumentError, "belongs to another model")

    bad.write_bytes(b"")
    refusal(model, bad, BadModelError, "empty")
    refusal(model, tmp_path / "missing.qsession", QwenIOError, "missing.qsession")
    refusal(model, tmp_path, QwenIOError, str(tmp_path))

    assert existing.messages == before
    text, gen = TURNS[1]
    assert existing.chat(text, **gen) == replies[0]["text"]
    existing.close()


def test_a_refused_save_leaves_the_existing_file(model, saved, tmp_path):
    path, _, _ = saved
    target = tmp_path / "ro"
    target.mkdir()
    file = target / "chat.qsession"
    shutil.copy(path, file)
    original = file.read_bytes()
    with model.load_session(path) as session:
        stream = session.chat("Count to ten.", stream=True, max_tokens=4, temperature=0)
        next(stream)
        with pytest.raises(WrongStateError):
            session.save(file)
        stream.close()
        assert file.read_bytes() == original

        os.chmod(target, 0o555)
        immutable = os.geteuid() == 0 and subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode == 0
        try:
            probe = target / "probe"
            try:
                probe.write_bytes(b"")
                probe.unlink()
                pytest.skip("cannot make a directory read-only here")
            except OSError:
                pass
            with pytest.raises(qwen_embed.errors.QwenIOError) as info:
                session.save(file)
            assert str(file) in info.value.message
            assert file.read_bytes() == original
            assert sorted(p.name for p in target.iterdir()) == ["chat.qsession"]
        finally:
            if immutable:
                subprocess.run(["chattr", "-i", str(target)], check=True)
            os.chmod(target, 0o755)
        session.save(file)
        assert file.read_bytes() != original
        assert model.load_session(file).messages == session.messages


def test_a_q8_cache_is_saved_and_restored_as_q8(model, tmp_path):
    session = model.session(kv_type="q8", n_ctx=512)
    session.chat("Name three colors.", max_tokens=12, temperature=0)
    path = tmp_path / "q8.session"
    session.save(str(path))
    expected = session.chat("And three animals?", max_tokens=12, temperature=0)
    loaded = model.load_session(str(path))
    assert loaded.kv_bytes["per_token"] == session.kv_bytes["per_token"] < model.session().kv_bytes["per_token"]
    assert loaded.chat("And three animals?", max_tokens=12, temperature=0) == expected


def test_a_loaded_session_lists_its_saved_tools(model, tmp_path):
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    bare = {"type": "function", "function": {"name": "now"}}
    session = model.session()
    session.tools = [weather, bare]
    path = tmp_path / "tools.session"
    session.save(str(path))
    assert model.load_session(str(path)).tools == [weather, bare]
