#!/usr/bin/env python3
"""Interactive streaming chat with a Qwen model through qwen_embed.

    python examples/python/chat.py -m MODEL [-s SYSTEM] [-t THREADS] [-n MAX_TOKENS] ...

Commands: /reset clears the conversation, /system TEXT replaces the system prompt,
/exit (or Ctrl-D) quits. Ctrl-C while a reply is streaming cancels that reply only.
"""
import argparse
import os
import pathlib
import sys
import threading

try:
    import qwen_embed
except ImportError:  # running from a source checkout: use bindings/python
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bindings" / "python"))
    import qwen_embed

try:
    import readline  # noqa: F401 - line editing and history for input()
except ImportError:
    pass


def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Interactive chat with a Qwen model (qwen_embed).")
    p.add_argument("-m", "--model", required=True, help="a .gguf file or a Hugging Face checkpoint directory")
    p.add_argument("-s", "--system", default=None, help="system prompt (default: the model's own)")
    p.add_argument("-t", "--threads", type=int, default=0, help="compute threads (0 = all cores)")
    p.add_argument("-c", "--ctx", type=int, default=0, help="context window in tokens (0 = model default)")
    p.add_argument("-n", "--max-tokens", type=int, default=None, help="most new tokens per reply")
    p.add_argument("--temp", type=float, default=None, help="temperature (0 = greedy)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--repeat-penalty", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    return p.parse_args(argv)


def stream_reply(session, text, gen, out=sys.stdout):
    """Streams the reply to ``text`` on a worker thread, so that Ctrl-C (raised in the
    main thread) can cancel it at once, even during a long prompt prefill."""
    outcome = {}
    finished = threading.Event()

    def work():
        try:
            for delta in session.chat(text, stream=True, **gen):
                out.write(delta)
                out.flush()
        except qwen_embed.CancelledError:
            outcome["cancelled"] = True
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            outcome["error"] = e
        finally:
            finished.set()

    threading.Thread(target=work, name="qwen-reply", daemon=True).start()
    # Wait on an Event, not Thread.join: on Python <= 3.12 a KeyboardInterrupt inside
    # join() can mark a running thread as finished (CPython gh-90882).
    while not finished.is_set():
        try:
            finished.wait(0.1)
        except KeyboardInterrupt:
            session.cancel()
    out.write("\n")
    if outcome.get("cancelled"):
        out.write("[cancelled]\n")
    elif "error" in outcome:
        out.write(f"[error: {outcome['error']}]\n")
    out.flush()


def handle_line(session, gen):
    """Reads and handles one line; False when the user asked to quit."""
    try:
        line = input("> ")
    except EOFError:
        print()
        return False
    command = line.strip()
    if not command:
        return True
    if command in ("/exit", "/quit"):
        return False
    if command == "/reset":
        session.reset()
        print("(conversation cleared)")
    elif command == "/system" or command.startswith("/system "):
        session.reset()
        session.system_prompt = command[len("/system"):].strip() or None
        print(f"(system prompt: {session.system_prompt!r}; conversation cleared)")
    else:
        stream_reply(session, line, gen)
    return True


def main(argv=None):
    args = parse_args(argv)
    gen = {k: v for k, v in {
        "max_tokens": args.max_tokens, "temperature": args.temp, "top_p": args.top_p,
        "top_k": args.top_k, "repetition_penalty": args.repeat_penalty, "seed": args.seed,
    }.items() if v is not None}
    try:
        model = qwen_embed.Model(args.model, n_threads=args.threads)
        session = model.session(system=args.system, n_ctx=args.ctx)
    except (qwen_embed.QwenError, qwen_embed.LibraryError) as e:
        print(f"chat: {e}", file=sys.stderr)
        return 1
    info = model.info
    print(f"{info['name'] or os.path.basename(args.model)} ({info['arch']}, {info['weight_type']}, "
          f"{info['n_params'] / 1e9:.2f}B parameters)")
    print("/reset clears the conversation, /system TEXT sets the system prompt, /exit quits; "
          "Ctrl-C stops a reply.")
    with model, session:
        while True:
            try:
                if not handle_line(session, gen):
                    break
            except KeyboardInterrupt:  # Ctrl-C outside a reply never ends the program
                print("\n(/exit or Ctrl-D to quit)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
