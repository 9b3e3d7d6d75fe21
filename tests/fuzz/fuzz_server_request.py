"""atheris target: the OpenAI-compatible server's request parsing
(qwen_embed.server.parse_request and parse_completion_request) on arbitrary bodies. The first input byte
picks raw JSON text (json.loads of the rest) or a structured request built from the bytes
(objects, lists, strings, numbers, booleans and nulls in the fields the server reads).
A body must either parse or be refused with RequestError (a 400 naming the field); any
other exception would be a 500 and is a finding."""
import json
import pathlib
import sys

import atheris

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))

with atheris.instrument_imports():
    import qwen_embed.server as openai_server

FIELDS = ["messages", "role", "content", "type", "text", "n", "max_tokens", "max_completion_tokens",
          "temperature", "top_p", "seed", "stop", "stream", "stream_options", "include_usage",
          "system", "user", "assistant", "developer", "tool", "tools", "functions", "tool_choice",
          "tool_calls", "function_call", "function", "name", "arguments", "parameters", "description",
          "auto", "none", "required", "prompt", "logprobs", "response_format", "top_k",
          "repetition_penalty", "presence_penalty", "logit_bias", "echo", "suffix", "best_of"]


def value(fdp, depth):
    kind = fdp.ConsumeIntInRange(0, 7 if depth < 4 else 4)
    if kind == 0:
        return None
    if kind == 1:
        return fdp.ConsumeBool()
    if kind == 2:
        return fdp.ConsumeInt(8) if fdp.ConsumeBool() else fdp.ConsumeRegularFloat()
    if kind == 3:
        return fdp.PickValueInList(FIELDS)
    if kind == 4:
        return fdp.ConsumeUnicode(fdp.ConsumeIntInRange(0, 40))
    if kind == 5:
        return [value(fdp, depth + 1) for _ in range(fdp.ConsumeIntInRange(0, 4))]
    return {fdp.PickValueInList(FIELDS) if fdp.ConsumeBool() else fdp.ConsumeUnicode(6): value(fdp, depth + 1)
            for _ in range(fdp.ConsumeIntInRange(0, 5))}


def test_one_input(data):
    fdp = atheris.FuzzedDataProvider(data)
    if fdp.ConsumeBool():
        try:
            body = json.loads(fdp.ConsumeUnicodeNoSurrogates(fdp.remaining_bytes()))
        except (ValueError, RecursionError):
            return
    else:
        body = value(fdp, 0)
    for parse in (openai_server.parse_request, openai_server.parse_completion_request):
        try:
            parse(body)
        except openai_server.RequestError as e:
            assert 400 <= e.status < 500 and e.message, (e.status, e.message)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
