"""Image preprocessing: validation, lanczos3 resize as training did, patches as the processor makes them."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data_path
from PIL import Image

from nora_ros.camera.preprocess import (
    PatchSpec,
    PreprocessConfig,
    lanczos3_matrix,
    pixel_patches,
    resize_lanczos3,
    to_model_image,
    validate_image,
)
from nora_ros.errors import ConfigurationError, InvalidInputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@pytest.fixture(scope="module")
def real_frame() -> np.ndarray:
    path = shared_data_path("simpler_real_bridge_frames", "real_inpainting__bridge_real_eval_1.png")
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (480, 640, 3)
    return img


@pytest.mark.parametrize(
    ("image", "encoding", "match"),
    [
        (np.zeros((480, 640, 3), np.float32), "rgb8", "uint8"),
        (np.zeros((480, 640), np.uint8), "rgb8", "HxWx3"),
        (np.zeros((480, 640, 4), np.uint8), "rgb8", "HxWx3"),
        (np.zeros((1, 640, 3), np.uint8), "rgb8", "at least 2x2"),
        (np.zeros((480, 640, 3), np.uint8), "mono8", "encoding"),
        ([[0, 0, 0]], "rgb8", "numpy array"),
    ],
)
def test_bad_images_are_rejected_with_the_reason(image, encoding, match):
    with pytest.raises(InvalidInputError, match=match):
        to_model_image(image, encoding)


def test_valid_image_passes_validation_unchanged():
    img = np.zeros((4, 5, 3), np.uint8)
    assert validate_image(img) is img


@pytest.mark.parametrize(("size", "jpeg"), [(100, None), (224, 0), (224, 101)])
def test_bad_preprocess_config_says_how_to_fix(size, jpeg):
    with pytest.raises(ConfigurationError):
        PreprocessConfig(size=size, jpeg_quality=jpeg)


@pytest.mark.parametrize(("n_in", "n_out"), [(480, 224), (640, 224), (64, 224), (224, 224)])
def test_lanczos_rows_are_normalized_and_local(n_in, n_out):
    m = lanczos3_matrix(n_in, n_out).toarray()
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-5)
    # Antialiased lanczos3 reaches 3 input pixels per output pixel when shrinking, 3 when growing.
    support = 3 * max(n_in / n_out, 1.0)
    for i in (0, n_out // 2, n_out - 1):
        centre = (i + 0.5) * n_in / n_out - 0.5
        nz = np.flatnonzero(m[i])
        assert np.all(np.abs(nz - centre) <= support + 0.5)


def test_resize_matches_pil_lanczos_on_a_real_frame(real_frame):
    ours = to_model_image(real_frame)
    pil = np.asarray(Image.fromarray(real_frame).resize((224, 224), Image.LANCZOS))
    diff = np.abs(ours.astype(int) - pil.astype(int))
    assert ours.shape == (224, 224, 3) and ours.dtype == np.uint8
    # PIL computes in fixed point; TensorFlow (training) and we in float: at most one level apart.
    assert diff.max() <= 1
    assert diff.mean() < 0.3


def test_upsampling_small_images_also_matches_pil():
    # Smooth content: PIL clips to uint8 between its two passes, so ringing on noise differs.
    ys, xs = np.mgrid[0:64, 0:48] / 64.0
    small = np.stack([128 + 100 * np.sin(3 * ys), 128 + 100 * np.cos(4 * xs), 255 * ys * xs], axis=-1).astype(np.uint8)
    ours = resize_lanczos3(small, 224, 224)
    pil = np.asarray(Image.fromarray(small).resize((224, 224), Image.LANCZOS))
    assert np.abs(ours.astype(int) - pil.astype(int)).max() <= 1


def test_constant_image_stays_constant():
    img = np.full((480, 640, 3), 117, np.uint8)
    assert np.all(to_model_image(img) == 117)


def test_bgr_input_gives_the_same_model_image_as_rgb(real_frame):
    bgr = np.ascontiguousarray(real_frame[..., ::-1])
    np.testing.assert_array_equal(to_model_image(bgr, "bgr8"), to_model_image(real_frame, "rgb8"))


def test_224_input_is_passed_through():
    img = np.random.default_rng(2).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_model_image(img), img)


def test_jpeg_round_trip_is_applied_when_asked(real_frame):
    plain = to_model_image(real_frame)
    jpeg = to_model_image(real_frame, config=PreprocessConfig(jpeg_quality=95))
    diff = np.abs(plain.astype(int) - jpeg.astype(int))
    assert diff.max() > 0  # the round trip changed something
    assert diff.mean() < 3.0  # but quality 95 stays close


def test_patches_equal_the_qwen2vl_image_processor(real_frame):
    pytest.importorskip("transformers")
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil()
    image = to_model_image(real_frame)
    spec = PatchSpec.from_processor(processor)
    ours, grid = pixel_patches(image, spec)
    ref = processor(images=[Image.fromarray(image)], return_tensors="np")
    assert ours.shape == (256, 1176) and ours.dtype == np.float32
    np.testing.assert_array_equal(grid, ref["image_grid_thw"])
    np.testing.assert_allclose(ours, ref["pixel_values"], atol=1e-6, rtol=0)
    assert spec.n_image_tokens(224, 224) == 64


def test_patch_layout_puts_each_14x14_patch_in_one_row():
    # A 28x28 image whose pixel value encodes its position: check row/col order by hand.
    spec = PatchSpec(image_mean=(0.0, 0.0, 0.0), image_std=(1.0, 1.0, 1.0), rescale_factor=1.0)
    ys, xs = np.mgrid[0:28, 0:28]
    img = np.stack([ys, xs, np.zeros_like(ys)], axis=-1).astype(np.uint8)
    pv, grid = pixel_patches(img, spec)
    assert grid.tolist() == [[1, 2, 2]] and pv.shape == (4, 3 * 2 * 14 * 14)
    patch = pv.reshape(4, 3, 2, 14, 14)
    # Row 1 of the merge window is the top-right patch: rows 0..13, columns 14..27.
    np.testing.assert_array_equal(patch[1, 0, 0], ys[:14, 14:])
    np.testing.assert_array_equal(patch[1, 1, 1], xs[:14, 14:])  # time copy identical
    np.testing.assert_array_equal(patch[2, 0, 0], ys[14:, :14])


def test_patching_rejects_sizes_off_the_patch_grid():
    spec = PatchSpec(image_mean=CLIP_MEAN, image_std=CLIP_STD)
    with pytest.raises(InvalidInputError, match="multiple of 28"):
        pixel_patches(np.zeros((30, 28, 3), np.uint8), spec)
    with pytest.raises(ConfigurationError):
        PatchSpec(image_mean=CLIP_MEAN, image_std=(0.2, 0.0, 0.2))


def test_jpeg_round_trip_decodes_with_the_fast_idct_as_tensorflow_does(real_frame):
    """The reference loop decodes with TensorFlow, whose libjpeg uses the fast integer IDCT
    (checked equal to TensorFlow 2.15 on the real frames by a script outside the repo); PIL's
    accurate IDCT gives other pixels, and that must show here, or the test could not fail."""
    import io

    import simplejpeg
    from PIL import Image

    from nora_ros.camera.preprocess import jpeg_round_trip

    ours = jpeg_round_trip(real_frame, 95)
    buf = io.BytesIO()
    Image.fromarray(real_frame).save(buf, format="JPEG", quality=95)
    fast = simplejpeg.decode_jpeg(buf.getvalue(), fastdct=True, fastupsample=False)
    accurate = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    assert ours.shape == real_frame.shape and ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, fast)
    assert (ours != accurate).mean() > 0.3  # ~60 % of the values differ on a real frame


def test_a_frame_that_is_not_4_3_is_warned_once_or_cropped(caplog):
    import logging

    from nora_ros.camera import preprocess

    wide = np.zeros((360, 640, 3), np.uint8)
    wide[:, 80:560] = 200  # the centre 4:3 window (480 wide) is bright, the sides dark
    preprocess._warned_shapes.discard((360, 640))
    with caplog.at_level(logging.WARNING, logger="nora_ros.camera.preprocess"):
        to_model_image(wide)
        to_model_image(wide)
        to_model_image(np.zeros((480, 640, 3), np.uint8))
    warnings = [r for r in caplog.records if "not the 4:3" in r.getMessage()]
    assert len(warnings) == 1 and "640x360" in warnings[0].getMessage()
    cropped = to_model_image(wide, config=PreprocessConfig(aspect="crop"))
    squashed = to_model_image(wide)
    assert cropped.min() == 200 and squashed.min() < 50  # the crop keeps only the centre window
    assert preprocess.crop_to_aspect(np.zeros((480, 800, 3))).shape[:2] == (480, 640)
    assert preprocess.crop_to_aspect(np.zeros((600, 640, 3))).shape[:2] == (480, 640)
    with pytest.raises(ConfigurationError, match="aspect must be one of"):
        PreprocessConfig(aspect="stretch")
