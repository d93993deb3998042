"""Shared by the NORA model tests (tiny checkpoints on the CPU)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """CI has 2 shared cores: a tiny model runs faster on one thread than fighting over two."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
