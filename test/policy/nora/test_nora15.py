"""NORA-1.5 on the tiny checkpoint: layout, strict loading, the flow head against an independent
computation, seeded noise per trial, the FAST+ head, and the ``infer`` command."""

from __future__ import annotations

import json
import math
import pathlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
safetensors_torch = pytest.importorskip("safetensors.torch")

from nora_ros.camera.frame import Frame  # noqa: E402
from nora_ros.errors import ConfigurationError, ModelLoadError  # noqa: E402
from nora_ros.policy.nora.config import NoraConfig  # noqa: E402
from nora_ros.policy.nora.expert import output_cache  # noqa: E402
from nora_ros.policy.nora.flow_policy import Nora15Policy, nora15_policy  # noqa: E402
from nora_ros.policy.nora.nora15 import compact_keys, load_nora15  # noqa: E402

INSTRUCTION = "put the carrot on the plate"


@pytest.fixture(scope="module")
def tiny15(tmp_path_factory) -> pathlib.Path:
    """Written by the command line, as a user would: ``nora-ros tiny-model --variant nora-1.5 DIR``."""
    from nora_ros.cli import main

    out = tmp_path_factory.mktemp("tiny15") / "ckpt"
    assert main(["tiny-model", "--variant", "nora-1.5", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def policy(tiny15) -> Nora15Policy:
    return Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", seed=3))


@pytest.fixture(scope="module")
def frame() -> Frame:
    rgb = np.random.default_rng(5).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    return Frame(rgb, 1.0, "rgb8")


def _noise(seed: int = 11) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((5, 7)).astype(np.float32)


def expected_layout(h=128, heads=16, kv=2, layers=2, inter=256, vocab=153713, cv=32, iv=64, depth=2) -> dict:
    """Tensor names and shapes the reference's VLAWithExpert saves for these sizes (its state dict
    as ``safetensors.save_model`` writes it: lm_head kept of the tied pair)."""
    d = h // heads
    e = int(0.375 * h)
    ie = 256 * math.ceil(4 * int(2 * e / 3) / 256)
    out = {"vlm.model.visual.patch_embed.proj.weight": (cv, 3, 2, 14, 14),
           "vlm.model.visual.merger.ln_q.weight": (cv,),
           "vlm.model.visual.merger.mlp.0.weight": (4 * cv, 4 * cv), "vlm.model.visual.merger.mlp.0.bias": (4 * cv,),
           "vlm.model.visual.merger.mlp.2.weight": (h, 4 * cv), "vlm.model.visual.merger.mlp.2.bias": (h,),
           "vlm.model.language_model.norm.weight": (h,), "vlm.lm_head.weight": (vocab, h),
           "action_expert.norm.weight": (e,),
           "action_in_proj.weight": (e, 7), "action_in_proj.bias": (e,),
           "action_out_proj.weight": (7, e), "action_out_proj.bias": (7,),
           "action_time_mlp_in.weight": (e, 2 * e), "action_time_mlp_in.bias": (e,),
           "action_time_mlp_out.weight": (e, e), "action_time_mlp_out.bias": (e,)}
    for j in range(depth):
        b = f"vlm.model.visual.blocks.{j}."
        out.update({b + "norm1.weight": (cv,), b + "norm2.weight": (cv,),
                    b + "attn.qkv.weight": (3 * cv, cv), b + "attn.qkv.bias": (3 * cv,),
                    b + "attn.proj.weight": (cv, cv), b + "attn.proj.bias": (cv,),
                    b + "mlp.gate_proj.weight": (iv, cv), b + "mlp.gate_proj.bias": (iv,),
                    b + "mlp.up_proj.weight": (iv, cv), b + "mlp.up_proj.bias": (iv,),
                    b + "mlp.down_proj.weight": (cv, iv), b + "mlp.down_proj.bias": (cv,)})
    for prefix, width, n_inter, heads_q in (("vlm.model.language_model.layers.", h, inter, h),
                                            ("action_expert.layers.", e, ie, e)):
        for i in range(layers):
            b = f"{prefix}{i}."
            out.update({b + "input_layernorm.weight": (width,), b + "post_attention_layernorm.weight": (width,),
                        b + "self_attn.q_proj.weight": (heads_q, width), b + "self_attn.q_proj.bias": (heads_q,),
                        b + "self_attn.k_proj.weight": (kv * d, width), b + "self_attn.k_proj.bias": (kv * d,),
                        b + "self_attn.v_proj.weight": (kv * d, width), b + "self_attn.v_proj.bias": (kv * d,),
                        b + "self_attn.o_proj.weight": (width, width),
                        b + "mlp.gate_proj.weight": (n_inter, width), b + "mlp.up_proj.weight": (n_inter, width),
                        b + "mlp.down_proj.weight": (width, n_inter)})
    return out


def test_the_tiny_checkpoint_has_the_reference_layout(tiny15):
    from safetensors import safe_open

    with safe_open(str(tiny15 / "model.safetensors"), "pt") as f:
        found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    assert found == expected_layout()
    assert (tiny15 / "vlm" / "config.json").is_file() and (tiny15 / "processor" / "tokenizer.json").is_file()
    assert json.loads((tiny15 / "vlm" / "config.json").read_text())["num_attention_heads"] == 16


def _rewritten(src: pathlib.Path, dst: pathlib.Path, change) -> pathlib.Path:
    """A copy of checkpoint ``src`` whose tensors went through ``change(dict) -> dict``."""
    dst.mkdir()
    for item in src.iterdir():
        if item.name != "model.safetensors":
            (dst / item.name).symlink_to(item)
    tensors = change(safetensors_torch.load_file(str(src / "model.safetensors")))
    safetensors_torch.save_file(tensors, str(dst / "model.safetensors"))
    return dst


def test_strict_loading_names_every_missing_and_unexpected_key(tiny15, tmp_path):
    def change(t):
        t.pop("action_expert.layers.1.mlp.up_proj.weight")
        t["action_expert.embed_tokens.weight"] = torch.zeros(3, 48)
        return t

    bad = _rewritten(tiny15, tmp_path / "bad", change)
    with pytest.raises(ModelLoadError) as err:
        load_nora15(NoraConfig(model=str(bad), device="cpu"))
    text = str(err.value)
    assert "missing 1: action_expert.layers.1.mlp.up_proj.weight" in text
    assert "unexpected 1: action_expert.embed_tokens.weight" in text


def test_pre_452_vlm_names_are_refused_with_a_hint(tiny15, tmp_path):
    def change(t):
        return {k.replace("vlm.model.language_model.layers.", "vlm.model.layers."): v for k, v in t.items()}

    old = _rewritten(tiny15, tmp_path / "old", change)
    with pytest.raises(ModelLoadError, match="transformers < 4.52 names") as err:
        load_nora15(NoraConfig(model=str(old), device="cpu"))
    assert "vlm.model.language_model.layers.{0-1}.mlp.up_proj.weight" in str(err.value)


def test_a_misshapen_tensor_is_refused(tiny15, tmp_path):
    def change(t):
        t["action_in_proj.weight"] = torch.zeros(48, 8)
        return t

    bad = _rewritten(tiny15, tmp_path / "shape", change)
    with pytest.raises(ModelLoadError, match=r"action_in_proj.weight: file \(48, 8\), model \(48, 7\)"):
        load_nora15(NoraConfig(model=str(bad), device="cpu"))


def test_either_name_of_the_tied_embedding_loads(tiny15, tmp_path, policy, frame):
    def change(t):
        t["vlm.model.language_model.embed_tokens.weight"] = t.pop("vlm.lm_head.weight")
        return t

    other = _rewritten(tiny15, tmp_path / "emb", change)
    p = Nora15Policy(NoraConfig(model=str(other), device="cpu"))
    np.testing.assert_array_equal(p.run(frame, INSTRUCTION, noise=_noise()).normalized,
                                  policy.run(frame, INSTRUCTION, noise=_noise()).normalized)


def test_a_contradicting_variant_is_refused(tiny15):
    with pytest.raises(ConfigurationError, match="contradicts"):
        load_nora15(NoraConfig(model=str(tiny15), variant="nora-long", device="cpu"))


def test_without_local_copies_config_and_processor_come_from_the_reference_repos(tiny15, tmp_path, monkeypatch):
    from nora_ros.policy.nora import nora15

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("model.safetensors", "norm_stats.json"):
        (bare / name).symlink_to(tiny15 / name)
    asked = []
    real = nora15.resolve_checkpoint

    def fake(model, what="checkpoint", patterns=None):
        asked.append(model)
        return {"declare-lab/nora-long": tiny15 / "vlm", "declare-lab/nora": tiny15 / "processor"}.get(model) \
            or real(model, what, patterns)

    monkeypatch.setattr(nora15, "resolve_checkpoint", fake)
    loaded = load_nora15(NoraConfig(model=str(bare), device="cpu"))
    assert asked == [str(bare), "declare-lab/nora-long", "declare-lab/nora"]
    assert loaded.files.sources["vlm_config"] == "declare-lab/nora-long/config.json"


def independent_flow(weights: dict, cache_kv: list, noise: torch.Tensor, steps: int = 10, heads: int = 6,
                     eps: float = 1e-6) -> torch.Tensor:
    """NORA-1.5's sampler written out from the reference's arithmetic, in plain float32 torch.

    ``weights``: the checkpoint's non-VLM tensors; ``cache_kv``: per VLM layer (keys, values)
    ``[1, kv, L, d]`` after the VLM's own rotary embedding.
    """
    f = torch.nn.functional
    w = weights
    e = w["action_in_proj.weight"].shape[0]
    d = e // heads
    n_layers = len(cache_kv)
    t_len = noise.shape[0]

    def lin(x, name, bias=True):
        return f.linear(x, w[name + ".weight"], w[name + ".bias"] if bias else None)

    def rms(x, gain):
        return gain * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))

    def rope(x):  # [heads, T, d]: halves paired, base 10000, positions 0..T-1
        half = d // 2
        ang = torch.arange(t_len, dtype=torch.float32)[:, None] / 10000.0 ** (2.0 * torch.arange(half) / d)[None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * ang.cos() - x2 * ang.sin(), x2 * ang.cos() + x1 * ang.sin()], -1)

    def velocity(x, t):
        a = lin(x, "action_in_proj")
        frac = torch.linspace(0.0, 1.0, e // 2)
        ang = 2 * math.pi / (4e-3 * (4.0 / 4e-3) ** frac) * t
        temb = torch.cat([ang.sin(), ang.cos()]).expand(t_len, e)
        h = lin(f.silu(lin(torch.cat([a, temb], -1), "action_time_mlp_in")), "action_time_mlp_out")
        for i in range(n_layers):
            p = f"action_expert.layers.{i}."
            y = rms(h, w[p + "input_layernorm.weight"])
            q = rope(lin(y, p + "self_attn.q_proj").view(t_len, heads, d).transpose(0, 1))
            k = rope(lin(y, p + "self_attn.k_proj").view(t_len, -1, d).transpose(0, 1))
            v = lin(y, p + "self_attn.v_proj").view(t_len, -1, d).transpose(0, 1)
            keys = torch.cat([cache_kv[i][0][0], k], 1)  # prompt first, then the action tokens
            values = torch.cat([cache_kv[i][1][0], v], 1)
            group = heads // keys.shape[0]
            keys, values = keys.repeat_interleave(group, 0), values.repeat_interleave(group, 0)
            att = torch.softmax(q @ keys.transpose(1, 2) / math.sqrt(d), -1)  # no mask: all prompt, all actions
            h = h + lin((att @ values).transpose(0, 1).reshape(t_len, e), p + "self_attn.o_proj", bias=False)
            y = rms(h, w[p + "post_attention_layernorm.weight"])
            h = h + f.linear(f.silu(f.linear(y, w[p + "mlp.gate_proj.weight"])) * f.linear(y, w[p + "mlp.up_proj.weight"]),
                             w[p + "mlp.down_proj.weight"])
        return lin(rms(h, w["action_expert.norm.weight"]), "action_out_proj")

    x, t, dt = noise.clone(), torch.tensor(1.0, dtype=torch.float32), -1.0 / steps
    while t >= -dt / 2:  # t accumulates in float32: 1.0, 0.8999999762, ...
        x = x + dt * velocity(x, t)
        t = t + dt
    return x


def test_the_flow_head_equals_an_independent_step_by_step_computation(tiny15, policy, frame):
    weights = {k: v.float() for k, v in safetensors_torch.load_file(str(tiny15 / "model.safetensors")).items()
               if not k.startswith("vlm.")}
    inputs = policy.model_inputs(frame, INSTRUCTION)
    with torch.inference_mode():
        cache = output_cache(policy.loaded.vlm.model(**inputs, use_cache=True))  # transformers' own VLM forward
        cache_kv = [(layer.keys, layer.values) for layer in cache.layers]
        expected = independent_flow(weights, cache_kv, torch.from_numpy(_noise()))
    got = policy.run(frame, INSTRUCTION, noise=_noise()).normalized
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=3e-6)  # t as 1 - k/10 moves it ~2e-5
    assert np.abs(got).max() > 0.1  # a real signal, not all zeros


def test_a_chunk_has_the_flow_stages_and_the_seed(policy, frame):
    policy.reset(INSTRUCTION)
    chunk = policy.act(frame, INSTRUCTION)
    steps = [f"denoise_{i}" for i in range(10)]
    assert list(chunk.timings) == ["preprocess", "prefill", *steps, "unnormalize", "total"]
    assert chunk.actions.shape == (5, 7) and chunk.horizon == policy.horizon == 5
    assert chunk.metadata["seed"] == 3 and chunk.metadata["noise_index"] == 0 and chunk.metadata["dtype"] == "float32"
    assert 0.0 <= chunk.actions[:, 6].min() and chunk.actions[:, 6].max() <= 1.0


def test_noise_restarts_with_each_trial_and_is_deterministic_for_a_seed(tiny15, policy, frame):
    policy.reset(INSTRUCTION)
    first, second = policy.run(frame, INSTRUCTION), policy.run(frame, INSTRUCTION)
    assert (first.noise_index, second.noise_index) == (0, 1)
    assert not np.array_equal(first.normalized, second.normalized)
    policy.reset(INSTRUCTION)
    again = policy.run(frame, INSTRUCTION)
    np.testing.assert_array_equal(again.normalized, first.normalized)
    twin = Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", seed=3), loaded=policy.loaded)
    twin.reset(INSTRUCTION)
    np.testing.assert_array_equal(twin.run(frame, INSTRUCTION).normalized, first.normalized)
    other = Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", seed=4), loaded=policy.loaded)
    other.reset(INSTRUCTION)
    assert not np.array_equal(other.run(frame, INSTRUCTION).normalized, first.normalized)
    given = policy.run(frame, INSTRUCTION, noise=first.noise)
    np.testing.assert_array_equal(given.normalized, first.normalized)
    assert given.noise_index is None


def test_bfloat16_runs_the_whole_model_in_bfloat16(tiny15, policy, frame):
    bf16 = Nora15Policy(NoraConfig(model=str(tiny15), device="cpu", dtype="bfloat16"))
    assert bf16.loaded.flow.action_in_proj.weight.dtype == torch.bfloat16
    out = bf16.run(frame, INSTRUCTION, noise=_noise())
    assert out.times[1] == 0.8984375 and out.normalized.dtype == np.float32
    diff = np.abs(out.normalized - policy.run(frame, INSTRUCTION, noise=_noise()).normalized).max()
    assert 0 < diff < 1.0


def test_the_fast_head_decodes_tokens_from_the_same_vlm(tiny15, policy, frame):
    from nora_ros.policy.nora.policy import NoraPolicy

    # The tiny NORA-1.5's random weights are drawn large (the flow head must react to its input):
    # its token head then ranks action tokens far above <|im_end|> where a chunk ends, which the
    # horizon check refuses as it would a mismatched checkpoint; off for this shape test.
    fast = nora15_policy(NoraConfig(model=str(tiny15), action_head="fast", device="cpu", horizon_margin=0.0))
    assert isinstance(fast, NoraPolicy) and fast.horizon == 5
    fast.reset(INSTRUCTION)
    assert fast.act(frame, INSTRUCTION).actions.shape == (5, 7)
    assert isinstance(nora15_policy(NoraConfig(model=str(tiny15), device="cpu"), loaded=policy.loaded), Nora15Policy)


def test_infer_takes_noise_and_prints_normalized_actions(tiny15, policy, frame, tmp_path, capsys):
    from PIL import Image

    from nora_ros.cli import main

    image, noise = tmp_path / "frame.png", tmp_path / "noise.npy"
    Image.fromarray(frame.image).save(image)
    np.save(noise, _noise())
    rc = main(["infer", "--model", str(tiny15), "--image", str(image), "--instruction", INSTRUCTION,
               "--noise", str(noise), "--json", "--device", "cpu"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    np.testing.assert_allclose(out["normalized"], policy.run(frame, INSTRUCTION, noise=_noise()).normalized,
                               rtol=0, atol=1e-6)
    assert np.array(out["actions"]).shape == (5, 7) and out["metadata"]["noise_index"] is None
    rc = main(["infer", "--model", str(tiny15), "--image", str(image), "--instruction", INSTRUCTION,
               "--normalized", "--device", "cpu", "--flow-steps", "4", "--seed", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "normalized, before unnormalization" in text and "denoise_3" in text and "denoise_4" not in text
    rc = main(["infer", "--model", str(tiny15), "--image", str(image), "--instruction", INSTRUCTION,
               "--noise", str(noise), "--action-head", "fast", "--device", "cpu"])
    assert rc == 1 and "--noise is for NORA-1.5's flow head" in capsys.readouterr().err


def test_a_failure_inside_the_model_is_a_policy_error(policy, frame, monkeypatch):
    from nora_ros.errors import PolicyError

    def broken(*args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(policy.loaded.flow, "velocity", broken)
    with pytest.raises(PolicyError, match="out of memory.*the arm holds"):
        policy.act(frame, INSTRUCTION)


def test_compact_keys_names_every_key():
    keys = ["a.0.w", "a.1.w", "a.3.w", "b.w", "c.0.x.1.w"]
    assert compact_keys(keys) == ["a.{0-1,3}.w", "b.w", "c.0.x.1.w"]
