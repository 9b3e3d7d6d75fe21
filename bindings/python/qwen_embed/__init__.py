"""qwen_embed: Qwen chat models inside your Python process, through libqwen (ctypes).

    from qwen_embed import Model

    with Model("qwen2.5-coder-0.5b-instruct.gguf") as model:
        response, history = model.chat("Write hello world in C.")
        for delta in model.chat_stream("And in Python?", history=history):
            print(delta, end="", flush=True)

        with model.session(system="You are terse.") as session:
            print(session.chat("Hi!", temperature=0))
            for delta in session.chat("Tell me more.", stream=True):
                print(delta, end="")

libqwen.so is found through $QWEN_LIBRARY, next to this package, or in the
repository's .build/release folder (see qwen_embed._lib).
"""
from __future__ import annotations

import atexit as _atexit
import threading as _threading
from typing import Callable, Optional

from . import _lib
from ._lib import LibraryError, QWEN_ABI_VERSION, find_library, load_library
from .errors import (BadModelError, BufferTooSmallError, BusyError, CancelledError, ContextFullError,
                     InternalError, InvalidArgumentError, OutOfMemoryError, QwenError, QwenIOError,
                     QwenNotImplementedError, UnsupportedModelError, WrongStateError, last_error, status_string)
from .model import DEFAULT_SYSTEM_PROMPT, GEN_KEYS, Model, Session

__version__ = "0.1.0"

__all__ = [
    "Model", "Session", "DEFAULT_SYSTEM_PROMPT", "GEN_KEYS",
    "QwenError", "InvalidArgumentError", "QwenIOError", "BadModelError", "UnsupportedModelError",
    "OutOfMemoryError", "ContextFullError", "BufferTooSmallError", "CancelledError", "BusyError",
    "InternalError", "QwenNotImplementedError", "WrongStateError", "LibraryError",
    "library_version", "abi_version", "status_string", "last_error", "set_log_callback",
    "find_library", "load_library", "QWEN_ABI_VERSION",
]


def library_version() -> str:
    """qwen_version_string() of the loaded library, e.g. "0.1.0"."""
    return _lib.qwen_version_string().decode()


def abi_version() -> int:
    """qwen_abi_version() of the loaded library."""
    return int(_lib.qwen_abi_version())


LOG_LEVELS = {"debug": _lib.QWEN_LOG_DEBUG, "info": _lib.QWEN_LOG_INFO,
              "warn": _lib.QWEN_LOG_WARN, "error": _lib.QWEN_LOG_ERROR}
_log_lock = _threading.Lock()
_log_callback = None  # the live CFUNCTYPE object: the library may call it at any time
_retired_callbacks: list = []


def set_log_callback(fn: Optional[Callable[[str, str], None]], level: str = "warn") -> None:
    """Route libqwen's log messages at or above ``level`` ("debug", "info", "warn",
    "error") to ``fn(level_name, message)``, called from any library thread.
    ``fn=None`` restores the default (warnings and errors to stderr). Exceptions raised
    by ``fn`` are ignored."""
    global _log_callback
    names = {v: k for k, v in LOG_LEVELS.items()}
    minimum = LOG_LEVELS[level]
    with _log_lock:
        if fn is None:
            _lib.qwen_log_set(None, None, _lib.QWEN_LOG_WARN)
            _retired_callbacks.append(_log_callback)
            _log_callback = None
            return

        def on_log(lvl: int, msg: bytes, _ud: object) -> None:
            try:
                fn(names.get(lvl, str(lvl)), (msg or b"").decode("utf-8", errors="replace"))
            except BaseException:  # noqa: BLE001 - never raise into the library
                pass

        c_fn = _lib.qwen_log_fn(on_log)
        _lib.qwen_log_set(c_fn, None, minimum)
        # A library thread may still be inside the previous callback right after the
        # switch; the header gives no point after which it is unused, so keep them all.
        _retired_callbacks.append(_log_callback)
        _log_callback = c_fn


@_atexit.register
def _restore_default_log() -> None:
    # A library thread must not call into Python while the interpreter shuts down.
    if _log_callback is not None:
        try:
            _lib.qwen_log_set(None, None, _lib.QWEN_LOG_WARN)
        except BaseException:  # noqa: BLE001
            pass
