"""tf.data pipeline stages for image folders: one small function per stage.

read → decode → scale → resize_with_pad → [cache] → [shuffle] → augment (training only) → batch
→ prefetch. Each stage works on one tensor eagerly and inside `Dataset.map`, and the serving
signature reuses `scale` and `resize_with_pad`, so training and export agree on the value range.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from automl_app.tf_env import tf

SCALES = ("0_1", "-1_1")
# The decoder training uses; scan.py calls the same function so both agree on what is readable.
DECODE_FORMATS = "JPEG, PNG, GIF (first frame), BMP, WebP"


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


def resize_with_pad(image: Any, size: int) -> Any:
    """Keep the aspect ratio, pad to a `size`×`size` square ([H,W,C] or [N,H,W,C])."""
    t = tf()
    return t.image.resize_with_pad(image, size, size, antialias=True)


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


def flip(image: Any) -> Any:
    """Random left-right mirror."""
    return tf().image.random_flip_left_right(image)


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
) -> Any:
    """Compose the stages into a Dataset of (images float32 [B,S,S,3], labels) batches."""
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
        return load(path, size=image_size, mode=mode), label

    def finish(x, label):
        x = fn(x) if fn is not None else x
        return x, (t.one_hot(label, num_classes) if one_hot else label)

    if cached:  # decode once, then shuffle and augment the cached tensors every epoch
        ds = cache(ds.map(decoded, **order), cache_to)
        if training:
            ds = ds.shuffle(
                max(min(n, shuffle_buffer), 1), seed=seed, reshuffle_each_iteration=True
            )
        ds = ds.map(finish, **order)
    else:  # one fused map: each extra Dataset.map costs per-element overhead
        ds = ds.map(lambda path, label: finish(*decoded(path, label)), **order)
    return prefetch(batch(ds, batch_size))


def serving_preprocess(image_size: int, mode: str) -> Callable[[Any], Any]:
    """uint8 [N,H,W,3] of any size → model input: the same scale + resize_with_pad as training."""
    check_scale(mode)

    def preprocess(images):
        return resize_with_pad(scale(images, mode), image_size)

    return preprocess
