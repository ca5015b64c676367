"""Fault injection: a deterministic simulation of the real state machines, and real-process
schedules (``make chaos``; a short bounded version runs inside ``make test``)."""
