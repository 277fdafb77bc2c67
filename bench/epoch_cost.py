"""What makes an epoch cheaper on this CPU? Seconds per epoch of one configuration, several ways.

    AUTOML_DATA_DIR=../shared/datasets .venv/bin/python bench/epoch_cost.py [--space cnn]
    (--set name=value … to change the configuration; --epochs 2 timed epochs per setting)

The space's defaults on Fashion-MNIST's 54,000 training images (or an image folder's, with
`--data-dir`), through the search's own data pipeline (models/hypermodel.batches: uint8 in
memory, shuffled, scaled on the batch), one epoch to warm up (tracing, XLA) and then `--epochs`
timed epochs per setting:
- baseline: as the search trains it (batch size from the space, Keras's jit_compile="auto");
- jit off: XLA off (jit_compile=False);
- batch ×2, ×4: the batch size doubled / quadrupled, the learning rate scaled with it;
- steps_per_execution 8: eight steps per call into TensorFlow;
- augment on: the space's shift+flip augmentation on (what that lever costs per epoch);
- autotuner (before), augment on + autotuner (before): the pipeline as it was built before
  batches() turned tf.data's autotuner off (AUTOTUNE parallelism and prefetch): what that costs.
Printed per setting: seconds per epoch and its ratio to the baseline (< 1: cheaper). Figures depend
on the machine and its load: quote them with both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = {
    "baseline": {},
    "jit off": {"jit_compile": False},
    "batch x2": {"batch_factor": 2},
    "batch x4": {"batch_factor": 4},
    "steps_per_execution 8": {"steps_per_execution": 8},
    "augment on": {"augment": True},
    "autotuner (before)": {"autotuner": True},
    "augment on + autotuner (before)": {"augment": True, "autotuner": True},
}


def autotuned(ds, batch: int, shift: float, flip: bool):
    """models/hypermodel.batches as it was with tf.data's autotuner (until this session)."""
    from automl_app.models.hypermodel import _augmenter
    from automl_app.tf_env import tf

    t = tf()
    auto = t.data.AUTOTUNE
    ds = ds.shuffle(int(ds.cardinality()), seed=1, reshuffle_each_iteration=True)
    if shift > 0 or flip:
        ds = ds.map(_augmenter(shift, flip, 1), num_parallel_calls=auto)
    ds = ds.batch(batch).map(
        lambda x, y: (t.cast(x, t.float32) / 255.0, y), num_parallel_calls=auto
    )
    return ds.prefetch(auto)


def epoch_seconds(hm, data, setting: dict, epochs: int) -> float:
    """Median-free: mean seconds of `epochs` timed epochs after one warm-up epoch."""
    import keras
    import keras_tuner as kt

    from automl_app.models.hypermodel import batches
    from automl_app.tf_env import tf

    t = tf()
    hp = kt.HyperParameters()
    model = hm.build(hp)
    v = hm.values(hp)
    factor = int(setting.get("batch_factor", 1))
    batch = int(v["batch_size"]) * factor
    model.compile(
        optimizer=type(model.optimizer)(float(v["learning_rate"]) * factor),
        loss=model.loss,
        metrics=["accuracy"],
        jit_compile=setting.get("jit_compile", "auto"),
        steps_per_execution=int(setting.get("steps_per_execution", 1)),
    )
    ds = t.data.Dataset.from_tensor_slices((data.x_train, data.y_train)).cache()
    aug = setting.get("augment", False)
    shift = 0.1 if aug else 0.0
    if setting.get("autotuner"):
        train = autotuned(ds, batch, shift, aug)
    else:
        train = batches(ds, batch, shuffle=True, seed=1, shift=shift, flip=aug)

    class Timer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.t0)

    timer = Timer()
    model.fit(train, epochs=1 + epochs, verbose=0, callbacks=[timer])
    return sum(timer.times[1:]) / epochs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--space", default="cnn")
    p.add_argument("--set", action="append", default=[], help="name=value fixes (repeatable)")
    p.add_argument("--epochs", type=int, default=2, help="timed epochs per setting")
    p.add_argument("--only", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    p.add_argument("--data-dir", help="an image folder (as `search image --data-dir`) instead")
    args = p.parse_args()
    os.environ.setdefault(
        "AUTOML_DATA_DIR", str(Path(__file__).resolve().parents[2] / "shared" / "datasets")
    )
    from automl_app import models, spaces
    from automl_app.data import datasets, source
    from automl_app.models.hypermodel import SpaceHyperModel

    if args.data_dir:  # decoded and resized once, as the search does (uint8 in memory)
        data = source.load_image_data({"data_dir": args.data_dir, "seed": 1})
    else:
        data = datasets.load("fashion_mnist", seed=1)
    space = spaces.load(args.space, known=models.known(), overrides=spaces.parse_set(args.set))
    hm = SpaceHyperModel(space, data.info.image_shape, data.info.num_classes, seed=1)
    base = None
    load = os.getloadavg()[0]
    for name in ["baseline", *[n for n in args.only if n != "baseline"]]:
        s = epoch_seconds(hm, data, SETTINGS[name], args.epochs)
        base = base or s
        print(f"{name:24s} {s:6.2f} s/epoch  ratio {s / base:.2f}", flush=True)
        print("ROW " + json.dumps({"setting": name, "epoch_s": round(s, 2), "ratio": s / base}))
    print(
        f"space {args.space} defaults, {data.info.name}: {len(data.x_train):,} images "
        f"{'x'.join(map(str, data.info.image_shape))}, {os.cpu_count()} cores, "
        f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after"
    )


if __name__ == "__main__":
    main()
