"""Does `automl predict` keep up with calling the SavedModel directly? Images/s of both.

    python bench/predict_throughput.py RUN                 # 512 generated JPEGs of the run's size
    python bench/predict_throughput.py RUN --dir PHOTOS    # your own images (any layout)

Measured on the same files, the model loaded once (its load time is printed apart):
- direct: the files decoded first (stages.decode, one by one), then `serve` on those decoded
  tensors in batches of --batch-size (same-size images stacked) — serve-only images/s, and the
  images/s of that whole script (decode, then serve);
- predict: analysis.predict's pipeline (header check, decoding in threads, batching, the CSV rows
  written to /dev/null), end to end from the file names.
The ratio predict / direct (decode + serve) is the figure issue 19 asks for (aim >= 0.8); the
ratio to serve-only says how much of predict's time is decoding.
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

from automl_app.analysis import predict as P  # noqa: E402
from automl_app.tf_env import tf  # noqa: E402


def make_jpegs(root: Path, n: int, size: int, channels: int, seed: int = 0) -> list[str]:
    """n JPEGs of size x size (grayscale when the model takes one channel), smooth + noise."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BILINEAR)
        if channels == 1:
            img = img.convert("L")
        path = root / f"{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(str(path))
    return paths


def direct(p: P.Predictor, files: list[str], batch_size: int) -> tuple[float, float]:
    """(decode seconds, serve seconds): decode every file, then serve the decoded tensors."""
    t = tf()
    start = time.perf_counter()
    channels = p.fixed[2] if p.fixed else 3
    decoded = [P.decode_file(f, channels=channels)[0] for f in files]
    decoded = [x for x in decoded if x is not None]
    decode_s = time.perf_counter() - start
    groups: dict[tuple, list[np.ndarray]] = {}
    for x in decoded:
        groups.setdefault(x.shape, []).append(x)
    batches = [np.stack(g[i : i + batch_size]) for g in groups.values()
               for i in range(0, len(g), batch_size)]  # fmt: skip
    batches = [P._as_serve_channels(p.serve, b) if p.fixed is None else b for b in batches]
    p.serve(t.constant(batches[0]))  # warm-up
    start = time.perf_counter()
    for b in batches:
        np.asarray(p.serve(t.constant(b)))
    return decode_s, time.perf_counter() - start


def through_predict(p: P.Predictor, files: list[str], batch_size: int) -> float:
    """Seconds of predict's pipeline over `files`, rows written to /dev/null."""
    with open(os.devnull, "w") as sink:
        writer = P.RowWriter(sink, "csv", p.labels, top_k=0)
        start = time.perf_counter()
        for key, probs in P.predict_images(p, files, batch_size=batch_size, skipped=print):
            writer.write(key, probs)
        return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="an image run (or selected/, export/, a SavedModel)")
    ap.add_argument("--dir", default=None, help="images to predict [default: generated JPEGs]")
    ap.add_argument("--n", type=int, default=512, help="generated images [default: 512]")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="best of N timings [default: 3]")
    args = ap.parse_args()

    start = time.perf_counter()
    p = P.load(args.run)
    load_s = time.perf_counter() - start
    if p.kind != "image":
        sys.exit(f"{args.run} is a {p.kind} run; this bench measures image runs")
    if args.dir:
        files = P.image_files([args.dir])
        tmp = None
    else:
        tmp = tempfile.TemporaryDirectory(prefix="predict-bench-")
        size, channels = (p.fixed[0], p.fixed[2]) if p.fixed else (64, 3)
        files = make_jpegs(Path(tmp.name), args.n, size, channels)
    through_predict(p, files[: args.batch_size], args.batch_size)  # warm-up (threads, tracing)
    runs = [direct(p, files, args.batch_size) for _ in range(args.repeats)]
    decode_s, serve_s = min(runs, key=sum)
    predict_s = min(through_predict(p, files, args.batch_size) for _ in range(args.repeats))
    n = len(files)
    serve_rate, direct_rate, predict_rate = n / serve_s, n / (decode_s + serve_s), n / predict_s
    print(f"model: {p.saved_model} (loaded in {load_s:.1f} s); {n} images, batch {args.batch_size}")
    print(f"direct serve on decoded tensors: {serve_rate:8.0f} images/s")
    print(f"direct decode, then serve:       {direct_rate:8.0f} images/s")
    print(f"automl predict (end to end):     {predict_rate:8.0f} images/s")
    print(f"ratio predict / (decode + serve): {predict_rate / direct_rate:.2f}  (aim >= 0.8)")
    print(f"ratio predict / serve only:       {predict_rate / serve_rate:.2f}")
    print(f"cpu cores: {os.cpu_count()}; load average: {os.getloadavg()[0]:.1f}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
