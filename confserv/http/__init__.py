"""HTTP for machines: health checks a load balancer can route by, and Prometheus metrics.

:mod:`.probe` says what each path answers (pure); :mod:`.metrics` turns a
running server's state into Prometheus text with ``prometheus_client``;
:mod:`.server` serves it over HTTP/1.1 with ``h11`` on trio, with the bounds
every port of this project has.
"""
