"""A deterministic simulation that runs the production code under trio's MockClock.

The real servers (:func:`confserv.server.app.run_server`, the proxy), the real
supervisor (:class:`scs.supervisor.Supervisor`) and the real client libraries
run in one trio run on a virtual clock, over a simulated network
(:mod:`tests.sim.net`) and a simulated Configuration Database
(:mod:`tests.sim.store`); each simulated process (:mod:`tests.sim.process`)
is a task group that can be killed, paused and resumed. Seeded schedules of
faults (:mod:`tests.sim.schedule`) are judged by :mod:`tests.chaos.checker`.
"""
