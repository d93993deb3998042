"""Several models in one policy node, for an evaluation plan that compares them trial by trial.

Loading NORA takes tens of seconds to minutes; an interleaved plan switches model every trial.
So a model served before stays loaded while memory allows and switching back costs nothing;
when the next model would not fit, the least recently served ones are unloaded first (and
loaded again when their turn comes). What "fits" means:

- needed: what the model took when it was loaded before (its tensors' bytes), else its
  checkpoint's tensors counted from the safetensors headers at the dtype it will run in (a hub
  ID is looked up in the local cache only);
  unknown (0) for a model with no weights (the simulator's scripted expert);
- available: free memory on the device the models run on (``torch.cuda.mem_get_info`` for a
  GPU, ``MemAvailable`` for the CPU), less ``margin`` of the total for activations and caches.

``max_loaded`` caps the count as well (0: memory decides). The model served now is unloaded
last, only when the next cannot fit beside it; then a failed load leaves nothing served (the
policy node says so and refuses to run trials until a model is selected). Otherwise a failed
load leaves the node serving what it served.
"""

from __future__ import annotations

import collections
import logging
import pathlib
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from nora_ros.errors import ConfigurationError
from nora_ros.policy.base import Policy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Memory:
    """Free and total bytes where the models live."""

    free: int
    total: int


def device_memory(device: str = "cpu") -> Memory:
    """Free/total memory of ``device`` (``cuda``, ``cuda:N`` or ``cpu``)."""
    if device.startswith("cuda"):
        import torch

        free, total = torch.cuda.mem_get_info(torch.device(device))
        return Memory(int(free), int(total))
    info = {}
    for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
        key, _, value = line.partition(":")
        info[key] = int(value.split()[0]) * 1024
    return Memory(info.get("MemAvailable", info.get("MemFree", 0)), info.get("MemTotal", 0))


def policy_bytes(policy: Policy) -> int:
    """Bytes of the tensors a policy holds in torch modules, its own attributes or one level down
    (NORA keeps its model in ``loaded.model``); 0 for a policy without any."""
    if "torch" not in sys.modules:
        return 0
    import torch

    modules = []
    for value in vars(policy).values():
        inner = [value] if isinstance(value, torch.nn.Module) else list(getattr(value, "__dict__", {}).values())
        modules += [m for m in inner if isinstance(m, torch.nn.Module)]
    seen: set[int] = set()
    total = 0
    for module in modules:
        for t in (*module.parameters(), *module.buffers()):
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


_FLOAT_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
_HEADER_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def checkpoint_bytes(model: str, dtype: str | None = None) -> int:
    """Bytes a checkpoint's weights take once loaded: from its safetensors headers, floating-point
    tensors counted at ``dtype`` (``float32``, ``bfloat16``...; ``None``: as stored). NORA-1.5 runs
    in float32 from bfloat16 files, twice their size on disk. A folder, or a hub ID already in the
    local cache; 0 when unknown."""
    path = pathlib.Path(model).expanduser()
    if not path.is_dir():
        try:
            from huggingface_hub import snapshot_download

            path = pathlib.Path(snapshot_download(repo_id=model, local_files_only=True, allow_patterns=["*.safetensors"]))
        except Exception:  # noqa: BLE001 - not a hub ID, or not cached: unknown size
            return 0
    total = 0
    for f in sorted(path.rglob("*.safetensors")):
        try:
            total += _tensor_bytes(f, dtype)
        except Exception:  # noqa: BLE001 - an unreadable header (safetensors' own error types): its size on disk
            total += f.stat().st_size
    return total


def _tensor_bytes(path: pathlib.Path, dtype: str | None) -> int:
    """The tensors of one safetensors file, from its header only (no weights read, no torch)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(path), framework="numpy") as f:
        for name in f.keys():
            tensor = f.get_slice(name)
            count = 1
            for n in tensor.get_shape():
                count *= int(n)
            stored = tensor.get_dtype()
            floating = stored in ("F64", "F32", "F16", "BF16")
            total += count * (_FLOAT_BYTES[dtype] if floating and dtype in _FLOAT_BYTES else _HEADER_BYTES.get(stored, 4))
    return total


def nora_bytes(config, model: str) -> int:
    """What ``model`` will take as the policy node loads it with ``config`` (a
    :class:`~nora_ros.policy.nora.config.NoraConfig`): its tensors at the dtype its variant runs
    in on the config's device. 0 for the scripted expert, a replay, or a checkpoint that cannot be
    resolved (the load itself then says what is wrong)."""
    import dataclasses

    from nora_ros.errors import NoraError
    from nora_ros.policy.factory import REPLAY_PREFIX, SCRIPTED
    from nora_ros.policy.nora.checkpoint import resolve_checkpoint, resolve_variant
    from nora_ros.policy.nora.config import AUTO_VARIANT

    if model == SCRIPTED or model.startswith(REPLAY_PREFIX):
        return 0
    try:
        folder = resolve_checkpoint(model)
        resolved = resolve_variant(dataclasses.replace(config, model=model, variant=AUTO_VARIANT), folder)
        return checkpoint_bytes(str(folder), resolved.resolved_dtype(resolved.resolved_device()))
    except NoraError:
        return 0


@dataclass(frozen=True)
class Selected:
    """The outcome of :meth:`ModelCache.select`: the policy now served and what was done."""

    policy: Policy
    message: str
    loaded: bool


class ModelCache:
    """Loaded policies by their ``model`` string (what :func:`nora_ros.policy.factory.make_policy`
    takes), least recently served first out. Not thread-safe: one caller (the policy node's
    service callback) at a time."""

    def __init__(self, load: Callable[[str], Policy], *, max_loaded: int = 0, margin: float = 0.1,
                 memory: Callable[[], Memory] = device_memory, needed: Callable[[str], int] = checkpoint_bytes):
        if max_loaded < 0:
            raise ConfigurationError(f"max_loaded_models must be >= 0 (0: as memory allows), got {max_loaded}")
        if not 0.0 <= margin < 1.0:
            raise ConfigurationError(f"memory_margin must be in [0, 1), got {margin}")
        self._load = load
        self.max_loaded = max_loaded
        self.margin = margin
        self._memory = memory
        self._needed = needed
        self._loaded: collections.OrderedDict[str, Policy] = collections.OrderedDict()  # oldest served first
        self._sizes: dict[str, int] = {}
        self.current: str | None = None

    def add(self, model: str, policy: Policy) -> None:
        """A policy loaded elsewhere (the node's first model), now served."""
        self._loaded[model] = policy
        self._loaded.move_to_end(model)
        self._sizes[model] = policy_bytes(policy)
        self.current = model

    @property
    def loaded(self) -> tuple[str, ...]:
        """Loaded models, least recently served first."""
        return tuple(self._loaded)

    def select(self, model: str) -> Selected:
        """Serve ``model``: the loaded one, or load it after unloading what must go to fit.
        Raises what loading raises (:class:`~nora_ros.errors.ModelLoadError`...); the models
        served before stay loaded then, except those already unloaded to make room."""
        if model in self._loaded:
            self._loaded.move_to_end(model)
            self.current = model
            return Selected(self._loaded[model], f"{model} was loaded: switched at once", loaded=False)
        unloaded = self._make_room(model)
        t0 = time.monotonic()
        policy = self._load(model)
        took = time.monotonic() - t0
        self._sizes[model] = policy_bytes(policy) or self._sizes.get(model, 0)
        self._loaded[model] = policy
        self.current = model
        note = f"; unloaded {', '.join(unloaded)} to fit" if unloaded else ""
        return Selected(policy, f"{model} loaded in {took:.1f} s{note}", loaded=True)

    def _make_room(self, model: str) -> list[str]:
        """Unload least recently served models until ``model`` fits and the count is under
        ``max_loaded``; the one served now goes last (only when the next cannot fit beside it)."""
        need = self._sizes.get(model) or self._needed(model)

        def must_go() -> bool:
            if self.max_loaded and len(self._loaded) + 1 > self.max_loaded:
                return True
            mem = self._memory() if need > 0 else None
            return mem is not None and mem.free - self.margin * mem.total < need

        order = [m for m in self._loaded if m != self.current] + [m for m in self._loaded if m == self.current]
        unloaded = []
        for old in order:
            if not must_go():
                break
            self._unload(old)
            unloaded.append(old)
        if self.current in unloaded:
            self.current = None
        if unloaded:
            log.info("unloaded %s to fit %s", ", ".join(unloaded), model)
        return unloaded

    def _unload(self, model: str) -> None:
        policy = self._loaded.pop(model)
        try:
            policy.close()
        finally:
            if "torch" in sys.modules:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def close(self) -> None:
        for model in list(self._loaded):
            self._unload(model)
        self.current = None
