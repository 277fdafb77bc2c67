"""Image folders for tests: every good encoding of an image, and the bad files the scan must name
(truncated, empty, not an image, a decompression bomb), written into class folders.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _image(seed: int, size: tuple[int, int], color: int) -> Image.Image:
    """A small RGB image dominated by one channel (so classes are learnable), with noise."""
    rng = np.random.default_rng(seed)
    w, h = size
    arr = (rng.random((h, w, 3)) * 60).astype(np.uint8)
    arr[..., color] = 180 + arr[..., color] // 2
    return Image.fromarray(arr)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid-looking PNG of a few hundred bytes whose header claims width x height."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def good_encodings(img: Image.Image) -> dict[str, bytes]:
    """Every encoding training must read: file name → bytes."""
    frames = [img, img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    gif = io.BytesIO()
    frames[0].convert("P").save(gif, "GIF", save_all=True, append_images=[frames[1].convert("P")])
    return {
        "rgb.jpg": encode(img, "JPEG"),
        "upper.JPG": encode(img, "JPEG", quality=80),
        "gray.jpeg": encode(img.convert("L"), "JPEG"),
        "cmyk.jpg": encode(img.convert("CMYK"), "JPEG"),
        "rgb.png": encode(img, "PNG"),
        "palette.Png": encode(img.convert("P"), "PNG"),
        "rgba.png": encode(img.convert("RGBA"), "PNG"),
        "gray_alpha.png": encode(img.convert("LA"), "PNG"),
        "anim.gif": gif.getvalue(),
        "rgb.bmp": encode(img, "BMP"),
        "rgb.webp": encode(img, "WEBP"),
        "rgba.WEBP": encode(img.convert("RGBA"), "WEBP"),
    }


def bad_files(img: Image.Image) -> dict[str, tuple[bytes, str]]:
    """Every kind of bad file: name → (bytes, expected reason)."""
    jpeg, png = encode(img, "JPEG"), encode(img, "PNG")
    return {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "text.jpg": (b"this is not an image at all\n" * 4, "not an image"),
        "tiff_named.png": (encode(img, "TIFF"), "unknown format"),
        "bomb.png": (bomb_png(), "too large"),
    }


def make_folder(root: Path, *, per_class: int = 12, bad: bool = True, seed: int = 0) -> dict:
    """DIR/<red|green|blue>/...: varied sizes, every good encoding, bad files in 'red'.

    Returns {"bad": {path: reason}, "good": [paths]}.
    """
    classes = ["blue", "green", "red"]
    expected_bad: dict[str, str] = {}
    good: list[str] = []
    for ci, name in enumerate(classes):
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        encodings = list(good_encodings(_image(seed + ci, (40, 30), 2 - ci)).items())
        for i in range(per_class):
            img = _image(seed * 1000 + ci * 100 + i, (24 + 5 * (i % 5), 20 + 7 * (i % 3)), 2 - ci)
            fname, _ = encodings[i % len(encodings)]
            data = good_encodings(img)[fname]
            path = d / f"{i:02d}_{fname}"
            path.write_bytes(data)
            good.append(str(path))
    if bad:
        for fname, (data, reason) in bad_files(_image(99, (40, 30), 0)).items():
            path = root / "red" / f"bad_{fname}"
            path.write_bytes(data)
            expected_bad[str(path)] = reason
    return {"bad": expected_bad, "good": good, "classes": classes}


def odd_files(root: Path) -> list[str]:
    """Odd modes, extreme aspect ratios, upper-case extensions and spaces, all decodable, added to
    a `make_folder` folder (its blue/green/red classes); returns their paths."""
    rng = np.random.default_rng(7)
    out = []

    def save(img: Image.Image, cls: str, name: str, **kw) -> None:
        path = root / cls / name
        img.save(path, **kw)
        out.append(str(path))

    rgb = Image.fromarray(rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
    save(Image.fromarray(rng.integers(0, 255, (20, 4000, 3), dtype=np.uint8)), "blue", "wide.png")
    save(Image.fromarray(rng.integers(0, 255, (4000, 20, 3), dtype=np.uint8)), "green", "tall.png")
    save(rgb.convert("CMYK"), "red", "cmyk photo.JPG", format="JPEG")
    save(rgb.convert("LA"), "blue", "la.PNG", format="PNG")
    save(Image.fromarray(rng.integers(0, 65535, (25, 35), dtype=np.uint16)), "green", "deep.png")
    frames = [rgb.convert("P"), rgb.rotate(90).convert("P")]
    frames[0].save(root / "red" / "anim.gif", save_all=True, append_images=frames[1:])
    out.append(str(root / "red" / "anim.gif"))
    save(Image.fromarray(rng.integers(0, 255, (1, 1, 3), dtype=np.uint8)), "blue", "dot.bmp")
    return out
