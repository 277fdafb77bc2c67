"""The one self-contained page, report/index.html: works offline, opened from disk or mailed.

plotly.js is embedded once in <head>; every figure below is a <div> drawn by it, every PNG is
inlined as base64, and links point only to files that exist next to the page. Nothing is
fetched from the network.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from automl_app import runs
from automl_app.report.base import INDEX, PLOTS, REPORT_DIR, data_source, fmt, test_metrics_of
from automl_app.report.figures import FIGURES, figure_div, plotly_js
from automl_app.report.leaderboard import leaderboard_rows
from automl_app.report.plots import per_class_scores
from automl_app.report.study import MIN_COMPLETED_FOR_IMPORTANCE

esc = html.escape
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1200px;
 padding:0 1em;color:#222}
h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:separate;border-spacing:0;font-size:13px}
td,th{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left;white-space:nowrap}
th{background:#eee}
.scroll{overflow:auto;max-height:70vh;max-width:100%;width:fit-content;border:1px solid #ccc}
.scroll thead th{position:sticky;top:0;z-index:1}
.warn{background:#fff3cd;border:1px solid #d9a400;border-radius:4px;padding:.7em 1em;margin:1em 0}
.note{color:#555}
.plot{width:100%;margin:1em 0}
figure{display:inline-block;margin:1em;vertical-align:top}
figure img{max-width:560px;width:100%}
pre{background:#f6f6f6;padding:1em;overflow:auto}
""".strip()


def html_table(
    header: Sequence[str] | None, body: Iterable[Sequence[Any]], scroll: bool = False
) -> str:
    """A table; `scroll` wraps it in a box that scrolls both ways under a sticky header."""
    head = "".join(f"<th>{esc(str(h))}</th>" for h in header or ())
    rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in r) + "</tr>" for r in body)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    table = f"<table>{thead}<tbody>{rows}</tbody></table>"
    return f"<div class='scroll'>{table}</div>" if scroll else table


def summary_items(
    manifest: Mapping[str, Any], chance: Mapping[str, Any] | None
) -> list[tuple[str, Any]]:
    """The rows of the summary table: what ran, on what, and how well (missing rows left out)."""
    cfg = manifest.get("config") or {}
    best = manifest.get("best_trial") or {}
    test = test_metrics_of(manifest)
    items = [
        ("command", manifest.get("command")),
        ("status", manifest.get("status")),
        ("started", manifest.get("started_at")),
        ("dataset", data_source(manifest)),
        ("engine", manifest.get("engine")),
        ("tuner", (cfg.get("tuner") or {}).get("tuner") if isinstance(cfg, dict) else None),
        ("best trial", best.get("trial_id")),
        ("best objective", fmt(best.get("score"))),
        ("test accuracy", fmt(test.get("accuracy"))),
        ("test loss", fmt(test.get("loss"))),
        ("chance", f"{fmt(chance['rate'])} ({chance['basis']})" if chance else None),
        ("wall seconds", manifest.get("wall_seconds")),
    ]
    return [(k, v) for k, v in items if v not in (None, "", {}, "—")]


def chance_warning(chance: Mapping[str, Any] | None) -> str:
    """The warning box when the test accuracy is within noise of guessing ('' otherwise)."""
    if not chance or not chance.get("within_noise"):
        return ""
    acc = chance.get("accuracy")
    band = (
        f" (±{fmt(chance['margin'])} is noise at {chance['examples']} test examples)"
        if chance.get("margin")
        else ""
    )
    scored = f"Test accuracy {fmt(acc)} is" if acc is not None else "The best model is"
    return (
        f"<div class='warn' id='chance-warning'><b>Within noise of chance.</b> {scored} "
        f"indistinguishable from guessing: chance is {fmt(chance['rate'])} "
        f"({esc(str(chance['basis']))}){band}. The model has not learnt to tell the classes "
        "apart; more data, epochs or trials come before tuning details.</div>"
    )


def _per_class_section(out: Path) -> list[str]:
    parts = []
    try:
        scores = per_class_scores(out / "classification_report.json")
    except Exception:  # no evaluation yet: the section shows what exists (maybe nothing)
        scores = {}
    txt = out / "classification_report.txt"
    if not scores and not txt.is_file():
        return parts
    parts.append("<section id='per-class'><h2>Per-class scores (test split)</h2>")
    if scores:
        metrics = ("precision", "recall", "f1-score", "support")
        body = [[c, *(fmt(v.get(m)) for m in metrics)] for c, v in scores.items()]
        parts.append(html_table(["class", *metrics], body, scroll=True))
    if txt.is_file():
        parts.append("<details><summary>scikit-learn classification report</summary>")
        parts.append(f"<pre>{esc(txt.read_text(encoding='utf-8'))}</pre></details>")
    parts.append("</section>")
    return parts


def _reproduce_section(repro: Mapping[str, Any]) -> list[str]:
    body = [
        [
            c["trial_id"],
            fmt(c["mean"]),
            fmt(c["std"]),
            f"{fmt(c['ci95'][0])} … {fmt(c['ci95'][1])}",
            ", ".join(fmt(s) for s in c["scores"]),
            fmt(c.get("seconds_per_run")),
        ]
        for c in repro.get("configurations", [])
    ]
    return [
        "<section id='reproduce'><h2>Reproducibility (re-trained with several seeds)</h2>",
        f"<p><b>{esc(str(repro.get('verdict', '')))}</b></p>",
        *(
            [f"<p class='warn'>{esc(str(repro['search_test_outside']['line']))}</p>"]
            if isinstance(repro.get("search_test_outside"), Mapping)
            else []
        ),
        html_table(["trial", "mean", "std", "95% interval", "scores", "seconds/run"], body, True),
        "</section>",
    ]


def _pngs(out: Path, plots: Mapping[str, Path]) -> dict[str, Path]:
    """Ours first, then any other PNG a command left in report/ (e.g. lr_find.png)."""
    shown = {n: Path(plots[n]) for n in PLOTS if n in plots}
    known = {p.resolve() for p in shown.values()}
    for extra in sorted(out.glob("*.png")):
        if extra.resolve() not in known and not extra.name.startswith("."):
            shown[extra.stem] = extra
    return {n: p for n, p in shown.items() if p.is_file()}


def write_html(
    run_dir: Path,
    manifest: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    *,
    direction: str,
    objective_name: str,
    plots: Mapping[str, Path],
    figures: Mapping[str, Any],
    skipped: Mapping[str, str],
    imp: Mapping[str, float],
    importance_note: str | None,
    chance: Mapping[str, Any] | None,
    repro: Mapping[str, Any] | None,
    top: int,
) -> Path:
    """Write RUN_DIR/report/index.html and return its path."""
    out = run_dir / REPORT_DIR
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>automl report: {esc(run_dir.name)}</title><style>{_CSS}</style>",
    ]
    if figures:
        parts.append(f"<script type='text/javascript'>{plotly_js()}</script>")
    parts += ["</head><body>", f"<h1>Run {esc(run_dir.name)}</h1>"]
    parts.append("<section id='summary'><h2>Summary</h2>")
    parts.append(chance_warning(chance))
    parts.append(html_table(None, summary_items(manifest, chance)))
    links = [
        (f, f)
        for f in (runs.TRIALS_CSV, "classification_report.txt", "importance.json", "reproduce.json")
        if (out / f).is_file()
    ]
    if (run_dir / "best" / "model_card.json").is_file():
        links.append(("../best/model_card.json", "best/model_card.json"))
    if links:
        parts.append(
            "<p>Files: " + " · ".join(f"<a href='{esc(h)}'>{esc(t)}</a>" for h, t in links) + "</p>"
        )
    parts.append("</section>")
    if rows:
        header, body = leaderboard_rows(rows, direction, top)
        parts.append("<section id='leaderboard'>")
        parts.append(
            f"<h2>Leaderboard (top {len(body)} of {len(rows)} by {esc(objective_name)})</h2>"
        )
        parts.append(html_table(header, body, scroll=True))
        parts.append("</section>")
        parts.append("<section id='importance'><h2>Hyperparameter importance</h2>")
        if imp:
            parts.append(
                f"<p class='note'>Optuna's fANOVA over {esc(objective_name)}; computed from "
                f"{MIN_COMPLETED_FOR_IMPORTANCE} or more completed trials.</p>"
            )
            parts.append(
                html_table(["hyperparameter", "importance"], [(k, fmt(v)) for k, v in imp.items()])
            )
        else:
            parts.append(f"<p class='note'>{esc(importance_note or 'Not computed.')}</p>")
        parts.append("</section>")
    if repro:
        parts += _reproduce_section(repro)
    if figures:
        parts.append("<section id='figures'><h2>Interactive figures</h2>")
        parts.append(
            "<p class='note'>Hover for values, drag to zoom, double-click to reset, click a "
            "legend entry to hide it.</p>"
        )
        for name, fig in figures.items():
            parts.append(f"<h3>{esc(FIGURES.get(name, name))}</h3>")
            parts.append(f"<div class='plot'>{figure_div(fig, f'fig-{name}')}</div>")
        parts.append("</section>")
    parts += _per_class_section(out)
    pngs = _pngs(out, plots)
    if pngs:
        parts.append("<section id='plots'><h2>Plots (PNG, for pasting)</h2>")
        for name, png in pngs.items():
            data = base64.b64encode(png.read_bytes()).decode("ascii")
            parts.append(
                f"<figure id='png-{esc(name)}'><img alt='{esc(name)}' "
                f"src='data:image/png;base64,{data}'><figcaption>{esc(name)}.png</figcaption>"
                "</figure>"
            )
        parts.append("</section>")
    if skipped:
        parts.append("<section id='not-drawn'><h3>Not drawn</h3><ul>")
        parts += [f"<li>{esc(k)}: {esc(v)}</li>" for k, v in skipped.items()]
        parts.append("</ul></section>")
    parts.append("<section id='manifest'><details><summary>Manifest (run.json)</summary>")
    parts.append(f"<pre>{esc(json.dumps(manifest, indent=2, default=str))}</pre></details>")
    parts.append("</section></body></html>")
    return runs.atomic_write_text(out / INDEX, "\n".join(p for p in parts if p) + "\n")
