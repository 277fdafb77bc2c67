"""Is the image pipeline fast enough to keep MobileNetV2 busy? Ratios measured in one run.

    python bench/pipeline_throughput.py                   # 1,000 generated JPEGs, 96 px
    python bench/pipeline_throughput.py --dir PHOTOS      # your own DIR/<class>/* folder

Prints: decode+resize-only images/s; the full training pipeline (augmentation on) images/s and
their ratio (target >= 0.8); epoch-2 speed-up from `cache: memory` (target >= 5x); MobileNetV2
training images/s at 96 px fed by the real pipeline vs by cached tensors (target >= 0.9, i.e. not
input-bound). With a GPU, the last measurement is repeated at 224 px with mixed precision.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from automl_app.data import folders, stages  # noqa: E402
from automl_app.tf_env import tf  # noqa: E402

AUGMENT = stages.Augment(flip=True, crop=(0.35, 1.0), jpeg_quality=(70, 100))


def make_jpegs(root: Path, n: int, seed: int = 0) -> None:
    """n JPEGs of mixed sizes (120..480 px sides) in 4 class folders, smooth content + noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(n):
        w, h = (int(v) for v in rng.integers(120, 481, size=2))
        small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((w, h), Image.Resampling.BILINEAR)
        arr = np.asarray(img, dtype=np.int16) + rng.integers(-12, 13, (h, w, 3))
        d = root / f"class{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(d / f"{i:05d}.jpg", quality=90)


def epoch_seconds(ds) -> tuple[float, int]:
    """Wall time to iterate one epoch, and how many images it yielded."""
    start, n = time.perf_counter(), 0
    for x, _ in ds:
        n += int(x.shape[0])
    return time.perf_counter() - start, n


def train_rate(model, ds, steps: int) -> float:
    """Images/s of model.fit over `steps` batches (after a warm-up that traces the step)."""
    model.fit(ds.take(2), epochs=1, verbose=0)
    batch = next(iter(ds))[0].shape[0]
    start = time.perf_counter()
    model.fit(ds.take(steps), epochs=1, verbose=0)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="image folder (default: generate JPEGs in a temp dir)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=5, help="batches timed per feed")
    parser.add_argument("--alpha", type=float, default=1.0)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_HOME", tempfile.mkdtemp(prefix="keras_home_"))
    t = tf()
    import keras

    from automl_app.models import mobilenetv2

    tmp = tempfile.TemporaryDirectory(prefix="pipeline_bench_")
    root = Path(args.dir) if args.dir else Path(tmp.name) / "jpegs"
    if not args.dir:
        start = time.perf_counter()
        make_jpegs(root, args.images)
        print(
            f"generated {args.images} JPEGs (120..480 px sides) in {time.perf_counter() - start:.1f} s"
        )
    listing = folders.list_folder(root)
    names = listing.class_names
    paths = [f.path for f in listing.files]
    labels = [names.index(f.label) for f in listing.files]
    size, bs = args.image_size, args.batch_size
    common = dict(num_classes=len(names), image_size=size, mode="-1_1", batch_size=bs)
    gpus = t.config.list_physical_devices("GPU")
    print(
        f"{len(paths)} images, {size} px, batch {bs}, {os.cpu_count()} CPU cores, "
        f"{len(gpus)} GPU(s), TensorFlow {t.__version__}"
    )

    # Same shuffle and ordering for both; only the augmentation differs. Best of two rounds,
    # interleaved, because a shared machine's load comes and goes.
    plain = stages.build(paths, labels, training=True, augment=stages.Augment(flip=False), **common)
    full = stages.build(paths, labels, training=True, augment=AUGMENT, **common)
    epoch_seconds(plain.take(2))  # warm up the graph functions
    epoch_seconds(full.take(2))
    r_plain = r_full = 0.0
    for _ in range(2):
        secs, n = epoch_seconds(plain)
        r_plain = max(r_plain, n / secs)
        secs, n = epoch_seconds(full)
        r_full = max(r_full, n / secs)
    print(f"decode+resize only:      {r_plain:8.1f} images/s")
    print(f"full training pipeline:  {r_full:8.1f} images/s (flip, crop, JPEG quality)")
    print(f"ratio full/decode-only:  {r_full / r_plain:8.2f}  (target >= 0.8)")

    cached = stages.build(
        paths, labels, training=True, augment=AUGMENT, cache_to="memory", **common
    )
    e1, _ = epoch_seconds(cached)
    e2, _ = epoch_seconds(cached)
    print(
        f"cache (memory): epoch 1 {e1:.2f} s, epoch 2 {e2:.2f} s: speed-up {e1 / e2:.1f}x (target >= 5x)"
    )

    def feeds_and_model(size: int, mixed: bool):
        keras.mixed_precision.set_global_policy("mixed_float16" if mixed else "float32")
        model = mobilenetv2.build(len(names), size, alpha=args.alpha)
        model.compile(
            keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), "categorical_crossentropy"
        )
        n_take = (args.train_steps + 2) * bs
        real = stages.build(
            paths[:n_take] * 2,
            labels[:n_take] * 2,
            training=True,
            augment=AUGMENT,
            **{**common, "image_size": size},
        ).repeat()
        xs, ys = zip(
            *[(x.numpy(), y.numpy()) for x, y in real.take(args.train_steps + 2)], strict=True
        )
        tensors = t.data.Dataset.from_tensor_slices((np.concatenate(xs), np.concatenate(ys)))
        tensors = tensors.batch(bs).prefetch(t.data.AUTOTUNE).repeat()
        return model, real, tensors

    settings = [(size, False)] + ([(224, True)] if gpus else [])
    for s, mixed in settings:
        model, real, tensors = feeds_and_model(s, mixed)
        fed_tensors = fed_real = 0.0
        for _ in range(2):  # interleaved, best of two
            fed_tensors = max(fed_tensors, train_rate(model, tensors, args.train_steps))
            fed_real = max(fed_real, train_rate(model, real, args.train_steps))
        print(
            f"MobileNetV2 a={args.alpha} {s} px{' mixed precision' if mixed else ''} training: "
            f"real pipeline {fed_real:.1f} img/s, cached tensors {fed_tensors:.1f} img/s: "
            f"ratio {fed_real / fed_tensors:.2f} (target >= 0.9)"
        )
    keras.mixed_precision.set_global_policy("float32")
    tmp.cleanup()


if __name__ == "__main__":
    main()
