"""A Configuration Server Proxy over TLS (issue 12: TLS on every port): it follows its
master over TLS (client certificates required) and serves its clients over TLS.

The proxy's listeners are TLS through ``confserv/server/ports.py``; its link to
the master needs ``tls=self.settings.tls.client`` in ``ProxyFollower._attempt_follow``
(``confserv/server/proxy.py``); until that line is in, the proxy cannot follow
a master whose management port speaks TLS.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import trio

from confserv.client.session import open_client
from confserv.wire.errors import NoServerError

from ..helpers.nodes import pair_nodes
from ..helpers.system import PASSWORD
from ..helpers.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    made = make_tls_files(tmp_path_factory.mktemp("tls"))
    return dataclasses.replace(made, client_certificates="required")


async def test_a_proxy_follows_and_serves_over_tls(tmp_path: Path, files: TlsFiles) -> None:
    with pair_nodes(tmp_path, tls=files, verbose="standard") as pair:
        pair.first.start()
        await pair.first.wait_role("primary")
        pair.proxy.start()
        await pair.proxy.wait_role("proxy", timeout=5)
        tls = files.client()
        proxy = [pair.proxy.address]
        async with open_client(proxy, app="c", user="default", password=PASSWORD, tls=tls) as c:
            made = await c.create("DN", {"name": "through-the-proxy"})  # forwarded
            assert made["serial"] > 0
            with trio.fail_after(10):
                assert await c.get("DN", "through-the-proxy") is not None
        with pytest.raises(NoServerError, match="this port speaks TLS only"):
            async with open_client(proxy, app="p", user="default", password=PASSWORD):
                pass
        assert "TLS handshake failed: the peer did not speak TLS" not in pair.first.log_text()
