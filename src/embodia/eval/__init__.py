"""Closed-loop evaluation: `evaluate(policy, suite, ...)` -> results.json, videos and report.html.

Modules: `protocol` (what a policy must provide), `suites` (tabletop families / Meta-World tasks),
`rollout` (the batched chunk-execution loop over a VectorRunner), `stats` (Wilson intervals),
`run` (evaluate() and its outputs).
"""

from embodia.eval.protocol import ChunkPolicy
from embodia.eval.run import EvalResult, evaluate
from embodia.eval.stats import wilson_interval

__all__ = ["ChunkPolicy", "EvalResult", "evaluate", "wilson_interval"]
