"""tf.data pipeline stages for image folders: one small function per stage.

read → decode → scale → resize_with_pad → [cache] → [shuffle] → augment (training only) → batch
→ prefetch. Each stage works on one tensor eagerly and inside `Dataset.map`, and the serving
signature reuses `scale` and `resize_with_pad`, so training and export agree on the value range.
`load_uint8` is the same chain without scaling, for engines that take numpy arrays.

A file that still fails to load inside a pipeline (it changed after the scan) is skipped when
`build` gets a guard (images.SkipGuard), which then names it; tf.data errors name no file.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from automl_app.tf_env import tf

SCALES = ("0_1", "-1_1")
# The decoder training uses; scan.py calls the same function so both agree on what is readable.
DECODE_FORMATS = "JPEG, PNG, GIF (first frame), BMP, WebP"


# Lines libjpeg and libpng print straight to stderr while decoding (they name no file).
DECODER_NOISE = re.compile(
    r"^(Corrupt JPEG data|Premature end of JPEG|Bogus |Invalid SOS|Unsupported marker|"
    r"Inconsistent progression|Warning: |Invalid JPEG|Not a JPEG file|JPEG datastream|"
    r"Huffman table|Quantization table|Unsupported JPEG|libpng (warning|error))"
)


@contextlib.contextmanager
def quiet_decoder_warnings() -> Iterator[None]:
    """Drop libjpeg/libpng warning lines from fd 2 while decoding; other lines are kept.

    The decoders write with fprintf, below Python, so fd 2 itself is redirected to a file for
    the duration and the non-decoder lines are written back afterwards.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not DECODER_NOISE.match(line))
            if kept:
                os.write(2, kept.encode())


def check_scale(scale: str) -> str:
    """Keras-style check of a value range name."""
    if scale not in SCALES:
        raise ValueError(f"`scale` must be one of {', '.join(SCALES)}. Received: scale={scale!r}")
    return scale


def read(path: Any) -> Any:
    """File bytes as a scalar string tensor."""
    return tf().io.read_file(path)


def decode(data: Any) -> Any:
    """Encoded bytes → uint8 [H,W,3]; grayscale, palette, RGBA and CMYK become RGB, GIF frame 0."""
    t = tf()
    image = t.io.decode_image(data, channels=3, expand_animations=False, dtype=t.uint8)
    image.set_shape([None, None, 3])
    return image


def scale(image: Any, mode: str) -> Any:
    """uint8 (or float 0..255) → float32 in [0,1] (`0_1`) or [-1,1] (`-1_1`)."""
    t = tf()
    check_scale(mode)
    x = t.cast(image, t.float32)
    return x / 255.0 if mode == "0_1" else x / 127.5 - 1.0


def value_range(mode: str) -> tuple[float, float]:
    """The (low, high) of a scale, for clipping after augmentation."""
    return (0.0, 1.0) if check_scale(mode) == "0_1" else (-1.0, 1.0)


def fit_box(height: int, width: int, size: int) -> tuple[int, int, int, int]:
    """(new_height, new_width, top, left) of an image resized into a `size` square.

    tf.image.resize_with_pad's rule in exact integer arithmetic, and no side below 1 pixel: a
    4000×20 image at size 32 becomes 32×1 where TF's op asked for 32×0 and failed. (TF's float32
    ratio also made the long side one pixel short at some sizes, e.g. 1×1 at 224.)
    """
    longest = max(height, width)
    new_h = min(size, max(1, height * size // longest))
    new_w = min(size, max(1, width * size // longest))
    top = min(size * (longest - height) // (2 * longest), size - new_h)
    left = min(size * (longest - width) // (2 * longest), size - new_w)
    return new_h, new_w, top, left


def resize_with_pad(image: Any, size: int) -> Any:
    """Keep the aspect ratio, pad to a `size`×`size` square ([H,W,C] or [N,H,W,C]) → float32.

    `fit_box` in graph ops: any image of at least 1×1 fits, whatever its aspect ratio, eagerly
    and inside Dataset.map (the shape is only known at run time there).
    """
    t = tf()
    image = t.convert_to_tensor(image)
    batched = image.shape.rank == 4
    if not batched:
        image = image[None]
    shape = t.cast(t.shape(image), t.int64)
    height, width = shape[1], shape[2]
    longest = t.maximum(height, width)
    n = t.constant(size, t.int64)

    def side(length):
        return t.clip_by_value(length * n // longest, 1, n)

    def offset(length, new):
        return t.minimum(n * (longest - length) // (2 * longest), n - new)

    new_h, new_w = side(height), side(width)
    resized = t.image.resize(image, t.cast(t.stack([new_h, new_w]), t.int32), antialias=True)
    out = t.image.pad_to_bounding_box(
        resized,
        t.cast(offset(height, new_h), t.int32),
        t.cast(offset(width, new_w), t.int32),
        size,
        size,
    )
    out = t.ensure_shape(out, [None, size, size, image.shape[-1]])
    return out if batched else out[0]


def resize(image: Any, height: int, width: int) -> Any:
    """Stretch to exactly height×width (no padding; for inputs whose spec fixes both) → float32.

    The same antialiased bilinear resize as resize_with_pad, without keeping the aspect ratio.
    """
    t = tf()
    return t.image.resize(image, [int(height), int(width)], antialias=True)


def to_uint8(image: Any) -> Any:
    """float 0..255 (e.g. after resize_with_pad of a uint8 image) → uint8, rounded and clipped."""
    t = tf()
    return t.cast(t.clip_by_value(t.round(image), 0.0, 255.0), t.uint8)


def load_uint8(path: Any, *, size: int, channels: int = 3) -> Any:
    """read → decode → resize_with_pad, kept uint8 0..255 (arrays for KerasTuner and AutoKeras).

    channels=1 converts to grayscale after resizing (same luma weights as tf.image).
    """
    t = tf()
    image = resize_with_pad(decode(read(path)), size)
    if channels == 1:
        image = t.image.rgb_to_grayscale(image)
    return to_uint8(image)


def load(path: Any, *, size: int, mode: str) -> Any:
    """read → decode → scale → resize_with_pad: the deterministic part, worth caching."""
    return resize_with_pad(scale(decode(read(path)), mode), size)


@dataclass(frozen=True)
class Augment:
    """Random augmentation for training; zero/None switches a transform off.

    rotation: fraction of a full turn (as keras RandomRotation); crop: (min, max) area kept
    before resizing back; brightness: max delta as a fraction of the value range; contrast:
    max factor change; jpeg_quality: (min, max) quality of a random re-encode.
    """

    flip: bool = True
    rotation: float = 0.0
    crop: tuple[float, float] | None = None
    brightness: float = 0.0
    contrast: float = 0.0
    jpeg_quality: tuple[int, int] | None = None

    @property
    def active(self) -> bool:
        return bool(
            self.flip
            or self.rotation
            or self.crop
            or self.brightness
            or self.contrast
            or self.jpeg_quality
        )


def flip(image: Any, seed: int | None = None) -> Any:
    """Random left-right mirror."""
    return tf().image.random_flip_left_right(image, seed=seed)


def shift(image: Any, fraction: float, seed: int | None = None) -> Any:
    """Random translation of an [H,W,C] image by up to `fraction` of its size, zeros filled in.

    Zero-padding then a random crop back to size: on uint8 data a fraction of the cost of
    keras RandomTranslation (an interpolating projective transform), and exact pixel moves.
    The image's static height and width must be known (they are for cached arrays).
    """
    t = tf()
    h, w = int(image.shape[0]), int(image.shape[1])
    ph, pw = max(1, round(fraction * h)), max(1, round(fraction * w))
    padded = t.pad(image, [[ph, ph], [pw, pw], [0, 0]])
    return t.image.random_crop(padded, t.shape(image), seed=seed)


def rotate(layer: Any, image: Any) -> Any:
    """Random rotation with a prebuilt keras RandomRotation layer (reflect fill)."""
    return layer(image, training=True)


def crop(image: Any, area: tuple[float, float]) -> Any:
    """Random square crop keeping `area` of the image, resized back (zoom-in augmentation).

    One crop_and_resize op (box in relative coordinates) instead of crop + resize.
    """
    t = tf()
    side = t.sqrt(t.random.uniform([], area[0], area[1]))
    y0, x0 = t.unstack(t.random.uniform([2], 0.0, 1.0) * (1.0 - side))
    box = t.reshape(t.stack([y0, x0, y0 + side, x0 + side]), [1, 4])
    size = t.shape(image)[:2]
    out = t.image.crop_and_resize(image[None], box, t.zeros([1], t.int32), size)
    return t.reshape(out, t.shape(image))


def brightness_contrast(image: Any, brightness: float, contrast: float, mode: str) -> Any:
    """Random brightness shift and contrast factor, clipped back into the value range."""
    t = tf()
    lo, hi = value_range(mode)
    if brightness:
        image = t.image.random_brightness(image, brightness * (hi - lo))
    if contrast:
        image = t.image.random_contrast(image, 1.0 - contrast, 1.0 + contrast)
    return t.clip_by_value(image, lo, hi)


def jpeg_quality(image: Any, quality: tuple[int, int], mode: str) -> Any:
    """Re-encode as JPEG at a random quality (mapped through [0,1], as the op requires)."""
    t = tf()
    lo, hi = value_range(mode)
    unit = t.clip_by_value((image - lo) / (hi - lo), 0.0, 1.0)
    out = t.image.random_jpeg_quality(unit, int(quality[0]), int(quality[1]))
    out = t.reshape(out, t.shape(image))
    return out * (hi - lo) + lo


def make_augment(cfg: Augment, mode: str) -> Callable[[Any], Any]:
    """One function image → image that applies the configured transforms in a fixed order."""
    rotation_layer = None
    if cfg.rotation:
        tf()
        import keras

        rotation_layer = keras.layers.RandomRotation(cfg.rotation, fill_mode="reflect")

    def augment(image):
        if cfg.flip:
            image = flip(image)
        if rotation_layer is not None:
            image = rotate(rotation_layer, image)
        if cfg.crop:
            image = crop(image, cfg.crop)
        if cfg.brightness or cfg.contrast:
            image = brightness_contrast(image, cfg.brightness, cfg.contrast, mode)
        if cfg.jpeg_quality:
            image = jpeg_quality(image, cfg.jpeg_quality, mode)
        return image

    return augment


def batch(ds: Any, batch_size: int, *, drop_remainder: bool = False) -> Any:
    """Group examples; the last partial batch is kept unless asked otherwise."""
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def prefetch(ds: Any) -> Any:
    """Overlap input with training (buffer tuned by tf.data)."""
    return ds.prefetch(tf().data.AUTOTUNE)


def cache(ds: Any, where: str | None) -> Any:
    """Keep decoded-resized tensors: None/'none' = off, 'memory', or a file path prefix."""
    if not where or where == "none":
        return ds
    return ds.cache() if where == "memory" else ds.cache(str(where))


def skip_failures(ds: Any) -> Any:
    """Drop elements whose loading raised (the guard names them later); TF logs each error."""
    return ds.ignore_errors(log_warning=True)


def record_paths(guard: Any) -> Callable[..., Any]:
    """Map fn (x, y, paths) → (x, y) that tells `guard.record(paths)` which files got through.

    One py_function call per batch, not per image, so the cost does not show in training.
    """
    t = tf()

    def fn(x, y, paths):
        done = t.py_function(guard.record, [paths], Tout=t.bool)
        with t.control_dependencies([done]):
            return t.identity(x), y

    return fn


def build(
    paths: Sequence[str],
    labels: Sequence[int],
    *,
    num_classes: int,
    image_size: int,
    mode: str,
    batch_size: int,
    training: bool,
    augment: Augment | None = None,
    cache_to: str | None = None,
    shuffle_buffer: int = 2048,
    seed: int | None = None,
    one_hot: bool = True,
    guard: Any = None,
) -> Any:
    """Compose the stages into a Dataset of (images float32 [B,S,S,3], labels) batches.

    guard: an images.SkipGuard for `paths`. With it, a file that fails to load is skipped
    (never ending the run) and the guard names it (`guard.check()`, or its Keras callback);
    without it, such a file raises an error from inside tf.data.
    """
    t = tf()
    auto = t.data.AUTOTUNE
    check_scale(mode)
    n = len(paths)
    ds = t.data.Dataset.from_tensor_slices((list(map(str, paths)), list(map(int, labels))))
    cached = bool(cache_to) and cache_to != "none"
    if training and not cached:
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)

    fn = make_augment(augment, mode) if training and augment and augment.active else None
    order = {"num_parallel_calls": auto, "deterministic": not training}

    def decoded(path, label):
        x = load(path, size=image_size, mode=mode)
        return (x, label, path) if guard is not None else (x, label)

    def finish(x, label, *path):
        x = fn(x) if fn is not None else x
        return (x, (t.one_hot(label, num_classes) if one_hot else label), *path)

    if cached:  # decode once, then shuffle and augment the cached tensors every epoch
        ds = ds.map(decoded, **order)
        ds = cache(skip_failures(ds) if guard is not None else ds, cache_to)
        if training:
            ds = ds.shuffle(
                max(min(n, shuffle_buffer), 1), seed=seed, reshuffle_each_iteration=True
            )
        ds = ds.map(finish, **order)
    else:  # one fused map: each extra Dataset.map costs per-element overhead
        ds = ds.map(lambda path, label: finish(*decoded(path, label)), **order)
        ds = skip_failures(ds) if guard is not None else ds
    ds = batch(ds, batch_size)
    if guard is not None:
        ds = ds.map(record_paths(guard))
    return prefetch(ds)


def serving_preprocess(image_size: int, mode: str) -> Callable[[Any], Any]:
    """uint8 [N,H,W,3] of any size → model input: the same scale + resize_with_pad as training."""
    check_scale(mode)

    def preprocess(images):
        return resize_with_pad(scale(images, mode), image_size)

    return preprocess
