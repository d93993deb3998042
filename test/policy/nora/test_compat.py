"""The transformers gate and the load-time probe: a version whose decoding was not checked, or a
decoding loop that gets positions or the cache wrong, refuses to start instead of acting."""

from __future__ import annotations

import pytest
from conftest_nora import tiny_checkpoint  # noqa: F401  (session fixture)

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nora_ros.errors import ModelLoadError  # noqa: E402
from nora_ros.policy.nora import compat  # noqa: E402
from nora_ros.policy.nora.checkpoint import load_nora  # noqa: E402
from nora_ros.policy.nora.compat import (  # noqa: E402
    TRANSFORMERS_ACCEPTED,
    DecoderApi,
    check_transformers_version,
    decoder_api,
)
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.decoding import CachedDecoder  # noqa: E402
from nora_ros.policy.nora.policy import NoraPolicy  # noqa: E402
from nora_ros.policy.nora.probe import PROBE_INSTRUCTION, check_cached_decoding, probe_frame  # noqa: E402


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):  # noqa: F811
    return NoraPolicy(NoraConfig(model=str(tiny_checkpoint), device="cpu"))


# ------------------------------------------------------------------ version gate


@pytest.mark.parametrize("version", ["5.23.0", "5.24.0", "5.25.0", "5.25.1"])
def test_checked_versions_are_accepted(version):
    assert check_transformers_version(version) == version


@pytest.mark.parametrize("version", ["5.22.2", "5.26.0", "5.40.0", "4.57.1", "4.50.0", "6.0.0", "5.25.0.dev0", "main"])
def test_other_versions_are_refused_in_one_line_naming_both(version):
    with pytest.raises(ModelLoadError) as info:
        check_transformers_version(version)
    message = str(info.value)
    assert "\n" not in message
    assert f"transformers {version} is installed" in message and TRANSFORMERS_ACCEPTED in message


def test_the_installed_version_is_one_we_accept():
    import transformers

    assert check_transformers_version() == transformers.__version__


def test_load_refuses_an_unchecked_transformers_before_loading_anything(tiny_checkpoint, monkeypatch):  # noqa: F811
    monkeypatch.setattr(compat, "transformers_version", lambda: "5.40.0")
    with pytest.raises(ModelLoadError, match=r"transformers 5\.40\.0 is installed.*>=5\.23,<5\.26") as info:
        load_nora(NoraConfig(model=str(tiny_checkpoint), device="cpu"))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ cache keyword


class _NewForward:
    def forward(self, input_ids=None, position_ids=None, cache=None, use_cache=None, **kwargs): ...


class _OldForward:
    def forward(self, input_ids=None, position_ids=None, past_key_values=None, use_cache=None, **kwargs): ...


class _CachePositionForward:
    def forward(self, input_ids=None, past_key_values=None, cache_position=None, **kwargs): ...


class _NoCacheForward:
    def forward(self, input_ids=None, **kwargs): ...


@pytest.mark.parametrize(("cls", "api"), [
    (_NewForward, DecoderApi("cache", False)),  # 5.24, 5.25
    (_OldForward, DecoderApi("past_key_values", False)),  # 5.23
    (_CachePositionForward, DecoderApi("past_key_values", True)),  # 4.x
])
def test_the_cache_goes_under_the_keyword_forward_takes(cls, api):
    assert decoder_api(cls) == api


def test_a_forward_without_a_cache_keyword_is_refused():
    with pytest.raises(ModelLoadError, match="neither `cache` nor `past_key_values`"):
        decoder_api(_NoCacheForward)


def test_the_installed_model_takes_the_keyword_its_version_names(policy):
    """5.23 named it past_key_values, 5.24 on name it cache (past_key_values deprecated, to go in 5.40)."""
    from packaging.version import Version

    from nora_ros.policy.nora.compat import transformers_version

    keyword = decoder_api(type(policy.loaded.model.model)).cache_keyword
    assert keyword == ("cache" if Version(transformers_version()) >= Version("5.24") else "past_key_values")


# ------------------------------------------------------------------ probe


def _probe_inputs(policy: NoraPolicy) -> dict:
    return policy.model_inputs(probe_frame(), PROBE_INSTRUCTION)


def test_probe_agrees_on_the_installed_transformers(policy):
    report = policy.probe
    assert report.dtype == "float32" and report.tolerance == 1e-4
    assert report.step_error < 1e-5 and report.prefill_error < 1e-5
    assert 0.0 < report.seconds < 5.0
    again = check_cached_decoding(policy.loaded.model, _probe_inputs(policy), policy.processor, policy._head)
    assert again.token_id == report.token_id


def _zero_positions(self: CachedDecoder) -> torch.Tensor:
    """transformers 4.52-4.57 without cache_position: every decode step at position 0."""
    return torch.zeros((3, 1, 1), dtype=torch.long, device=self._device)


def _length_positions(self: CachedDecoder) -> torch.Tensor:
    """1-D counting (cache length) instead of the previous maximum + 1: ignores the image's rope delta."""
    return torch.full((3, 1, 1), self.length, dtype=torch.long, device=self._device)


_STEP = CachedDecoder.step


def _dropped_cache_step(self: CachedDecoder, token: int) -> torch.Tensor:
    """What a call with a keyword forward no longer takes amounts to: a step without the cache."""
    self.cache = None
    return _STEP(self, token)


@pytest.mark.parametrize(("attribute", "broken"), [
    ("step_positions", _zero_positions),
    ("step_positions", _length_positions),
    ("step", _dropped_cache_step),
])
def test_probe_refuses_a_broken_decode_step(policy, monkeypatch, attribute, broken):
    monkeypatch.setattr(CachedDecoder, attribute, broken)
    with pytest.raises(ModelLoadError, match="cached decoding disagrees with a full forward pass on transformers 5"):
        check_cached_decoding(policy.loaded.model, _probe_inputs(policy), policy.processor, policy._head)


def test_the_policy_does_not_start_when_the_probe_disagrees(policy, monkeypatch):
    monkeypatch.setattr(CachedDecoder, "step_positions", _zero_positions)
    with pytest.raises(ModelLoadError, match="the policy does not start"):
        NoraPolicy(policy.config, loaded=policy.loaded)
