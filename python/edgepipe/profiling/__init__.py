"""See where the time goes: per-op profiles, benchmarks and their plots.

- :func:`profile` / :class:`Profile`: LiteRT's per-op profiler, as tables,
  JSON, CSV and a Chrome-trace/Perfetto timeline (``Session.profile`` calls it).
- :mod:`edgepipe.profiling.bench`: the engine of ``edgepipe bench`` (sweeps
  over threads, workers and accelerators; real inputs; memory; CSV/JSON).
- :mod:`edgepipe.profiling.plot`: latency and profile plots (``[plot]`` extra).
"""

from __future__ import annotations

from .profile import OpRow, Profile, TypeRow, profile, random_inputs

__all__ = ["OpRow", "Profile", "TypeRow", "profile", "random_inputs"]
