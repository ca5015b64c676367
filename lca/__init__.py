"""The Local Control Agent (``lca``): starts, stops and watches the processes of one host.

One agent per host, as in the Genesys Management Layer (port 4999 by default).
It starts each process through a shim (:mod:`lca.shim`) so that the process
and how it ended outlive the agent (:mod:`lca.records`), and watches it
through a pidfd (:mod:`lca.processes`), so that the exit it reports is proof
of death from the host that saw it. It uses only :mod:`addp`.
"""
