"""The scan finds every kind of bad file and no good one; cache, duplicates, summary, CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.images import _image, bomb_png, encode, make_folder

from automl_app.data import scan

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def folder(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "photos"
    return root, make_folder(root, per_class=12)


def test_scan_finds_every_bad_file_and_no_good_one(folder, tmp_path):
    root, expected = folder
    (root / "red" / "notes.txt").write_text("a note, not an image")
    result = scan.scan_folder(root, cache_path=tmp_path / "cache.json")
    got = {f.path: f.reason for f in result.bad}
    want = dict(expected["bad"], **{str(root / "red" / "notes.txt"): "not an image"})
    assert got == want
    assert {f.path for f in result.good} == set(expected["good"])
    line = result.summary()
    assert line.startswith(f"{len(result.files)} files: {len(expected['good'])} good, 7 bad")
    assert "too large 1" in line and "truncated 2" in line and "not an image 2" in line


def test_bomb_is_rejected_from_its_header_without_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    start = time.perf_counter()
    res = scan.check_file(str(path))
    assert res.reason == "too large" and time.perf_counter() - start < 5
    # a normal PNG over a small --max-pixels limit is 'too large' too, and dimensions recorded
    small = tmp_path / "small.png"
    small.write_bytes(encode(_image(1, (40, 30), 0), "PNG"))
    res = scan.check_file(str(small), max_pixels=100)
    assert (res.reason, res.width, res.height) == ("too large", 40, 30)


def test_cache_decodes_only_new_or_changed_files(folder, tmp_path):
    root, expected = folder
    cache = tmp_path / "cache.json"
    first = scan.scan_folder(root, cache_path=cache)
    assert first.from_cache == 0 and first.decoded == len(first.files)
    again = scan.scan_folder(root, cache_path=cache)
    assert again.decoded == 0 and [f.reason for f in again.files] == [f.reason for f in first.files]
    new = root / "blue" / "new.png"
    new.write_bytes(encode(_image(7, (33, 33), 2), "PNG"))
    changed = Path(expected["good"][0])
    changed.write_bytes(b"")
    grown = scan.scan_folder(root, cache_path=cache)
    assert grown.decoded == 2
    reasons = {f.path: f.reason for f in grown.files}
    assert reasons[str(new)] is None and reasons[str(changed)] == "empty"
    # a file rejected under a low limit is decoded again when the limit is raised
    low = scan.scan_folder(root, cache_path=cache, max_pixels=100)
    assert all(f.reason is not None for f in low.files)
    high = scan.scan_folder(root, cache_path=cache, max_pixels=10_000)
    assert {f.path for f in high.bad} == set(expected["bad"]) | {str(changed)}


def test_duplicates_across_classes_and_splits(tmp_path):
    root = tmp_path / "split"
    data = encode(_image(3, (30, 30), 1), "PNG")
    other = encode(_image(4, (30, 30), 0), "PNG")
    for rel, payload in {
        "train/cat/a.png": data,
        "val/cat/a_copy.png": data,  # train/val leak
        "train/dog/b.png": other,
        "train/cat/b_again.png": other,  # same split, two classes
        "train/dog/c.png": encode(_image(5, (30, 30), 2), "PNG"),
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
    result = scan.scan_folder(root, cache_path=tmp_path / "c.json")
    flags = {
        tuple(Path(p).name for p in d.paths): (d.cross_class, d.cross_split)
        for d in result.duplicates
    }
    assert flags == {
        ("a.png", "a_copy.png"): (False, True),
        ("b_again.png", "b.png"): (True, False),
    }
    assert "2 duplicates in 2 groups (1 across classes, 1 across splits)" in result.summary()


def test_blacklist_file_format(folder, tmp_path):
    root, expected = folder
    result = scan.scan_folder(root, cache_path=tmp_path / "c.json")
    out = scan.write_blacklist(result, tmp_path / "blacklist.tsv")
    lines = out.read_text().splitlines()
    assert dict(line.split("\t") for line in lines) == expected["bad"]


def test_cli_scan_images(folder, tmp_path, monkeypatch):
    from automl_app.cli.train import scan_images_cmd

    root, expected = folder
    monkeypatch.setenv("AUTOML_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "bl.tsv"
    res = CliRunner().invoke(scan_images_cmd, [str(root), "--output", str(out)])
    assert res.exit_code == 0, res.output
    assert len(out.read_text().splitlines()) == len(expected["bad"])
    assert "6 bad" in res.output and "0 from cache" in res.output
    res = CliRunner().invoke(scan_images_cmd, [str(root), "--output", str(out)])
    assert "0 decoded" in res.output
    res = CliRunner().invoke(scan_images_cmd, [str(tmp_path / "missing")])
    assert res.exit_code == 1 and "is not a directory" in res.output
    res = CliRunner().invoke(scan_images_cmd, [str(root), "--max-pixels", "0"])
    assert res.exit_code == 2 and "--max-pixels must be a positive integer" in res.output


def test_scan_images_as_a_subprocess(tmp_path):
    root = tmp_path / "tiny"
    make_folder(root, per_class=3, bad=False)
    (root / "red" / "empty.jpg").write_bytes(b"")
    env = dict(os.environ, AUTOML_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run(
        [sys.executable, "-m", "automl_app.cli", "scan-images", str(root)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{root / 'red' / 'empty.jpg'}\tempty\n"
    assert "10 files: 9 good, 1 bad (empty 1)" in proc.stderr


def test_decoder_errors_become_the_scans_own_reasons(tmp_path, capfd):
    """Valid files tf.io cannot read are 'unsupported', with the decoder's words as detail;
    a JPEG libjpeg only warns about is good, and its warning does not reach the terminal."""
    img = _image(2, (32, 24), 0)
    one_bit = encode(img.convert("1"), "BMP")
    anim = io.BytesIO()
    img.save(anim, "WEBP", save_all=True, append_images=[img.rotate(90)])
    jpeg = encode(img, "JPEG")
    files = {
        "one_bit.bmp": one_bit,
        "animated.webp": anim.getvalue(),
        "extraneous.jpg": jpeg[:-2] + b"\x00\x00\x00" + jpeg[-2:],
        "good.png": encode(img, "PNG"),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    capfd.readouterr()
    result = scan.scan([str(tmp_path / n) for n in files], root=tmp_path)
    got = {Path(f.path).name: (f.reason, f.detail) for f in result.files}
    assert got["one_bit.bmp"][0] == "unsupported" and "channels" in got["one_bit.bmp"][1]
    assert got["animated.webp"] == ("unsupported", "animated WebP; tf.io decodes only still WebP")
    assert got["extraneous.jpg"] == got["good.png"] == (None, None)
    assert "Corrupt JPEG data" not in capfd.readouterr().err
    assert all(f.reason in scan.REASONS for f in result.bad)
    assert "[Op:" not in got["one_bit.bmp"][1] and "name:" not in got["one_bit.bmp"][1]
    assert scan.load_failure(str(tmp_path / "good.png")) is None
    assert scan.load_failure(str(tmp_path / "one_bit.bmp")).startswith("unsupported (")
    assert scan.load_failure(str(tmp_path / "missing.png")).startswith("unreadable")


def test_cache_from_an_older_version_is_ignored(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(encode(_image(1, (8, 8), 0), "PNG"))
    st = path.stat()
    entry = {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "reason": "x"}
    cache = tmp_path / "c.json"
    cache.write_text(json.dumps({"version": 1, "files": {str(path): entry}}))
    result = scan.scan([str(path)], root=tmp_path, cache_path=cache)
    assert result.decoded == 1 and result.files[0].ok
