"""The health and metrics paths (confserv/http/probe.py): what each answers, by hypothesis.

Invariants: /primary is 200 exactly when the server is a writable primary and
/backup exactly when it is a backup following a primary (at most one of them
is ever 200); /health always 200 with the role; every body but the metrics is
one JSON line; any method but GET/HEAD is 405, any other path 404.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from confserv.http.probe import PATHS, answer

roles = st.sampled_from(["starting", "primary", "backup", "proxy", "other"])
statuses = st.fixed_dictionaries(
    {
        "role": roles,
        "writable": st.booleans(),
        "following": st.one_of(st.none(), st.text(min_size=1, max_size=5)),
        "epoch": st.integers(0, 10),
        "serial": st.integers(0, 10),
    }
)


def metrics() -> tuple[bytes, str]:
    return b"cfgha_epoch 1.0\n", "text/plain; version=0.0.4"


@given(status=statuses, path=st.sampled_from([*PATHS, "/", "/x", "/primary?x=1"]))
def test_each_path_answers_by_the_role(status: dict[str, Any], path: str) -> None:
    reply = answer("GET", path, status, metrics)
    base = path.split("?")[0]
    if base == "/primary":
        primary = status["role"] == "primary" and status["writable"]
        assert reply.status == (200 if primary else 503)
    elif base == "/backup":
        following = status["role"] == "backup" and bool(status["following"])
        assert reply.status == (200 if following else 503)
    elif base == "/health":
        assert reply.status == 200
    elif base == "/metrics":
        assert (reply.status, reply.body) == (200, b"cfgha_epoch 1.0\n")
    else:
        assert reply.status == 404
    if base != "/metrics":
        assert reply.body.endswith(b"\n")
        assert reply.body.count(b"\n") == 1
        json.loads(reply.body)
    ups = [answer("GET", p, status, metrics).status for p in ("/primary", "/backup")]
    assert ups.count(200) <= 1


@given(method=st.sampled_from(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]))
def test_only_get_and_head_are_served(method: str) -> None:
    status = {"role": "primary", "writable": True}
    assert answer(method, "/primary", status, metrics).status == 405
    assert answer("HEAD", "/primary", status, metrics).status == 200
