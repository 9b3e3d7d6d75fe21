#!/usr/bin/env python3
"""The OpenAI-compatible chat server from a source checkout:

    python examples/python/openai_server.py -m MODEL [--host 127.0.0.1] [--port 8000]

It is qwen_embed.server (see its docstring for the endpoints); installed from the wheel,
the same server is the `qwen-embed-server` command."""
import pathlib
import sys

try:
    import qwen_embed.server
except ImportError:  # a source checkout: use bindings/python
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import qwen_embed.server

from qwen_embed.server import RequestError, create_app, main, parse_request  # noqa: E402,F401

if __name__ == "__main__":
    sys.exit(main())
