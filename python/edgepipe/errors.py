"""The exception hierarchy of edgepipe.

Every error edgepipe raises on purpose derives from :class:`EdgepipeError`, so an
application can catch one class at its boundary. Errors about bad input also
derive from :class:`ValueError`, and deadline errors from :class:`TimeoutError`,
so code written against the standard hierarchy keeps working.

The core's error kinds and the class each becomes come from the C++ table
(``_core.ERROR_KINDS``); :data:`edgepipe._runtime.ERROR_BY_KIND` is built from it.
"""

from __future__ import annotations


class EdgepipeError(Exception):
    """Root of every error raised by edgepipe."""


class RuntimeLoadError(EdgepipeError):
    """The LiteRT runtime library or one of its symbols could not be loaded."""


class ModelError(EdgepipeError, ValueError):
    """The model file or buffer is missing, corrupt or otherwise unusable."""


class CompileError(ModelError):
    """The runtime refused to compile the model on every allowed accelerator."""


class InputError(EdgepipeError, ValueError):
    """Inputs do not match the model: unknown name, wrong dtype, shape or count."""


class InferenceError(EdgepipeError):
    """The runtime failed while running the model."""


class AcceleratorError(EdgepipeError):
    """An accelerator could not be used and no fallback was allowed."""


class PoolError(EdgepipeError):
    """Base class of errors about a request made to a :class:`edgepipe.Pool`."""


class QueueFullError(PoolError):
    """The pool's queue is full and its policy refused the request."""


class DroppedError(PoolError):
    """The request was dropped for a newer one (policy ``keep_latest``)."""


class RequestTimeoutError(PoolError, TimeoutError):
    """The request's deadline passed before it could run or finish."""


class PoolClosedError(PoolError):
    """The pool is closed and takes no more requests."""


class CancelledError(PoolError):
    """A queued request was cancelled because the pool closed without draining."""


__all__ = [
    "AcceleratorError",
    "CancelledError",
    "CompileError",
    "DroppedError",
    "EdgepipeError",
    "InferenceError",
    "InputError",
    "ModelError",
    "PoolClosedError",
    "PoolError",
    "QueueFullError",
    "RequestTimeoutError",
    "RuntimeLoadError",
]
