"""The quality gate's table-level checks: Great Expectations suites over raw, staging and marts.

``results`` holds the ``CheckResult`` every check reports; ``gx_runner`` runs the suites
kept as data in ``expectations/gx/``.
"""
