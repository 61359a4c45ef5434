"""``bench selfcheck``: is the harness itself the bottleneck?

- :mod:`bench.selfcheck.check`: ``SelfCheck`` and its ``Settings``, the measurements in order.
- :mod:`bench.selfcheck.figures`: the targets and the pure figures (spread, judge, targets).
- :mod:`bench.selfcheck.cells`: the harness's own cells, run cleanly, and the overhead pairs.
- :mod:`bench.selfcheck.pgbench`: finding and running pgbench.
- :mod:`bench.selfcheck.bare`: the bare driver loops (``python -m bench.selfcheck.bare``).
- :mod:`bench.selfcheck.recording`: recording's own cost in a tight loop
  (``python -m bench.selfcheck.recording``).
- :mod:`bench.selfcheck.sweep`: the timed quick-start sweep.
"""
