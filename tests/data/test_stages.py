"""Each pipeline stage, eagerly and inside Dataset.map; the composed pipeline; serving reuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.images import _image, good_encodings

from automl_app.data import stages
from automl_app.tf_env import tf

t = tf()


def _in_map(fn, value):
    """Run `fn` inside Dataset.map (graph mode) on one element and return the numpy result."""
    ds = t.data.Dataset.from_tensors(value).map(fn)
    return next(iter(ds)).numpy()


def _both(fn, value):
    eager = np.asarray(fn(t.constant(value)))
    graph = _in_map(fn, t.constant(value))
    return eager, graph


@pytest.mark.parametrize("name", sorted(good_encodings(_image(0, (20, 10), 0))))
def test_decode_every_encoding_to_rgb_eager_and_in_map(name):
    img = _image(5, (20, 10), 1)
    data = good_encodings(img)[name]
    eager, graph = _both(stages.decode, data)
    assert eager.shape == graph.shape == (10, 20, 3) and eager.dtype == np.uint8
    np.testing.assert_array_equal(eager, graph)
    import io

    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32)
    tol = 3.0 if "jp" in name.lower() or "webp" in name.lower() else 0.5
    assert np.abs(eager.astype(np.float32) - ref).mean() < tol


def test_read(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    eager, graph = _both(stages.read, str(path))
    assert eager == graph == b"abc"


@pytest.mark.parametrize("mode, lo, hi", [("0_1", 0.0, 1.0), ("-1_1", -1.0, 1.0)])
def test_scale(mode, lo, hi):
    x = np.array([[[0, 255, 128]]], dtype=np.uint8)
    eager, graph = _both(lambda v: stages.scale(v, mode), x)
    np.testing.assert_allclose(eager, graph)
    assert eager.dtype == np.float32 and eager[0, 0, 0] == lo and eager[0, 0, 1] == hi
    with pytest.raises(
        ValueError, match="`scale` must be one of 0_1, -1_1. Received: scale='0_255'"
    ):
        stages.scale(t.constant(x), "0_255")


def test_resize_with_pad_keeps_aspect_and_pads():
    x = np.ones((10, 40, 3), np.float32)
    eager, graph = _both(lambda v: stages.resize_with_pad(v, 32), x)
    np.testing.assert_allclose(eager, graph, atol=1e-6)
    assert eager.shape == (32, 32, 3)
    assert eager[0].max() == 0 and eager[-1].max() == 0  # padding rows top and bottom
    assert np.allclose(eager[16], 1.0, atol=1e-5)  # image rows in the middle


@pytest.mark.parametrize(
    "cfg",
    [
        stages.Augment(flip=True),
        stages.Augment(flip=False, rotation=0.1),
        stages.Augment(flip=False, crop=(0.3, 0.6)),
        stages.Augment(flip=False, brightness=0.2, contrast=0.3),
        stages.Augment(flip=False, jpeg_quality=(50, 90)),
        stages.Augment(True, 0.05, (0.5, 1.0), 0.1, 0.1, (70, 100)),
    ],
)
@pytest.mark.parametrize("mode", ["0_1", "-1_1"])
def test_augment_each_transform_keeps_shape_and_range(cfg, mode):
    lo, hi = stages.value_range(mode)
    rng = np.random.default_rng(0)
    x = (rng.random((24, 24, 3)) * (hi - lo) + lo).astype(np.float32)
    fn = stages.make_augment(cfg, mode)
    eager, graph = _both(fn, x)
    for out in (eager, graph):
        assert out.shape == (24, 24, 3) and out.dtype == np.float32
        assert out.min() >= lo - 1e-4 and out.max() <= hi + 1e-4
    assert not np.allclose(eager, x) or cfg == stages.Augment(flip=True)


def test_flip_and_crop_individually():
    x = np.arange(4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)
    outs = {stages.flip(t.constant(x)).numpy().tobytes() for _ in range(30)}
    assert outs == {x.tobytes(), x[:, ::-1].tobytes()}
    assert _in_map(lambda v: stages.crop(v, (0.25, 0.25)), t.constant(x)).shape == (4, 4, 3)


def test_batch_prefetch_and_cache(tmp_path):
    ds = t.data.Dataset.range(5)
    assert [b.numpy().tolist() for b in stages.prefetch(stages.batch(ds, 2))] == [
        [0, 1],
        [2, 3],
        [4],
    ]
    assert stages.cache(ds, None) is ds and stages.cache(ds, "none") is ds
    cached = stages.cache(ds.map(lambda x: x * 2), str(tmp_path / "c"))
    assert list(cached.as_numpy_iterator()) == [0, 2, 4, 6, 8]
    assert list(cached.as_numpy_iterator()) == [0, 2, 4, 6, 8]
    assert any(p.name.startswith("c") for p in tmp_path.iterdir())
    assert list(stages.cache(ds, "memory").as_numpy_iterator()) == [0, 1, 2, 3, 4]


def _files(tmp_path, n=6):
    paths, labels = [], []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        _image(i, (20 + 3 * i, 30), i % 3).save(path)
        paths.append(str(path))
        labels.append(i % 2)
    return paths, labels


@pytest.mark.parametrize("cache_to", [None, "memory"])
def test_build_composes_stages(tmp_path, cache_to):
    paths, labels = _files(tmp_path)
    ds = stages.build(
        paths,
        labels,
        num_classes=2,
        image_size=32,
        mode="-1_1",
        batch_size=4,
        training=True,
        augment=stages.Augment(True, 0.0, (0.5, 1.0), 0.1, 0.1, (70, 100)),
        cache_to=cache_to,
        seed=1,
    )
    for _ in range(2):  # two epochs
        batches = list(ds)
        assert [tuple(x.shape) for x, _ in batches] == [(4, 32, 32, 3), (2, 32, 32, 3)]
        assert sorted(np.argmax(np.concatenate([y for _, y in batches]), 1)) == sorted(labels)
    val = stages.build(
        paths, labels, num_classes=2, image_size=32, mode="0_1", batch_size=4, training=False
    )
    x = np.concatenate([b.numpy() for b, _ in val])
    assert x.min() >= 0 and x.max() <= 1


def test_serving_preprocess_matches_training_load(tmp_path):
    paths, _ = _files(tmp_path, 1)
    raw = np.asarray(Image.open(paths[0]).convert("RGB"))[None]
    served = stages.serving_preprocess(48, "-1_1")(t.constant(raw)).numpy()[0]
    loaded = stages.load(t.constant(paths[0]), size=48, mode="-1_1").numpy()
    np.testing.assert_allclose(served, loaded, atol=1e-5)


@pytest.mark.parametrize("h, w", [(20, 4000), (4000, 20), (1, 1), (1, 3000), (3000, 1), (7, 5)])
@pytest.mark.parametrize("size", [1, 32, 64])
def test_resize_with_pad_any_aspect_ratio_eager_and_in_map(h, w, size):
    """The crash train-scratch hit: TF's resize_with_pad asked for a 0-pixel side."""
    x = np.full((h, w, 3), 200, np.uint8)
    eager, graph = _both(lambda v: stages.resize_with_pad(v, size), x)
    np.testing.assert_array_equal(eager, graph)
    assert eager.shape == (size, size, 3) and eager.dtype == np.float32
    new_h, new_w, top, left = stages.fit_box(h, w, size)
    assert min(new_h, new_w) >= 1 and max(new_h, new_w) == size
    np.testing.assert_allclose(eager[top : top + new_h, left : left + new_w], 200.0, atol=1e-3)
    assert eager.sum() == pytest.approx(200.0 * 3 * new_h * new_w, rel=1e-5)


def test_resize_with_pad_matches_tf_where_tf_works():
    x = np.random.default_rng(0).random((2, 37, 90, 3)).astype(np.float32)
    ours = stages.resize_with_pad(t.constant(x), 48).numpy()
    theirs = t.image.resize_with_pad(x, 48, 48, antialias=True).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    served = stages.serving_preprocess(32, "0_1")(t.constant(np.zeros((3, 20, 4000, 3), np.uint8)))
    assert served.shape == (3, 32, 32, 3)


def test_load_uint8_keeps_the_value_range_and_can_make_grayscale(tmp_path):
    paths, _ = _files(tmp_path, 1)
    rgb = stages.load_uint8(t.constant(paths[0]), size=24).numpy()
    gray = _in_map(lambda p: stages.load_uint8(p, size=24, channels=1), t.constant(paths[0]))
    assert rgb.shape == (24, 24, 3) and rgb.dtype == np.uint8 and rgb.max() > 100
    assert gray.shape == (24, 24, 1) and gray.dtype == np.uint8
    ref = stages.resize_with_pad(stages.decode(stages.read(paths[0])), 24).numpy()
    np.testing.assert_array_equal(rgb, np.clip(np.round(ref), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("cache_to", [None, "memory"])
def test_build_with_a_guard_skips_and_names_a_file_broken_after_the_scan(tmp_path, cache_to):
    from automl_app.data import images

    paths, labels = _files(tmp_path, 5)
    victim = paths[2]
    with open(victim, "wb") as fh:
        fh.write(b"X" * 300)  # the scan passed it; now it is not an image
    lines: list[str] = []
    common = {"num_classes": 2, "image_size": 32, "mode": "0_1", "batch_size": 2}
    guard = images.SkipGuard(paths, log=lines.append)
    train = stages.build(
        paths, labels, training=True, cache_to=cache_to, seed=0, guard=guard, **common
    )
    for _ in range(2):
        assert sum(len(y) for _, y in train) == 4
    assert guard.check() == [(victim, guard.skipped[victim])]
    assert guard.skipped[victim].startswith("not an image")
    assert lines == [f"skipped: {victim}: {guard.skipped[victim]}"]
    assert guard.check() == [] and len(lines) == 1  # named once
    evaluation = images.SkipGuard(paths, log=None)
    ds = stages.build(paths, labels, training=False, guard=evaluation, one_hot=False, **common)
    got = np.concatenate([y.numpy() for _, y in ds]).tolist()
    kept_paths, kept_labels = evaluation.kept(paths, labels)
    assert got == kept_labels and victim not in kept_paths and len(kept_paths) == 4
    with pytest.raises(t.errors.InvalidArgumentError):  # no guard: the old behaviour
        list(stages.build(paths, labels, training=False, **common))


def test_quiet_decoder_warnings_drops_libjpeg_lines_only(capfd):
    import os

    with stages.quiet_decoder_warnings():
        os.write(2, b"Corrupt JPEG data: 3 extraneous bytes before marker 0xd9\n")
        os.write(2, b"Bogus marker length\nsomething else\n")
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n")
    assert capfd.readouterr().err == "something else\n"


def test_guard_callback_names_skipped_files_during_fit_and_predict(tmp_path, recwarn):
    import keras

    from automl_app.data import images

    paths, labels = _files(tmp_path, 6)
    Path(paths[1]).write_bytes(b"")  # empty now
    lines: list[str] = []
    common = {"num_classes": 2, "image_size": 16, "mode": "0_1", "batch_size": 4}
    train_guard = images.SkipGuard(paths[:4], log=lines.append)
    val_guard = images.SkipGuard(paths[4:], log=lines.append)
    train = stages.build(paths[:4], labels[:4], training=True, guard=train_guard, **common)
    val = stages.build(paths[4:], labels[4:], training=False, guard=val_guard, **common)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")])  # fmt: skip
    model.compile("sgd", "categorical_crossentropy")
    callbacks = [train_guard.callback(), val_guard.callback()]
    history = model.fit(train, validation_data=val, epochs=2, verbose=0, callbacks=callbacks)
    assert len(history.history["loss"]) == 2 and len(history.history["val_loss"]) == 2
    assert lines == [f"skipped: {paths[1]}: empty"]
    probs = model.predict(val, verbose=0, callbacks=[val_guard.callback()])
    assert probs.shape == (2, 2)
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
    import warnings

    assert not [f for f in warnings.filters if "ran out" in str(getattr(f[1], "pattern", ""))]


def _translations(x: np.ndarray, ph: int, pw: int) -> set[bytes]:
    """Every zero-filled translation of x by up to (ph, pw) pixels."""
    padded = np.pad(x, [(ph, ph), (pw, pw), (0, 0)])
    h, w = x.shape[:2]
    return {
        padded[i : i + h, j : j + w].tobytes() for i in range(2 * ph + 1) for j in range(2 * pw + 1)
    }


@pytest.mark.parametrize("fraction", [0.05, 0.25])
def test_shift_is_a_zero_filled_translation_eager_and_in_map(fraction):
    x = np.arange(8 * 8 * 1, dtype=np.uint8).reshape(8, 8, 1) + 1
    ph = pw = max(1, round(fraction * 8))
    allowed = _translations(x, ph, pw)
    fn = lambda img: stages.shift(img, fraction)  # noqa: E731
    outs = set()
    for _ in range(40):
        eager, graph = _both(fn, x)
        assert eager.dtype == graph.dtype == np.uint8 and eager.shape == graph.shape == x.shape
        assert eager.tobytes() in allowed and graph.tobytes() in allowed
        outs |= {eager.tobytes(), graph.tobytes()}
    assert len(outs) > 2  # it does move the image


def _old_hypermodel_augment(shift, flip, seed):
    """models/hypermodel.py's own augmentation before it used data/stages (the reference)."""

    def augment(x, y):
        if shift > 0:
            h, w = int(x.shape[0]), int(x.shape[1])
            ph, pw = max(1, round(shift * h)), max(1, round(shift * w))
            padded = t.pad(x, [[ph, ph], [pw, pw], [0, 0]])
            x = t.image.random_crop(padded, t.shape(x), seed=seed)
        if flip:
            x = t.image.random_flip_left_right(x, seed=seed)
        return x, y

    return augment


@pytest.mark.parametrize("shift, flip", [(0.1, False), (0.0, True), (0.2, True)])
def test_hypermodel_augment_is_stages_and_behaves_as_before(shift, flip):
    """The hypermodel's per-example augmentation goes through stages.shift/flip, with the same
    random draws as its former own code: eagerly and inside Dataset.map, seeded."""
    from automl_app.models import hypermodel

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8)
    y = np.arange(16)

    def run(make, *, in_map):
        t.random.set_seed(1)
        fn = make(shift, flip, 7)
        if in_map:
            ds = t.data.Dataset.from_tensor_slices((x, y)).map(fn)
            return np.stack([a.numpy() for a, _ in ds])
        return np.stack([fn(t.constant(xi), yi)[0].numpy() for xi, yi in zip(x, y, strict=True)])

    for in_map in (False, True):
        new = run(hypermodel._augmenter, in_map=in_map)
        old = run(_old_hypermodel_augment, in_map=in_map)
        np.testing.assert_array_equal(new, old)
        assert new.dtype == np.uint8 and new.shape == x.shape
        assert not np.array_equal(new, x)  # something moved
