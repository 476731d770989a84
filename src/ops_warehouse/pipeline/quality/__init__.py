"""The quality gate's table-level checks: Great Expectations suites over raw, staging and marts.

``results.CheckResult`` is what every check reports; ``gx_runner`` runs the suites kept as
data in ``expectations/gx/`` (Great Expectations itself is imported only when they run).
"""

from ops_warehouse.pipeline.quality.gx_runner import (
    blocking_failures,
    build_data_docs,
    run_layers,
    run_suites,
)
from ops_warehouse.pipeline.quality.results import CheckResult

__all__ = ["CheckResult", "blocking_failures", "build_data_docs", "run_layers", "run_suites"]
