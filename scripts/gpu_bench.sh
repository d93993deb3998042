#!/usr/bin/env bash
# NORA at full size on one GPU: eager vs accelerated (accelerate: on) for NORA, NORA-1.5 and
# NORA-Long, random weights at the Qwen2.5-VL-3B architecture in bfloat16 (issue 16). Prints,
# per variant, the median/p90 of every stage, of each decoded token (or NORA-1.5 Euler step), the
# peak GPU memory of each path, whether the load-time check kept the accelerated path, token
# equality over the timed steps, and the eager / accelerated ratio.
#
# Two modes:
#   scripts/gpu_bench.sh --prepare   here, with network: fetches the wheels the GPU image lacks
#                                    into .whl/ and copies what the tiny checkpoints are built
#                                    from (../shared/data: Qwen vocabulary, Bridge statistics and
#                                    episodes for the FAST table, one real frame) into .bench_shared/;
#                                    both are ignored by git (.git/info/exclude) and must be carried.
#   scripts/gpu_bench.sh             on the GPU machine (no network): installs the carried wheels
#                                    into /tmp/site, puts .bench_shared/ where ../shared would be,
#                                    and runs the three benches, each under its own time limit.
#
# The GPU image (/work/.library/device/KINDS.md, 2026-11) has torch 2.11 and transformers 5.17,
# but NORA's decoding loop accepts only transformers >=5.23,<5.26
# (nora_ros/policy/nora/compat.py): transformers 5.25.0 travels as a wheel with the two
# requirements the image has too old or not at all (WHEELS below, about 20 MB);
# numpy, scipy, pillow, opencv, safetensors 0.8, tokenizers 0.23, anyio, h11 are there.
# With the device tool: run(command="bash scripts/gpu_bench.sh", carry=[".whl", ".bench_shared"],
# timeout_s=540). Budget: under 8 minutes on an H100 (each bench is cut at its limit below).
set -uo pipefail
cd "$(dirname "$0")/.."

# transformers 5.25 and what it needs that the image lacks or has too old (read from each wheel's
# Requires-Dist: huggingface_hub 2.4 -> httpx2, httpcore2, truststore, click>=8.4.2, hf-xet>=1.6;
# kernels -> tomlkit); the versions are those the tests pass with here.
WHEELS=(transformers==5.25.0 huggingface_hub==2.4.0 kernels==0.19.1 tomlkit==0.15.3 httpx2==2.17.0
        httpcore2==2.17.0 truststore==0.10.5 click==8.5.1 hf-xet==1.8.0)

if [ "${1:-}" = "--prepare" ]; then
    set -e
    exclude="$(git rev-parse --git-common-dir)/info/exclude"
    for ignored in /.whl/ /.bench_shared/; do
        grep -qx "$ignored" "$exclude" 2>/dev/null || echo "$ignored" >> "$exclude"
    done
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${WHEELS[@]}"
    src=../shared/data
    dst=.bench_shared/data
    mkdir -p "$dst/simpler_real_bridge_frames" "$dst/octo_bridge_debug"
    cp -r "$src/qwen_tokenizer" "$src/norm_stats" "$dst/"
    cp -r "$src/octo_bridge_debug/extracted_train" "$dst/octo_bridge_debug/"
    cp "$src/simpler_real_bridge_frames/real_inpainting__bridge_real_eval_1.png" \
        "$src/simpler_real_bridge_frames/"*.mp4 "$dst/simpler_real_bridge_frames/"
    du -sh .whl .bench_shared
    exit 0
fi

if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "installing the carried wheels failed"; exit 1; }
    export PYTHONPATH="/tmp/site:$PWD"
else
    echo "no .whl/ carried: using the image's packages (NORA refuses transformers outside >=5.23,<5.26)"
    export PYTHONPATH="$PWD"
fi
if [ ! -d ../shared/data ] && [ -d .bench_shared/data ]; then
    mkdir -p ../shared && cp -r .bench_shared/data ../shared/   # where nora_ros.policy.nora.tiny looks
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, \
'cuda', torch.cuda.is_available())" || exit 1

status=0
echo "=== CUDA-graph decoding == eager tokens, tiny checkpoint, float32 and bfloat16, also from a thread (limit 70 s)"
timeout 70 python3 -m pytest -q -p no:cacheprovider test/policy/nora/test_accel.py -k cuda_graph 2>&1 | tail -5
[ "${PIPESTATUS[0]}" = 0 ] || status=1
bench() {  # LIMIT_S VARIANT
    local limit=$1 variant=$2
    echo "=== full-size $variant, bfloat16, eager vs accelerated (limit ${limit} s)"
    local t0=$SECONDS
    timeout "$limit" python3 -m nora_ros.bench policy --full-size --device cuda --dtype bfloat16 \
        --variant "$variant" --steps 50 --warmup 2 --no-reference 2>&1 | grep -v -E "Warning|warnings.warn|Loading weights|Writing model"
    local rc=${PIPESTATUS[0]}
    echo "=== $variant: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" = 0 ] || status=1
}
bench 120 nora
bench 120 nora-1.5
bench 130 nora-long
exit $status
