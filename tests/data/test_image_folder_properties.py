"""Every file the scan accepts loads through the training stages at any --image-size (property
based), and an image folder gets the same blacklist and the same splits whatever the size.

Which PIL formats can write which modes (the fixtures convert the rest, see `writable`):
JPEG: L, RGB, CMYK (not LA, P, RGBA, I;16). PNG: L, LA, P, RGB, RGBA, I;16 (not CMYK).
GIF: any mode, stored as a palette (P/L), CMYK only after RGB. BMP: L, P, RGB (RGBA written as
RGB; not LA, CMYK, I;16; 1-bit BMP is written but tf.io cannot decode it). WebP: any mode,
stored as RGB(A); an animated WebP tf.io cannot decode (the scan rejects both as unsupported).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from automl_app.data import folders, images, scan, stages
from automl_app.tf_env import tf

t = tf()

MODES = ("L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16")
FORMATS = ("JPEG", "PNG", "GIF", "GIF-animated", "BMP", "WEBP")
EXTENSIONS = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "GIF": (".gif",),
    "GIF-animated": (".gif",),
    "BMP": (".bmp",),
    "WEBP": (".webp",),
}
WRITABLE = {
    "JPEG": {"L", "RGB", "CMYK"},
    "PNG": {"L", "LA", "P", "RGB", "RGBA", "I;16"},
    "BMP": {"L", "P", "RGB"},
}
# What to convert a mode to when the format cannot write it.
FALLBACK = {"LA": "L", "P": "RGB", "RGBA": "RGB", "CMYK": "RGB", "I;16": "L"}
SIZES = (32, 64)


def writable(mode: str, fmt: str) -> str:
    """The mode a fixture is written in: `mode` itself when `fmt` can write it."""
    allowed = WRITABLE.get(fmt.split("-")[0])
    if allowed is None or mode in allowed:  # GIF and WebP convert any mode themselves
        return "RGB" if mode == "CMYK" and fmt.startswith("GIF") else mode
    return FALLBACK[mode] if FALLBACK[mode] in allowed else "RGB"


def picture(mode: str, width: int, height: int, seed: int = 0) -> Image.Image:
    """A random picture in `mode` (I;16 from 16-bit values, the others converted from RGB)."""
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        return Image.fromarray((rng.random((height, width)) * 65535).astype(np.uint16))
    rgb = Image.fromarray((rng.random((height, width, 3)) * 255).astype(np.uint8))
    return rgb.convert(mode)


def encode(mode: str, fmt: str, width: int, height: int, seed: int = 0) -> bytes:
    """Bytes of one image file; GIF-animated has two frames."""
    img = picture(writable(mode, fmt), width, height, seed)
    buf = io.BytesIO()
    if fmt == "GIF-animated":
        second = img.transpose(Image.Transpose.ROTATE_180)
        img.save(buf, "GIF", save_all=True, append_images=[second], duration=40, loop=0)
    else:
        img.save(buf, fmt)
    return buf.getvalue()


def _graph_load(paths: list[str], size: int) -> np.ndarray:
    ds = t.data.Dataset.from_tensor_slices(paths).map(lambda p: stages.load_uint8(p, size=size))
    return np.stack(list(ds.as_numpy_iterator()))


def _check_loads_everywhere(paths: list[str]) -> None:
    """The scan accepts every file, and each loads the same eagerly, in Dataset.map and in
    load_arrays, at every size."""
    for path in paths:
        result = scan.check_file(path)
        assert result.ok, (path, result.reason, result.detail)
    files = [folders.ImageFile(p, "a") for p in paths]
    for size in SIZES:
        eager = np.stack([stages.load_uint8(t.constant(p), size=size).numpy() for p in paths])
        assert eager.shape == (len(paths), size, size, 3) and eager.dtype == np.uint8
        np.testing.assert_array_equal(eager, _graph_load(paths, size))
        x, y, skipped = images.load_arrays(files, ["a"], image_size=size)
        assert skipped == [] and y.tolist() == [0] * len(paths)
        np.testing.assert_array_equal(x, eager)
        scaled = stages.load(t.constant(paths[0]), size=size, mode="-1_1").numpy()
        assert scaled.shape == (size, size, 3) and -1.0 <= scaled.min() <= scaled.max() <= 1.0


small = st.integers(1, 40)
extreme = st.sampled_from([(4000, 20), (20, 4000), (1, 1), (1, 900), (900, 1)])
names = st.text(alphabet="abc XYZ_-1", min_size=1, max_size=10).filter(
    lambda s: not s.startswith((".", " "))
)
# one file: (mode, format, (width, height), name stem, upper-case extension, which extension)
file_specs = st.tuples(
    st.sampled_from(MODES),
    st.sampled_from(FORMATS),
    st.one_of(st.tuples(small, small), st.tuples(small, small), extreme),
    names,
    st.booleans(),
    st.integers(0, 1),
)
EXTREMES = [
    ("RGB", "JPEG", (4000, 20), "wide one", True, 1),
    ("CMYK", "JPEG", (20, 4000), "tall", False, 0),
    ("I;16", "PNG", (4000, 20), "deep gray", True, 0),
    ("P", "GIF-animated", (20, 4000), "anim", False, 0),
    ("RGBA", "WEBP", (1, 1), "dot", True, 0),
    ("LA", "BMP", (4000, 20), "bmp la", False, 0),
    ("L", "GIF", (1, 4000), "thin", True, 0),
]


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(specs=st.lists(file_specs, min_size=1, max_size=5))
@example(specs=EXTREMES)
def test_every_accepted_file_loads_at_every_size(specs):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (mode, fmt, (width, height), stem, upper, ext_index) in enumerate(specs):
            exts = EXTENSIONS[fmt]
            ext = exts[ext_index % len(exts)]
            path = os.path.join(tmp, f"{i} {stem}" + (ext.upper() if upper else ext))
            Path(path).write_bytes(encode(mode, fmt, width, height, seed=i))
            assert folders.is_image_name(os.path.basename(path))
            paths.append(path)
        _check_loads_everywhere(paths)


@settings(max_examples=60, deadline=None)
@given(
    long=st.integers(1, 4000),
    short=st.integers(1, 24),
    tall=st.booleans(),
    size=st.sampled_from([1, 2, 3, 32, 64, 224]),
)
@example(long=4000, short=20, tall=False, size=32)
@example(long=4000, short=20, tall=True, size=32)
@example(long=4000, short=1, tall=True, size=1)
def test_resize_with_pad_fits_any_shape_in_graph_mode(long, short, tall, size):
    """The root bug: 4000×20 at 32 asked TF for a 0-pixel side. Now every side is >= 1."""
    h, w = (long, short) if tall else (short, long)
    new_h, new_w, top, left = stages.fit_box(h, w, size)
    assert 1 <= new_h <= size and 1 <= new_w <= size
    assert top + new_h <= size and left + new_w <= size
    x = np.full((h, w, 3), 255, np.uint8)
    out = _GRAPH_RESIZE[size](t.constant(x)).numpy()
    assert out.shape == (size, size, 3)
    inside = out[top : top + new_h, left : left + new_w]
    assert inside.min() > 250  # the image lands in its box ...
    assert out.sum() == pytest.approx(inside.sum())  # ... and only padding is outside it


_GRAPH_RESIZE = {  # traced once per size, with the unknown shapes Dataset.map sees
    size: t.function(
        lambda v, s=size: stages.resize_with_pad(v, s),
        input_signature=[t.TensorSpec([None, None, 3], t.uint8)],
    )
    for size in (1, 2, 3, 32, 64, 224)
}


def _bad_files() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, expected reason): each kind of file the scan must blacklist."""
    jpeg = encode("RGB", "JPEG", 40, 30, seed=9)
    one_bit = io.BytesIO()
    picture("RGB", 9, 5).convert("1").save(one_bit, "BMP")
    anim_webp = io.BytesIO()
    frames = [picture("RGB", 16, 8, 1), picture("RGB", 16, 8, 2)]
    frames[0].save(anim_webp, "WEBP", save_all=True, append_images=frames[1:])
    return {
        "truncated photo.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "notes renamed.png": (b"these are notes, not an image\n" * 3, "not an image"),
        "zero bytes.JPG": (b"", "empty"),
        "one bit.bmp": (one_bit.getvalue(), "unsupported"),
        "animated.webp": (anim_webp.getvalue(), "unsupported"),
    }


def _good_files(seed: int = 0) -> dict[str, bytes]:
    """Odd modes, every format, extreme aspect ratios, upper-case extensions, spaces."""
    out = {}
    for i, (mode, fmt, (w, h)) in enumerate(
        [
            ("CMYK", "JPEG", (30, 20)),
            ("I;16", "PNG", (4000, 20)),
            ("LA", "PNG", (20, 4000)),
            ("P", "GIF-animated", (25, 18)),
            ("RGBA", "WEBP", (1, 1)),
            ("L", "BMP", (17, 33)),
            ("RGB", "JPEG", (4000, 20)),
            ("P", "PNG", (31, 7)),
        ]
    ):
        ext = EXTENSIONS[fmt][0]
        out[f"{i} {mode.replace(';', '')} {w}x{h}{ext.upper() if i % 2 else ext}"] = encode(
            mode, fmt, w, h, seed=seed * 100 + i
        )
    return out


def make_mixed_folder(root: Path, copies: int = 3) -> dict:
    """DIR/<ant|bee|cow>/...: the good files (varied per class) and the bad ones in 'bee'."""
    good, bad = [], {}
    for ci, label in enumerate(("ant", "bee", "cow")):
        for k in range(copies):
            # distinct content everywhere: no duplicates, so no file is dropped as leakage
            for name, data in _good_files(seed=ci * copies + k).items():
                path = root / label / f"{k} {name}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                good.append(str(path))
    for name, (data, reason) in _bad_files().items():
        path = root / "bee" / name
        path.write_bytes(data)
        bad[str(path)] = reason
    return {"good": good, "bad": bad}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("mixed") / "photos"
    made = make_mixed_folder(root)
    return {"root": root, **made, "cache": root.parent / "scan.json"}


def test_prepare_folder_blacklists_exactly_the_bad_files_and_names_them(mixed):
    split = images.prepare_folder(mixed["root"], cache_path=mixed["cache"])
    assert dict(split.blacklisted) == mixed["bad"]
    lines = split.blacklist_lines()
    assert len(lines) == len(mixed["bad"])
    for path, reason in mixed["bad"].items():
        assert any(line.startswith(f"bad: {path}: {reason}") for line in lines)
    summary = split.summary()
    assert summary.startswith(f"scan: {len(mixed['good']) + len(mixed['bad'])} files, 5 bad (")
    assert "unsupported 2" in summary and "blacklisted" in summary
    c = split.counts()
    assert f"split train={c['train']} val={c['val']} test={c['test']}" in summary
    assert min(c.values()) > 0
    used = {f.path for f in split.train + split.val + split.test}
    assert used == set(mixed["good"])  # every good file is in exactly one split
    assert sum(c.values()) == len(mixed["good"])
    record = split.record()
    assert record["fingerprint"] == split.fingerprint() and record["counts"] == c
    assert {b["path"]: b["reason"] for b in record["blacklisted"]} == mixed["bad"]


def _where(split: images.FolderSplit) -> dict[str, str]:
    return {f.path: name for name in ("train", "val", "test") for f in split.split(name)}


def test_same_splits_at_every_image_size_and_across_calls(mixed, tmp_path):
    datas = {
        size: images.folder_image_data(mixed["root"], image_size=size, cache_path=mixed["cache"])
        for size in SIZES
    }
    fresh = images.prepare_folder(mixed["root"], cache_path=tmp_path / "fresh.json")
    assert fresh.scan.from_cache == 0 and datas[64].meta["folder"].scan.decoded == 0
    splits = [d.meta["folder"] for d in datas.values()] + [fresh]
    assert len({s.fingerprint() for s in splits}) == 1
    assert all(_where(s) == _where(fresh) for s in splits)
    assert all(dict(s.blacklisted) == mixed["bad"] for s in splits)
    for size, data in datas.items():
        split = data.meta["folder"]
        assert data.meta["skipped"] == []
        assert data.x_train.shape == (len(split.train), size, size, 3)
        assert data.x_train.dtype == np.uint8 and data.y_train.dtype == np.int64
        assert data.x_val.shape == (len(split.val), size, size, 3)
        assert data.info.image_shape == (size, size, 3)
        assert data.info.class_names == ("ant", "bee", "cow")
        assert data.test_reads == 0
        x_test, y_test = data.test()
        assert x_test.shape == (len(split.test), size, size, 3) and len(y_test) == len(x_test)
        _, labels = split.labelled(split.train)
        assert data.y_train.tolist() == labels


def test_load_arrays_skips_and_names_a_file_that_fails_after_the_scan(mixed, tmp_path):
    split = images.prepare_folder(mixed["root"], cache_path=mixed["cache"])
    files = split.val[:3]
    victim = tmp_path / "was good.png"
    victim.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    files = [*files, folders.ImageFile(str(victim), "bee")]
    x, y, skipped = images.load_arrays(files, split.class_names, image_size=32, channels=1)
    assert x.shape == (3, 32, 32, 1) and len(y) == 3
    assert [p for p, _ in skipped] == [str(victim)]
    assert skipped[0][1].startswith(("corrupt", "truncated"))
    assert images.skipped_lines(skipped) == [f"skipped: {victim}: {skipped[0][1]}"]


def test_raw_sample_passes_over_files_that_fail(mixed, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff" + b"\x00" * 50)
    good = sorted(p for p in mixed["good"] if p.endswith("30x20.jpg"))
    sample = images.raw_sample([str(broken), *good], limit=2)
    assert sample.shape == (2, 20, 30, 3) and sample.dtype == np.uint8
    with pytest.raises(images.DataError, match="none of the first 1 images decodes"):
        images.raw_sample([str(broken)])
