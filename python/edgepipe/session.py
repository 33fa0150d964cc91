"""Sessions: one compiled instance of a model, for direct use from one thread.

Layer: above the model, its weight cache and the accelerators; below the pool.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import _args, _core
from .accelerators.plan import plan
from .accelerators.spec import AcceleratorSpec
from .errors import EdgepipeError, InputError
from .events import Events, log_fallbacks
from .model import Model, as_model
from .tensors import Inputs, TensorInfo, named, order_inputs, output_indices
from .weight_cache import resolve_weight_cache


class Session:
    """A model compiled for one accelerator, ready to run.

    ``run`` releases the GIL while the model runs, so sessions in different
    threads run in parallel; calls on one session are serialised. For many
    callers use :class:`edgepipe.Pool`.

    Args:
        model: a :class:`Model` or a path to a ``.tflite`` file.
        accelerator: ``"cpu"``, ``"gpu"``, ``"npu"``, a delegate plugin
            (``"plugin:/path/libfoo.so"`` or a path ending in ``.so``), a
            preference list (``["npu", "gpu"]`` or ``"npu,gpu"``) whose
            entries may be ``(name, options)`` pairs like ONNX Runtime
            providers, or ``"auto"`` (a short measured trial, cached; see
            :func:`edgepipe.accelerators.auto_select`). When one is denied
            (crash denylist, policy), fails to compile or to run a first
            time, the next is tried, ending on the CPU (see :attr:`events`).
        threads: CPU threads for this session (None: the runtime's default),
            1 to 256.
        weight_cache: True for the shared XNNPACK weight cache of this model,
            a path for a specific file, False (the default, as for
            :class:`Pool`) for none.
        signature: the signature key to run (default: the first).
        allow_cpu_fallback: when False, never fall back to the CPU.
        plugin_options: options for delegate plugins, ``{"key": "value"}``
            for every plugin or ``{"/path/lib.so": {"key": "value"}}``.
    """

    def __init__(
        self,
        model: Model | str | os.PathLike[str],
        *,
        accelerator: AcceleratorSpec = "cpu",
        threads: int | None = None,
        weight_cache: bool | str | os.PathLike[str] = False,
        signature: str | None = None,
        allow_cpu_fallback: bool = True,
        plugin_options: Mapping[str, Any] | None = None,
    ) -> None:
        threads = _args.optional_integer("threads", threads, low=1, high=_args.MAX_THREADS)
        weight_cache = _args.weight_cache("weight_cache", weight_cache)
        signature = _args.optional_str("signature", signature)
        _args.boolean("allow_cpu_fallback", allow_cpu_fallback)
        self._model = as_model(model)
        sig_index = self._model.signature_index(signature)
        chosen = plan(
            self._model,
            accelerator,
            plugin_options=plugin_options,
            allow_cpu_fallback=allow_cpu_fallback,
        )
        self._policy_events = chosen.events
        self._decision = chosen.decision
        self._weight_cache = resolve_weight_cache(self._model, weight_cache)
        self._core: _core.Session | None = _core.Session(
            self._model._core,
            chosen.accelerator,
            threads or 0,
            self._weight_cache.core_path,
            sig_index,
            allow_cpu_fallback,
            **chosen.core_kwargs(),
        )
        self._infos: list[TensorInfo] | None = None
        self._out_names = [t["name"] for t in self._core.outputs]
        log_fallbacks(self.events)

    def _session(self) -> _core.Session:
        if self._core is None:
            raise EdgepipeError("the session is closed")
        return self._core

    @property
    def model(self) -> Model:
        """The model this session runs."""
        return self._model

    @property
    def inputs(self) -> list[TensorInfo]:
        """Inputs with their current shapes (after :meth:`resize`)."""
        if self._infos is None:
            self._infos = [TensorInfo.from_core(t) for t in self._session().inputs]
        return list(self._infos)

    @property
    def outputs(self) -> list[TensorInfo]:
        """Outputs with their current shapes."""
        return [TensorInfo.from_core(t) for t in self._session().outputs]

    @property
    def accelerator(self) -> str:
        """The accelerator the session runs on after any fallback."""
        return str(self._session().accelerator)

    @property
    def fully_accelerated(self) -> bool:
        """Whether the accelerator took the whole graph."""
        return bool(self._session().fully_accelerated)

    @property
    def events(self) -> Events:
        """Fallback events (see :mod:`edgepipe.events`), oldest first.

        A weight cache that could not be used is a ``"weight_cache"`` stage
        event (the session runs without it).
        """
        return Events(
            self._policy_events + self._weight_cache.events + list(self._session().events)
        )

    @property
    def auto_decision(self) -> dict[str, Any] | None:
        """The ``auto`` trial's record when compiled with ``accelerator="auto"``, else None."""
        return self._decision

    @property
    def delegation(self) -> dict[str, Any]:
        """How the graph was split between accelerators (raw; see
        :func:`edgepipe.accelerators.delegation_report` for op names)."""
        return dict(self._session().delegation)

    def run(
        self,
        inputs: Inputs | None = None,
        *,
        outputs: Sequence[str] | None = None,
        out: Mapping[str, np.ndarray] | Sequence[np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the model once.

        Args:
            inputs: arrays by name (dict), by position (list) or a single
                array. None runs on the session's own input buffers as filled
                through :meth:`input_buffer` (no copy at all). Arrays that
                are not C-contiguous (crops, ``frame[..., ::-1]``) are copied
                once into contiguous ones; the outputs are the same.
            outputs: names of the outputs to return (default: all).
            out: pre-allocated output arrays (by name, or by position among
                the returned outputs) to fill instead of allocating new ones.

        Returns:
            Outputs by name (only those in ``outputs`` when given, in that order).

        Raises:
            InputError: wrong names, count, dtype or shape.
            InferenceError: the runtime failed.
        """
        core = self._session()
        if self._infos is None:
            self._infos = [TensorInfo.from_core(t) for t in core.inputs]
        arrays = order_inputs(self._infos, inputs) if inputs is not None else []
        out_list: list[np.ndarray] | None = None
        names = self._out_names
        indices = output_indices(names, outputs)
        returned = names if indices is None else [names[i] for i in indices]
        if out is not None:
            if isinstance(out, Mapping):
                missing = [n for n in returned if n not in out]
                if missing:
                    raise InputError(f"out lacks output(s) {missing}")
                out_list = [out[n] for n in returned]
            else:
                out_list = list(out)
        result = core.run(arrays, out_list, indices)
        return named(names, indices, result)

    def input_buffer(self, name_or_index: str | int = 0) -> np.ndarray:
        """A writable view of the session's own buffer for one input.

        Fill it in place and call ``run()`` with no inputs to skip every copy.
        The view stays valid until :meth:`resize` or :meth:`close`.
        """
        index = self._index(name_or_index)
        return self._session().input_view(index)

    def resize(self, name_or_index: str | int, shape: Sequence[int]) -> None:
        """Set the shape of a dynamic input (dimensions declared as -1)."""
        core = self._session()
        if (
            isinstance(shape, (str, bytes))
            or not isinstance(shape, Sequence)
            or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) for d in shape)
        ):
            raise InputError(f"shape must be a sequence of integers, got {shape!r}")
        core.resize(self._index(name_or_index), [int(d) for d in shape])
        self._infos = None
        self._out_names = [t["name"] for t in core.outputs]

    def _index(self, name_or_index: str | int) -> int:
        infos = self._session().inputs
        if isinstance(name_or_index, bool) or not isinstance(name_or_index, (int, str)):
            raise InputError(f"input must be a name or an index, not {name_or_index!r}")
        if isinstance(name_or_index, int):
            if not 0 <= name_or_index < len(infos):
                raise InputError(f"input index {name_or_index} out of range 0..{len(infos) - 1}")
            return name_or_index
        for i, t in enumerate(infos):
            if t["name"] == name_or_index:
                return i
        raise InputError(
            f"unknown input {name_or_index!r}; the model takes {[t['name'] for t in infos]}"
        )

    def benchmark_loop(self, runs: int, *, copy: bool = True) -> float:
        """Seconds for ``runs`` runs in a C++ loop with no Python in it.

        The floor against which Python-level overhead is measured.
        """
        runs = _args.integer("runs", runs, low=1)
        return float(self._session().bench_loop(runs, copy))

    def close(self) -> None:
        """Release the compiled instance (the model stays usable)."""
        self._core = None
        self._weight_cache.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._core is None else self.accelerator
        return f"<edgepipe.Session {self._model!r} on {state}>"
