"""Function calling through the C API (via the binding): Qwen (v1)'s ReAct prompt ids
against Qwen's own construction (Tests/Fixtures/tool-calling.json, written by
scripts/gen-tool-fixture.py from QwenLM/Qwen openai_api.py + make_context +
QWenTokenizer) on a v1 checkpoint, a native <tool_call> round on the real Qwen2.5 model,
and the argument checks."""
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
    """Qwen2.5-Coder's own format (its chat template's <tools> block, <tool_call> replies),
    greedy: the issue's request gets a call of get_weather with {"city": "Paris"}, parsed
    into the history (the raw reply is what the model wrote); the result goes back as a tool message
    on the cached prefix, and the answer uses it. The parts stream gives the same call once
    its block closes, and no markup as text."""
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a given city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    question = "What is the weather in Paris right now? Use the get_weather tool."
    with model.session() as session:
        session.tools = [weather]
        raw = session.chat(question, temperature=0, repetition_penalty=1, max_tokens=96)
        reply = session.messages[-1]
        assert '"get_weather"' in raw   # this 0.5B model writes the bare call object, without the tags
        assert reply["tool_calls"] == [{"name": "get_weather", "arguments": '{"city": "Paris"}'}], raw
        assert "<tool_call>" not in reply["content"]
        first_prompt = session.last_result["n_prompt_tokens"]

        final = session.chat([("tool", '{"city": "Paris", "temperature_c": 21, "sky": "sunny"}')], temperature=0,
                             repetition_penalty=1, max_tokens=96)
        assert session.last_result["n_cached_tokens"] >= first_prompt - 40   # the first turn's prefix is reused
        answer = session.messages[-1]
        assert "tool_calls" not in answer and answer["content"] == final
        assert "21" in answer["content"]
        assert [m["role"] for m in session.messages] == ["user", "assistant", "tool", "assistant"]

    with model.session() as session:
        session.tools = [weather]
        parts = list(session.chat_parts(question, temperature=0, repetition_penalty=1, max_tokens=96))
        assert [v for k, v in parts if k == "tool_call"] == [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]
        assert not any("<tool_call>" in v for k, v in parts if k == "content")
        assert session.messages[-1]["tool_calls"] == [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]


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
