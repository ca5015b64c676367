"""Failed logins back off per source address through the client port, not only in the
service: the server passed no source, so one address could guess any number of user
names (issue 12: "backs off per source and per user")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from confserv.client.session import open_client
from confserv.wire.errors import AuthError
from tests.confserv.conftest import ADMIN_PASSWORD
from tests.security.test_bounds_server import start


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery) -> dict[str, Any]:
    return await start(tmp_path, nursery)


async def test_ten_failed_logins_from_one_address_block_that_address(
    server: dict[str, Any],
) -> None:
    for i in range(10):  # a user name of its own each time: the per-user rule is not hit
        with pytest.raises(AuthError, match="wrong user name or password"):
            async with open_client(
                [server["address"]], app="guesser", user=f"guess{i}", password="x"
            ):
                pass
    # The address is now held back: even the right password of another user is refused
    # unchecked, with the wait named.
    with pytest.raises(AuthError, match=r"too many failed login attempts: try again in \d+ s"):
        async with open_client(
            [server["address"]], app="guesser", user="default", password=ADMIN_PASSWORD
        ):
            pass
