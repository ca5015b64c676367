"""The benchmarks: ``python -m bench.run_all`` (``make bench``), or one module alone.

Each ``bench_*`` module measures one part of the system and prints every
figure beside its target (``python -m bench.bench_scs [--quick] [sigkill ...]``);
they run the real processes through the tests' own harness
(``tests/helpers/system.py``, ``tests/helpers/nodes.py``), with one statistics
module (:mod:`tests.helpers.stats`, shared with the fault-injection report) and
one CPU-measurement helper (:mod:`bench.measure`).
"""
