#!/usr/bin/env python3
"""Converts Tests/Fixtures/chatml-cases.jsonl (prompt ids computed with Qwen's
make_context algorithm and the tiktoken reference) into a line format the C tests
read without a JSON parser: Tests/Fixtures/chatml-cases.txt.

  case NAME
  window N
  system HEX          (UTF-8 bytes as hex)
  user HEX / assistant HEX   (history, oldest first)
  query HEX
  ids I I I ...
  end
"""
import json
import pathlib

fixtures = pathlib.Path(__file__).resolve().parents[1] / "Tests" / "Fixtures"
out = []
for line in (fixtures / "chatml-cases.jsonl").read_text(encoding="utf-8").splitlines():
    case = json.loads(line)
    out.append(f"case {case['name']}")
    out.append(f"window {case['max_window_size']}")
    out.append("system " + case["system"].encode().hex())
    for user, assistant in case["history"]:
        out.append("user " + user.encode().hex())
        out.append("assistant " + assistant.encode().hex())
    out.append("query " + case["query"].encode().hex())
    out.append("ids " + " ".join(map(str, case["ids"])))
    out.append("end")
(fixtures / "chatml-cases.txt").write_text("\n".join(out) + "\n")
