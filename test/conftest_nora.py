"""Fixtures for the NORA backend tests: one tiny checkpoint per test session.

Imported by the NORA test modules (``from conftest_nora import tiny_checkpoint``). The
checkpoint is built once per session (a module-level cache, so importing the fixture into
several modules does not build it several times) in a temporary folder, through the same
``build_tiny_checkpoint`` that ``nora-ros tiny-model`` runs.
"""

from __future__ import annotations

import pathlib

import pytest

_BUILT: dict[str, pathlib.Path] = {}


def tiny_checkpoint_path(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    if "tiny" not in _BUILT:
        pytest.importorskip("torch")
        pytest.importorskip("transformers")
        from nora_ros.policy.nora.tiny import build_tiny_checkpoint

        _BUILT["tiny"] = build_tiny_checkpoint(tmp_path_factory.mktemp("tiny_nora"))
    return _BUILT["tiny"]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A tiny NORA-architecture checkpoint folder (real Qwen2.5 vocabulary where ../shared/data has it)."""
    return tiny_checkpoint_path(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_checkpoint_long(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The same tiny checkpoint declared as NORA-Long (its weights linked, config.json copied):
    a checkpoint's variant is tied to it, so NORA-Long runs need one that says so."""
    if "tiny-long" not in _BUILT:
        from nora_ros.policy.nora.tiny import set_checkpoint_variant

        src = tiny_checkpoint_path(tmp_path_factory)
        out = tmp_path_factory.mktemp("tiny_nora_long")
        for item in src.iterdir():
            target = out / item.name
            if item.name == "config.json":
                target.write_text(item.read_text())
            else:
                target.symlink_to(item)
        set_checkpoint_variant(out, "nora-long")
        _BUILT["tiny-long"] = out
    return _BUILT["tiny-long"]

