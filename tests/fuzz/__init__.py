"""Fuzzing the three ports of a real pair and its supervisor (issue 12).

Generators: :mod:`tests.fuzz.shapes` (the message shapes), :mod:`tests.fuzz.frames`
(the fast generator), :mod:`tests.fuzz.strategies` (hypothesis); the ports and a
case's outcome: :mod:`tests.fuzz.targets`; the checks: :mod:`tests.fuzz.checks`;
the loop: :mod:`tests.fuzz.runner`; the table: :mod:`tests.fuzz.report`. Run as
``python -m tests.fuzz`` (``make fuzz``); ``tests/security/test_fuzz.py`` is the
bounded run of ``make test``.
"""
