"""Find the images training cannot use, before training: the scan and its blacklist.

One undecodable file kills a tf.data pipeline with an error that does not name it, and
`Dataset.ignore_errors` skips files silently. So every file is decoded once here with the decoder
training uses (`stages.decode`, i.e. tf.io.decode_image), after a PIL header read that rejects
decompression bombs without allocating them. Results are cached by (path, size, mtime) in a JSON
file, so re-scanning a grown folder decodes only the new files. Exact duplicates are found by
content hash (SHA-256); duplicates across classes or across train/val are flagged.

Every rejection has one reason from REASONS; the decoder's own words, when there are any, are
kept as `detail`. libjpeg/libpng warnings that the decoders print straight to stderr while the
scan runs are dropped (stages.quiet_decoder_warnings): they name no file, and a file that decodes
despite them is usable.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from automl_app import runs
from automl_app.data.folders import SPLIT_NAMES

DEFAULT_MAX_PIXELS = 50_000_000
CACHE_VERSION = 2  # 2: reasons from REASONS only, `detail`, animated WebP rejected
# corrupt: a known format whose data the decoder rejects; unsupported: a valid file in a variant
# tf.io cannot decode (1-bit BMP, animated WebP), so training could not read it either.
REASONS = (
    "empty",
    "truncated",
    "corrupt",
    "unsupported",
    "unknown format",
    "not an image",
    "too large",
)


@dataclass
class FileResult:
    """What the scan learned about one file; `reason` None means training can use it."""

    path: str
    size: int
    mtime_ns: int
    sha256: str | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    reason: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass
class Duplicates:
    """Files with identical content; flags say whether they cross classes or splits."""

    sha256: str
    paths: list[str]
    cross_class: bool
    cross_split: bool


@dataclass
class ScanResult:
    """All files scanned, the duplicate groups, and how much work the cache saved."""

    root: str
    files: list[FileResult]
    duplicates: list[Duplicates] = field(default_factory=list)
    decoded: int = 0
    from_cache: int = 0
    seconds: float = 0.0

    @property
    def bad(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]

    @property
    def good(self) -> list[FileResult]:
        return [f for f in self.files if f.ok]

    def reasons(self) -> dict[str, int]:
        """Bad files by reason; decoder messages are counted as 'decoder error'."""
        return dict(Counter(f.reason if f.reason in REASONS else "decoder error" for f in self.bad))

    def blacklist_text(self) -> str:
        """One line per bad file: `path<TAB>reason` (the decoder's words stay in `detail`)."""
        return "".join(f"{f.path}\t{f.reason}\n" for f in self.bad)

    def summary(self) -> str:
        """The one-line summary the CLI prints."""
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons().items()))
        cross_class = sum(d.cross_class for d in self.duplicates)
        cross_split = sum(d.cross_split for d in self.duplicates)
        extra = sum(len(d.paths) - 1 for d in self.duplicates)
        return (
            f"{len(self.files)} files: {len(self.good)} good, {len(self.bad)} bad"
            + (f" ({reasons})" if reasons else "")
            + f"; {extra} duplicates in {len(self.duplicates)} groups "
            f"({cross_class} across classes, {cross_split} across splits); "
            f"{self.decoded} decoded, {self.from_cache} from cache; {self.seconds:.2f} s"
        )


def _clean_tf_message(message: str) -> str:
    """The decoder's own words, without TF's op/function decorations."""
    first = message.strip().splitlines()[0] if message.strip() else message
    first = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", first)
    first = re.sub(r"\s*\[Op:\w+\](\s*name:.*)?$", "", first)
    return first.strip() or "decode failed"


def _header(data: bytes, max_pixels: int) -> tuple[str | None, int | None, int | None, str | None]:
    """(format, width, height, reason) from the header only; nothing is decoded here."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
                if fmt == "WEBP" and getattr(img, "is_animated", False):
                    # tf.io cannot decode it as RGB, and with channels=0 it corrupts the heap
                    # (TF 2.21): reject it here, before TensorFlow sees the bytes.
                    return fmt, width, height, "unsupported"
    except Image.DecompressionBombError:
        return None, None, None, "too large"
    except UnidentifiedImageError:
        return None, None, None, None
    except Exception as exc:  # a header PIL knows but cannot parse
        return None, None, None, "truncated" if "truncat" in str(exc).lower() else None
    if width * height > max_pixels:
        return fmt, width, height, "too large"
    return fmt, width, height, None


def _pil_says_truncated(data: bytes) -> bool:
    """Whether PIL, decoding fully, reports the data as cut short."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
    except Exception as exc:
        text = str(exc).lower()
        return "truncat" in text or "premature" in text or "broken data stream" in text
    return False


_UNSUPPORTED = ("number of channels", "animation must be", "not supported", "unsupported")


def decoder_reason(message: str, data: bytes, pil_format: str | None) -> str:
    """One of REASONS for a decoder error message (the message itself goes to `detail`)."""
    lower = message.lower()
    if message.startswith("Unknown image file format"):
        return "unknown format" if pil_format else "not an image"
    if _pil_says_truncated(data) or "premature" in lower:
        return "truncated"
    if any(key in lower for key in _UNSUPPORTED):
        return "unsupported"
    return "corrupt"


def check_file(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> FileResult:
    """Hash, header-check and decode one file with the training decoder."""
    from automl_app.data import stages
    from automl_app.tf_env import tf

    st = os.stat(path)
    result = FileResult(path=path, size=st.st_size, mtime_ns=st.st_mtime_ns)
    with open(path, "rb") as fh:
        data = fh.read()
    result.sha256 = hashlib.sha256(data).hexdigest()
    if not data:
        result.reason = "empty"
        return result
    result.format, result.width, result.height, reason = _header(data, max_pixels)
    if reason:
        result.reason = reason
        if reason == "unsupported":  # the one header-level case: an animated WebP
            result.detail = "animated WebP; tf.io decodes only still WebP"
        return result
    t = tf()
    try:
        image = stages.decode(t.constant(data))
    except Exception as exc:  # tf.errors.InvalidArgumentError and friends
        result.detail = _clean_tf_message(str(getattr(exc, "message", exc)))
        result.reason = decoder_reason(result.detail, data, result.format)
        return result
    height, width = int(image.shape[0]), int(image.shape[1])
    result.width, result.height = width, height
    if width * height > max_pixels:
        result.reason = "too large"
    return result


def load_failure(path: str, image_size: int = 32) -> str | None:
    """Why `path` fails the training stages now (read, decode, resize_with_pad), or None.

    For files that failed inside a tf.data pipeline, which names no file: "reason (detail)".
    """
    from automl_app.data import stages
    from automl_app.tf_env import tf

    t = tf()
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if not data:
        return "empty"
    fmt, _, _, reason = _header(data, DEFAULT_MAX_PIXELS)
    if reason == "unsupported":
        return f"{reason} (animated WebP; tf.io decodes only still WebP)"
    try:
        with stages.quiet_decoder_warnings():
            stages.resize_with_pad(stages.decode(t.constant(data)), image_size)
    except Exception as exc:
        detail = _clean_tf_message(str(getattr(exc, "message", exc)))
        return f"{decoder_reason(detail, data, fmt)} ({detail})"
    return None


def default_cache_path(root: str | os.PathLike) -> Path:
    """Per-folder cache under $AUTOML_CACHE_DIR (default ~/.cache/automl/scan)."""
    base = os.environ.get("AUTOML_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "automl"
    )
    key = hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]
    return Path(base) / "scan" / f"{key}.json"


def _load_cache(path: Path | None) -> dict[str, dict]:
    if path is None or not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if data.get("version") != CACHE_VERSION:
        return {}
    return data.get("files", {})


def _cached(entry: dict | None, st: os.stat_result, max_pixels: int) -> FileResult | None:
    """A cached result still valid for this file and this pixel limit, or None."""
    if not entry or entry.get("size") != st.st_size or entry.get("mtime_ns") != st.st_mtime_ns:
        return None
    result = FileResult(**entry)
    pixels = (result.width or 0) * (result.height or 0)
    if result.reason == "too large" and pixels and pixels <= max_pixels:
        return None  # rejected under a lower limit; decode it now
    if result.reason is None and pixels > max_pixels:
        result.reason = "too large"
    return result


def _split_and_class(path: str, root: str) -> tuple[str | None, str | None]:
    parts = Path(os.path.relpath(path, root)).parts
    if len(parts) >= 3 and parts[0].lower() in SPLIT_NAMES:
        return SPLIT_NAMES[parts[0].lower()], parts[1]
    return None, (parts[0] if len(parts) >= 2 else None)


def find_duplicates(files: Iterable[FileResult], root: str) -> list[Duplicates]:
    """Groups of good files with the same content hash, flagged across classes/splits."""
    groups: dict[str, list[str]] = {}
    for f in files:
        if f.ok and f.sha256:
            groups.setdefault(f.sha256, []).append(f.path)
    out = []
    for digest, paths in sorted(groups.items(), key=lambda kv: sorted(kv[1])[0]):
        if len(paths) < 2:
            continue
        where = [_split_and_class(p, root) for p in paths]
        splits = {s for s, _ in where if s is not None}
        out.append(
            Duplicates(
                sha256=digest,
                paths=sorted(paths),
                cross_class=len({c for _, c in where}) > 1,
                cross_split=len(splits) > 1,
            )
        )
    return out


def list_all_files(root: str | os.PathLike) -> list[str]:
    """Every regular, non-hidden file below `root`, sorted."""
    out = []
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out.extend(os.path.join(dirpath, n) for n in sorted(names) if not n.startswith("."))
    return out


def scan(
    paths: Sequence[str],
    *,
    root: str | os.PathLike,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cache_path: str | os.PathLike | None = None,
    workers: int | None = None,
) -> ScanResult:
    """Check `paths` (cached ones are not decoded again) and find duplicates below `root`."""
    start = time.perf_counter()
    cache_path = Path(cache_path) if cache_path else None
    cache = _load_cache(cache_path)
    results: dict[str, FileResult] = {}
    todo = []
    for p in paths:
        hit = _cached(cache.get(p), os.stat(p), max_pixels)
        if hit is not None:
            results[p] = hit
        else:
            todo.append(p)
    if todo:
        from automl_app.data import stages
        from automl_app.tf_env import tf

        tf()  # TensorFlow's start-up lines go out before stderr is filtered
        workers = workers or min(8, os.cpu_count() or 1)
        with stages.quiet_decoder_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
            for res in pool.map(lambda p: check_file(p, max_pixels), todo):
                results[res.path] = res
    files = [results[p] for p in paths]
    if cache_path is not None and todo:
        cache.update({f.path: asdict(f) for f in files})
        runs.atomic_write_json(cache_path, {"version": CACHE_VERSION, "files": cache})
    return ScanResult(
        root=str(root),
        files=files,
        duplicates=find_duplicates(files, str(root)),
        decoded=len(todo),
        from_cache=len(paths) - len(todo),
        seconds=time.perf_counter() - start,
    )


def scan_folder(
    root: str | os.PathLike,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    cache_path: str | os.PathLike | None = None,
) -> ScanResult:
    """Scan every file below `root` (what `automl scan-images DIR` does)."""
    return scan(list_all_files(root), root=root, max_pixels=max_pixels, cache_path=cache_path)


def write_blacklist(result: ScanResult, path: str | os.PathLike) -> Path:
    """Write the `path<TAB>reason` lines atomically."""
    return runs.atomic_write_text(path, result.blacklist_text())
