"""Scale-out on Ray: batch scoring with Ray Data and benchmarks across a fleet.

Optional extra: ``pip install 'edgepipe[ray]'``. Nothing here imports Ray until
it is used, so ``import edgepipe.ray`` works without it and the first call that
needs Ray raises :class:`RayUnavailableError` naming the extra.

- :class:`ModelRef`: a model shipped to the cluster by content hash, verified on
  arrival and kept in a per-node cache (:mod:`edgepipe.ray.shipping`).
- :class:`PoolPredictor`: a callable class for ``Dataset.map_batches`` holding
  one edgepipe :class:`~edgepipe.Pool` per actor (:mod:`edgepipe.ray.predictor`).
- :func:`score`: outputs for a folder of ``.npz`` inputs, locally or on a cluster
  (:mod:`edgepipe.ray.score`), behind ``edgepipe score``.
- :func:`fleet_bench`: the same benchmark on every node, or every node with a
  named custom resource (:mod:`edgepipe.ray.fleet`), behind ``edgepipe bench --ray``.
- :func:`evaluate_models` / :class:`ClusterEvaluator`: the outputs of several
  models on the same samples, spread over the cluster (:mod:`edgepipe.ray.evaluate`),
  behind ``edgepipe optimize --eval DATA --ray ADDRESS``.

See ``docs/scale-out.md``.
"""

from __future__ import annotations

from .errors import RayJobError, RayUnavailableError, ScoreDataError
from .evaluate import ClusterEvaluator, evaluate_models
from .fleet import fleet_bench
from .predictor import PoolPredictor
from .score import score
from .shipping import ModelRef

__all__ = [
    "ClusterEvaluator",
    "ModelRef",
    "PoolPredictor",
    "RayJobError",
    "RayUnavailableError",
    "ScoreDataError",
    "evaluate_models",
    "fleet_bench",
    "score",
]
