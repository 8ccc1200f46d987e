"""Shared test set-up: every test starts from the same random state."""

import pytest

import mafkit


@pytest.fixture(autouse=True)
def _seeded() -> None:
    mafkit.set_seed(0)
