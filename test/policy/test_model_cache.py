"""Several models in one policy node (nora_ros.policy.model_cache): kept loaded while memory
allows, the least recently served unloaded first, the served one last; real tiny NORA
checkpoints through the real factory for the sizes and the unload."""

from __future__ import annotations

import pytest
from conftest_nora import tiny_checkpoint, tiny_checkpoint_long  # noqa: F401 - fixtures

from nora_ros.errors import ConfigurationError, ModelLoadError
from nora_ros.policy.base import Policy
from nora_ros.policy.model_cache import (
    Memory,
    ModelCache,
    checkpoint_bytes,
    device_memory,
    nora_bytes,
    policy_bytes,
)

GB = 1 << 30


class Weights(Policy):
    """A stand-in for a loaded model: only its identity and whether it was closed matter here."""

    def __init__(self, model):
        self.model_id = model
        self.closed = False

    def act(self, observation):  # pragma: no cover - never run
        raise NotImplementedError

    def close(self):
        self.closed = True


class Device:
    """A device whose free memory follows what is loaded (each model takes its size)."""

    def __init__(self, total, sizes):
        self.total, self.sizes, self.cache = total, sizes, None

    def memory(self):
        used = sum(self.sizes[m] for m in self.cache.loaded)
        return Memory(self.total - used, self.total)


def rig(total_gb, sizes_gb, max_loaded=0):
    sizes = {m: int(s * GB) for m, s in sizes_gb.items()}
    dev = Device(int(total_gb * GB), sizes)
    loads = []

    def load(model):
        loads.append(model)
        return Weights(model)

    cache = ModelCache(load, max_loaded=max_loaded, margin=0.1, memory=dev.memory, needed=sizes.__getitem__)
    dev.cache = cache
    return cache, loads


def test_models_stay_loaded_while_memory_allows_and_switching_back_costs_nothing():
    cache, loads = rig(80, {"a": 8, "b": 8, "c": 8})
    first = cache.select("a").policy
    assert cache.select("b").loaded and cache.select("c").loaded
    again = cache.select("a")
    assert again.policy is first and not again.loaded and "switched at once" in again.message
    assert loads == ["a", "b", "c"] and cache.loaded == ("b", "c", "a") and cache.current == "a"


def test_the_least_recently_served_goes_first_and_is_loaded_again_later():
    # 24 GB, 10 % kept free: two 8 GB models fit (16 + 8 > 21.6 does not), the third needs room
    cache, loads = rig(24, {"a": 8, "b": 8, "c": 8})
    a = cache.select("a").policy
    cache.select("b")
    got = cache.select("c")
    assert a.closed and "unloaded a to fit" in got.message and cache.loaded == ("b", "c")
    assert cache.select("a").policy is not a and loads == ["a", "b", "c", "a"]
    assert cache.loaded == ("c", "a")  # b, least recently served, made room


def test_the_served_model_goes_last_and_only_when_the_next_cannot_fit_beside_it():
    cache, _ = rig(24, {"a": 8, "big": 15})
    a = cache.select("a").policy
    got = cache.select("big")
    assert a.closed and cache.loaded == ("big",) and cache.current == "big" and "unloaded a" in got.message


def test_max_loaded_caps_the_count():
    cache, loads = rig(80, {"a": 1, "b": 1}, max_loaded=1)
    a = cache.select("a").policy
    cache.select("b")
    assert a.closed and cache.loaded == ("b",)
    cache.select("a")
    assert loads == ["a", "b", "a"]


def test_a_failed_load_names_the_model_and_leaves_the_served_one_serving():
    def load(model):
        if model == "broken":
            raise ModelLoadError("checkpoint folder broken does not exist")
        return Weights(model)

    cache = ModelCache(load, memory=lambda: Memory(80 * GB, 80 * GB), needed=lambda m: GB)
    a = cache.select("a").policy
    with pytest.raises(ModelLoadError, match="broken"):
        cache.select("broken")
    assert cache.current == "a" and cache.loaded == ("a",) and not a.closed


def test_bad_settings_are_refused_with_the_parameter_name():
    with pytest.raises(ConfigurationError, match="max_loaded_models"):
        ModelCache(Weights, max_loaded=-1)
    with pytest.raises(ConfigurationError, match="memory_margin"):
        ModelCache(Weights, margin=1.0)


def test_real_checkpoints_sizes_and_switching(tiny_checkpoint, tiny_checkpoint_long):  # noqa: F811
    """Through the real factory: the size on disk predicts the load, the loaded tensors are
    counted, and a switch back to a loaded checkpoint returns the same policy."""
    from nora_ros.policy.factory import make_policy
    from nora_ros.policy.nora.config import NoraConfig

    disk = sum(f.stat().st_size for f in tiny_checkpoint.glob("*.safetensors"))
    stored = checkpoint_bytes(str(tiny_checkpoint))
    assert 0.95 * disk < stored <= disk and checkpoint_bytes("no/such-model-here") == 0  # header bytes aside
    f32, bf16 = checkpoint_bytes(str(tiny_checkpoint), "float32"), checkpoint_bytes(str(tiny_checkpoint), "bfloat16")
    assert bf16 < f32 and abs(f32 - 2 * bf16) < 0.01 * f32  # all its tensors are floating point
    cache = ModelCache(lambda m: make_policy(NoraConfig(model=m, device="cpu", dtype="float32")))
    nora = cache.select(str(tiny_checkpoint)).policy
    long = cache.select(str(tiny_checkpoint_long)).policy
    assert long.horizon == 5 and nora.horizon == 1
    held = policy_bytes(nora)
    assert abs(held - f32) < 0.02 * f32  # float32 on the CPU: the headers predicted what the load holds
    assert nora_bytes(NoraConfig(model="x", device="cpu"), str(tiny_checkpoint)) == f32
    assert nora_bytes(NoraConfig(model="x"), "scripted") == 0 == nora_bytes(NoraConfig(model="x"), "/no/such/dir")
    assert cache.select(str(tiny_checkpoint)).policy is nora
    mem = device_memory("cpu")
    assert 0 < mem.free <= mem.total
    cache.close()
    assert cache.loaded == () and cache.current is None
