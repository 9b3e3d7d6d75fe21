"""Function calling through the C API (via the binding): prompt ids against Qwen's own
construction (Tests/Fixtures/tool-calling.json, written by scripts/gen-tool-fixture.py
from QwenLM/Qwen openai_api.py + make_context + QWenTokenizer), the history a tool
round leaves, and the argument checks."""
import json
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

import qwen_embed  # noqa: E402
from qwen_embed.errors import InvalidArgumentError  # noqa: E402

FIXTURE = json.loads((ROOT / "Tests" / "Fixtures" / "tool-calling.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def model(model_path):
    with qwen_embed.Model(model_path) as m:
        yield m


@pytest.fixture(scope="module")
def qwen_v1(qwen_v1_checkpoint):
    with qwen_embed.Model(str(qwen_v1_checkpoint("bf16"))) as model:
        yield model


def load_case(session, case):
    """Sets the case's system prompt and tools and adds all but its last message;
    returns the last one as (role, content)."""
    messages = list(case["messages"])
    if messages[0]["role"] == "system":
        session.system_prompt = messages.pop(0)["content"]
    session.tools = case["functions"]
    for m in messages[:-1]:
        session.add_message(m["role"], m["content"] or "", tool_call=m.get("function_call"))
    return messages[-1]["role"], messages[-1]["content"]


@pytest.mark.parametrize("case", FIXTURE["cases"], ids=[c["name"] for c in FIXTURE["cases"]])
def test_prompt_ids_match_qwens_construction(qwen_v1, case):
    with qwen_v1.session() as session:
        last = load_case(session, case)
        assert session.render_prompt([last]) == case["ids"]


def test_tool_round_on_the_real_model(model):
    """A ReAct round on Qwen2.5-Coder, greedy: the reply stops before "Observation:" and
    joins the history parsed; the tool's result continues the assistant's turn on the
    cached prefix, and the final answer joins the history without the ReAct frame.

    Plain greedy (no repetition penalty), on a request whose greedy path keeps every
    top-two logit gap above 0.3 in both turns, so the rounding of one instruction set or
    another (<= 0.15 seen) cannot change the path; llama.cpp replies the same first turn.
    ("What is the weather in Paris?" hangs on gaps of 0.01.)"""
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather of a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    with model.session() as session:
        session.tools = [weather]
        raw = session.chat("Use get_weather to find the weather in Paris.", temperature=0, repetition_penalty=1, max_tokens=96)
        reply = session.messages[-1]
        assert "Observation:" not in raw and raw.startswith("Thought:")
        assert reply["role"] == "assistant" and reply.get("tool_call", {}).get("name") == "get_weather", raw
        assert reply["content"] and reply["content"] in raw
        assert f"\nAction: {reply['tool_call']['name']}\nAction Input: {reply['tool_call']['arguments']}" in raw
        first_prompt = session.last_result["n_prompt_tokens"]

        final = session.chat([("tool", '{"temperature": 21, "sky": "clear"}')], temperature=0, repetition_penalty=1,
                             max_tokens=96)
        assert session.last_result["n_cached_tokens"] >= first_prompt   # the first turn's prefix is reused
        assert "Final Answer: " in final
        answer = session.messages[-1]
        assert "tool_call" not in answer and answer["content"] == final.split("Final Answer: ")[-1]
        assert "21" in answer["content"]
        assert [m["role"] for m in session.messages] == ["user", "assistant", "tool", "assistant"]


def test_tool_arguments_are_checked(qwen_v1):
    with qwen_v1.session() as session:
        with pytest.raises(InvalidArgumentError, match="parameters"):
            session.tools = [{"name": "f", "parameters": "{not json"}]
        with pytest.raises(ValueError, match="name"):
            session.tools = [{"name": ""}]
        with pytest.raises(InvalidArgumentError, match="tool call"):
            session.add_message("user", "hi", tool_call={"name": "f", "arguments": "{}"})
        with pytest.raises(InvalidArgumentError, match="system"):
            session.add_message("system", "be brief")
        session.tools = [{"name": "f", "description": "does f", "parameters": {"type": "object"}}]
        # A tool result with no assistant turn before it is refused, naming the rule.
        with pytest.raises(InvalidArgumentError, match="tool result must follow"):
            session.render_prompt([("user", "hi"), ("tool", "42")])
        # Tools survive a reset, like the system prompt.
        session.reset()
        assert "Answer the following questions" in qwen_v1.detokenize(session.render_prompt("hi"))
        session.tools = None
        assert "Answer the following questions" not in qwen_v1.detokenize(session.render_prompt("hi"))
