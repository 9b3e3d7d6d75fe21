#!/usr/bin/env python3
"""Expected prompt ids and reply parses for function calling, from Qwen's own code. Run
once; the output is committed as Tests/Fixtures/tool-calling.json and the tests never
run this.

    gen-tool-fixture.py QWEN_API_DIR QWEN_CODE_DIR QWEN_TIKTOKEN OUT.json

QWEN_API_DIR holds openai_api.py of QwenLM/Qwen; QWEN_CODE_DIR tokenization_qwen.py and
qwen_generation_utils.py (mapengAdam/qianwen-72B); QWEN_TIKTOKEN the Qwen v1 vocabulary.
Needs torch, transformers, fastapi, pydantic (openai_api.py imports them; sse_starlette
is stubbed).

For each case, the request's messages and functions go through openai_api.py's
parse_messages; a question is rendered by qwen_generation_utils.make_context (what
model.chat runs, max_window_size 6144), a conversation ending in a function result by
openai_api.py's text_complete_last_message (its model.generate replaced by one that
records the ids it is given). Replies go through parse_response (after trim_stop_words
with the stop words the server uses with functions).
"""
import importlib.util
import json
import sys
import types


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather of a city. Units: °C or °F.",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name, e.g. 北京 or \"New York\""},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1},
            "precision": {"type": "number", "default": 0.5, "maximum": 1e-05, "minimum": -2.5e+20},
            "verbose": {"type": "boolean", "default": False, "examples": [True, None]},
        },
        "required": ["city"],
    },
}
SEARCH = {
    "name": "web_search",
    "description": "Search the web; returns {title, url} pairs. Format the arguments as a JSON object.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
}
# Braces and a template field inside a description stay as written (str.format is one pass).
ODD = {"name": "calc_{x}", "description": "Evaluates {tools_name_text} and tabs\tand\nnewlines.",
       "parameters": {"b": "\u0001\u001f\\\"/", "a": [], "c": {}, "d": 12345678901234567890, "e": -0.0, "f": 1e16,
                      "g": 123456789.125, "h": 0.0001, "i": 1.5e-7}}

CASES = [
    ("one question, two tools",
     [{"role": "user", "content": "What's the weather like in Paris today?"}], [WEATHER, SEARCH]),
    ("system prompt and contents stripped as the server does",
     [{"role": "system", "content": "\n\nYou are a weather bot.  \n"},
      {"role": "user", "content": "\n  Weather in 北京?\t\n"}], [WEATHER]),
    ("tool result last: the assistant's turn continues",
     [{"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "I should call the weather API.",
       "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"role": "function", "content": "{\"temperature\": 21, \"sky\": \"clear\"}"}], [WEATHER, SEARCH]),
    ("two calls in a row, then the result",
     [{"role": "user", "content": "Weather in Paris and news about it?"},
      {"role": "assistant", "content": "Thought: first the weather.",
       "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"role": "function", "content": "21 degrees"},
      {"role": "assistant", "content": "",
       "function_call": {"name": "web_search", "arguments": "{\"query\": \"Paris news\"}"}},
      {"role": "function", "content": "Nothing new."}], [WEATHER, SEARCH]),
    ("a finished tool round, then a new question: the instruction moves to it",
     [{"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "Let me look.",
       "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"role": "function", "content": "21 degrees, clear"},
      {"role": "assistant", "content": "It is 21 °C and clear in Paris."},
      {"role": "user", "content": "And in Berlin?"}], [WEATHER]),
    ("plain earlier turns become final answers",
     [{"role": "user", "content": "Hi!"},
      {"role": "assistant", "content": "Hello! How can I help?"},
      {"role": "user", "content": "Search for Qwen."}], [SEARCH, ODD]),
    ("tool calls in the history, no tools offered now",
     [{"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": "Checking.",
       "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
      {"role": "function", "content": "21 degrees"},
      {"role": "assistant", "content": "21 °C."},
      {"role": "user", "content": "Thanks. Say it in French."}], None),
]

REPLIES = [
    "Thought: I need the weather.\nAction: get_weather\nAction Input: {\"city\": \"Paris\"}",
    "Thought: I need the weather.\nAction: get_weather\nAction Input: {\"city\": \"Paris\"}\nObservation: 21",
    "Thought: I now know the final answer.\nFinal Answer: It is 21 °C in Paris.",
    "I now know the final answer.\nFinal Answer: 21 °C.\nFinal Answer: actually 22 °C.",
    "Just a plain reply without any ReAct structure.",
    "Thought: call it\nAction: get_weather",
    "Thought: no name\nAction:   \nAction Input: {}",
    "Action: get_weather\nAction Input: {\"city\": \"Paris\"}",
    "\nAction: get_weather\nAction Input: {\"city\": \"Paris\"}\n",
    "Thought: I will search.\nAction: web_search\nAction Input: {\"query\": \"天气 北京\"}\n\n",
    "Thought: odd order\nAction Input: {}\nAction: get_weather",
    "Thought: observation first\nObservation: early\nAction: get_weather\nAction Input: {\"city\": \"Rome\"}",
    "Thought: multi-line\nAction: run_code\nAction Input: ```py\nprint(1)\n```",
    "",
]

# JSON texts and what json.dumps(json.loads(text), ensure_ascii=False) writes for them
# (tool parameters are embedded that way).
JSON_TEXTS = [
    '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}',
    ' { "b" : 1 , "a" : [ 1 , 2.0 , -3 ] , "c" : { } , "d" : [ ] } ',
    '{"a": 1, "b": 2, "a": 3}',
    '[0.1, 1e16, 1e15, 1E5, 0.5e1, 1e-5, 0.0001, 0.00001, 123456789012345678, 123456789012345678.0]',
    '[-0, -0.0, 0.0, 1e308, 1e400, -1e400, 5e-324, 2.5e-5, 100.0, 9007199254740993, 9007199254740993.0]',
    '[1.7976931348623157e308, 2.2250738585072014e-308, 0.30000000000000004, 1.5e300, 12345678901234567890123]',
    '"\\u00e9\\ud83d\\ude00 \\u0000\\u001f\\u007f \\"\\\\\\/\\b\\f\\n\\r\\t é 北京"',
    '[true, false, null, "", {"": ""}]',
]


def main():
    api_dir, code_dir, vocab, out_path = sys.argv[1:5]
    sys.modules["sse_starlette"] = types.ModuleType("sse_starlette")
    sse = types.ModuleType("sse_starlette.sse")
    sse.EventSourceResponse = object
    sys.modules["sse_starlette.sse"] = sse
    api = load(f"{api_dir}/openai_api.py", "openai_api")
    utils = load(f"{code_dir}/qwen_generation_utils.py", "qwen_generation_utils")
    tok_module = load(f"{code_dir}/tokenization_qwen.py", "tokenization_qwen")
    tokenizer = tok_module.QWenTokenizer(vocab)

    class RecordingModel:
        device = "cpu"
        last = None

        def generate(self, input_ids, **kwargs):
            RecordingModel.last = input_ids.tolist()[0]
            return input_ids

    api.tokenizer, api.model = tokenizer, RecordingModel()

    cases = []
    for name, messages, functions in CASES:
        request = [api.ChatMessage(**m) for m in messages]
        query, history, system = api.parse_messages(request, functions)
        if query is api._TEXT_COMPLETION_CMD:
            api.text_complete_last_message(history, stop_words_ids=None, gen_kwargs={}, system=system)
            ids = RecordingModel.last
        else:
            _, ids = utils.make_context(tokenizer, query, history=history, system=system,
                                        max_window_size=6144, chat_format="chatml")
        cases.append({"name": name, "messages": messages, "functions": functions, "system": system, "ids": ids})

    stop_words = api.add_extra_stop_words(None) or []
    stop_words.append("Observation:")
    replies = []
    for text in REPLIES:
        trimmed = api.trim_stop_words(text, stop_words)
        choice = api.parse_response(trimmed)
        call = choice.message.function_call
        replies.append({"reply": trimmed, "content": choice.message.content,
                        "tool_call": None if call is None else {"name": call["name"], "arguments": call["arguments"]}})

    dumps = [{"text": t, "python": json.dumps(json.loads(t), ensure_ascii=False)} for t in JSON_TEXTS]

    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"source": "QwenLM/Qwen openai_api.py parse_messages / text_complete_last_message / "
                             "parse_response; qwen_generation_utils.make_context; tokenization_qwen.QWenTokenizer",
                   "cases": cases, "replies": replies, "json_dumps": dumps}, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
