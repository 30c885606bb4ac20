"""Fixtures of the account tests: a fresh per-account fake for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from accounts.kit import AccountsFake


@pytest.fixture
def acct_fake() -> Iterator[AccountsFake]:
    fake = AccountsFake(latency=0.3)
    fake.start("127.0.0.1", 0)
    yield fake
    fake.stop()
