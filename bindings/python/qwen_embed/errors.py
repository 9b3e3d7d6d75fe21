"""Exceptions: one class per qwen_status, all subclasses of QwenError."""
from __future__ import annotations

from typing import Dict, Optional, Type

from . import _lib


class QwenError(Exception):
    """A libqwen call failed.

    ``status`` is the qwen_status code (negative), ``message`` the detail from
    ``qwen_last_error()`` of the calling thread, ``status_text`` the fixed text of the
    code (``qwen_status_string``)."""

    status: int = 0

    def __init__(self, status: int, message: str = "", status_text: Optional[str] = None,
                 call: Optional[str] = None) -> None:
        self.status = status
        self.message = message
        self.status_text = status_text or _STATUS_TEXT.get(status, f"status {status}")
        self.call = call
        super().__init__(status, message)

    def __str__(self) -> str:
        where = f"{self.call}: " if self.call else ""
        detail = self.message or self.status_text
        return f"{where}{detail} [{self.status_text}, {self.status}]"

    def __reduce__(self):  # picklable despite the custom __init__
        return (type(self), (self.status, self.message, self.status_text, self.call))


class InvalidArgumentError(QwenError):
    """QWEN_ERR_INVALID_ARGUMENT: NULL pointer, bad id, invalid UTF-8, bad value."""


class QwenIOError(QwenError):
    """QWEN_ERR_IO: file missing, unreadable, mmap failed."""


class BadModelError(QwenError):
    """QWEN_ERR_BAD_MODEL: the model file is corrupt or inconsistent."""


class UnsupportedModelError(QwenError):
    """QWEN_ERR_UNSUPPORTED_MODEL: a valid file of an architecture/type not supported."""


class OutOfMemoryError(QwenError):
    """QWEN_ERR_OUT_OF_MEMORY."""


class ContextFullError(QwenError):
    """QWEN_ERR_CONTEXT_FULL: the prompt does not fit the context window."""


class BufferTooSmallError(QwenError):
    """QWEN_ERR_BUFFER_TOO_SMALL (handled inside the bindings; seen only through _lib)."""


class CancelledError(QwenError):
    """QWEN_ERR_CANCELLED: Session.cancel() or a progress callback stopped the call."""


class BusyError(QwenError):
    """QWEN_ERR_BUSY: the session is running another call."""


class WrongStateError(QwenError):
    """QWEN_ERR_WRONG_STATE: not allowed now (a pull-form reply is, or is not, in progress)."""


class InternalError(QwenError):
    """QWEN_ERR_INTERNAL: a bug in QwenEmbed; please report the message."""


class QwenNotImplementedError(QwenError, NotImplementedError):
    """QWEN_ERR_NOT_IMPLEMENTED: this build of libqwen does not provide the call yet."""


_BY_STATUS: Dict[int, Type[QwenError]] = {
    _lib.QWEN_ERR_INVALID_ARGUMENT: InvalidArgumentError,
    _lib.QWEN_ERR_IO: QwenIOError,
    _lib.QWEN_ERR_BAD_MODEL: BadModelError,
    _lib.QWEN_ERR_UNSUPPORTED_MODEL: UnsupportedModelError,
    _lib.QWEN_ERR_OUT_OF_MEMORY: OutOfMemoryError,
    _lib.QWEN_ERR_CONTEXT_FULL: ContextFullError,
    _lib.QWEN_ERR_BUFFER_TOO_SMALL: BufferTooSmallError,
    _lib.QWEN_ERR_CANCELLED: CancelledError,
    _lib.QWEN_ERR_BUSY: BusyError,
    _lib.QWEN_ERR_INTERNAL: InternalError,
    _lib.QWEN_ERR_NOT_IMPLEMENTED: QwenNotImplementedError,
    _lib.QWEN_ERR_WRONG_STATE: WrongStateError,
}

# Used only when the library cannot be asked (it always can once a call failed).
_STATUS_TEXT = {
    0: "ok", -1: "invalid argument", -2: "i/o error", -3: "bad model file",
    -4: "unsupported model", -5: "out of memory", -6: "context window full",
    -7: "buffer too small", -8: "cancelled", -9: "session busy", -10: "internal error",
    -11: "not implemented", -12: "wrong state",
}


def error_class(status: int) -> Type[QwenError]:
    return _BY_STATUS.get(status, QwenError)


def last_error() -> str:
    """qwen_last_error() of the calling thread, decoded."""
    raw = _lib.qwen_last_error()
    return raw.decode("utf-8", errors="replace") if raw else ""


def status_string(status: int) -> str:
    """qwen_status_string(status), decoded."""
    raw = _lib.qwen_status_string(status)
    return raw.decode("utf-8", errors="replace") if raw else ""


def make_error(status: int, call: Optional[str] = None, message: Optional[str] = None) -> QwenError:
    """The exception for a failed call. Must run on the thread that made the call,
    right after it (qwen_last_error is per thread and overwritten by the next failure)."""
    if message is None:
        message = last_error()
    return error_class(status)(status, message, status_string(status), call)


def check(status: int, call: Optional[str] = None) -> int:
    """Raise the matching QwenError unless ``status`` is QWEN_OK."""
    if status != _lib.QWEN_OK:
        raise make_error(status, call)
    return status
