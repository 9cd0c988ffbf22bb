"""metrics.json → report.md: the paper's table with ours beside it, the regularization study, figures."""
from __future__ import annotations

import datetime
import platform
from pathlib import Path

from mke.runtime.fileio import write_text
from mke.train.methods import METHODS

PAPER_ORDER = list(METHODS)  # UM teacher, UM student, NOISY, MM (no reg), MM student, MM (sup)
STRENGTH_ORDER = ["none", "weak", "strong", "default"]


def find(metrics: dict, method: str, regularization: str | None = None, strength: str | None = None) -> dict | None:
    for r in metrics["results"]:
        if r["method"] == method and regularization in (None, r["regularization"]) and strength in (None, r["strength"]):
            return r
    return None


def headline_cell(metrics: dict, method: str) -> dict | None:
    """The result the paper's headline column shows for `method`."""
    if not METHODS[method].regularized:
        return find(metrics, method, "none", "none")
    h = metrics["headline"]
    return find(metrics, method, h["regularization"], h["strength"])


def _fmt(r: dict | None, metric: str) -> str:
    if r is None:
        return "–"
    if metric == "map":
        return f"{r['mean']:.3f} ± {r['std']:.3f}"
    return f"{r['mean']:.2f} ± {r['std']:.2f}"


def _paper(value: float | None, metric: str) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if metric == "map" else f"{value:.2f}"


def headline_table(metrics: dict) -> str:
    """The paper's layout: one column per method, ours (mean ± std over seeds) and the paper's."""
    metric = metrics["metric"]
    cols = [m for m in PAPER_ORDER if headline_cell(metrics, m) is not None or m in metrics["paper"]]
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols),
             "| ours | " + " | ".join(_fmt(headline_cell(metrics, m), metric) for m in cols) + " |",
             "| paper | " + " | ".join(_paper(metrics["paper"].get(m), metric) for m in cols) + " |"]
    return "\n".join(lines)


def regularization_table(metrics: dict) -> str | None:
    """Rows: regularization × strength; columns: the regularized methods. None if only one setting."""
    metric = metrics["metric"]
    rows = sorted({(r["regularization"], r["strength"]) for r in metrics["results"] if r["regularization"] != "none"},
                  key=lambda rs: (rs[0], STRENGTH_ORDER.index(rs[1]) if rs[1] in STRENGTH_ORDER else 99))
    if len(rows) < 2:
        return None
    cols = [m for m in PAPER_ORDER if METHODS[m].regularized and find(metrics, m) is not None]
    lines = ["| regularization | strength | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    none_row = [(reg, s) for reg, s in rows if s == "none"]
    if none_row:  # "no regularization" is one training whatever the kind: one row
        reg = none_row[0][0]
        lines.append("| none | – | " + " | ".join(_fmt(find(metrics, m, reg, "none"), metric) for m in cols) + " |")
    for reg, strength in rows:
        if strength != "none":
            lines.append(f"| {reg} | {strength} | " + " | ".join(_fmt(find(metrics, m, reg, strength), metric) for m in cols) + " |")
    return "\n".join(lines)


def pseudo_label_note(pl: dict) -> str:
    """One sentence on the labels the students learnt from: kind, test-time augmentation, quality."""
    tta = pl.get("tta") or {}
    views = ", ".join((["flip"] if tta.get("flip") else []) + [f"scale {s}" for s in tta.get("scales") or []])
    text = f"Pseudo labels: {pl['kind']}" + (f", the teacher averaged over {views} (test-time augmentation)" if views else "")
    if pl.get("score_on_unlabeled") is not None:
        text += f"; they score {pl['score_on_unlabeled']:.2f} against the truth on D_u"
    if pl.get("tta_teacher_test") is not None:
        text += (f"; the teacher with the same augmentation scores {pl['tta_teacher_test']:.2f} on the test split "
                 "(the table gives its single pass, the network a robot would run)")
    return text + "."


DATA_LIST_MAX = 20  # items of a list the Data section shows; metrics.json keeps them all


def _data_value(value) -> str:
    """One value of `metrics["data"]` as text: a mapping as "key value, …", a list as "a; b; …" (an item
    with a file and a reason as "file (reason)"), an empty one as "none"."""
    if isinstance(value, dict):
        if set(value) >= {"file", "reason"}:
            return f"{value['file']} ({value['reason']})"
        return ", ".join(f"{str(k).replace('_', ' ')} {_data_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        items = [_data_value(v) for v in value[:DATA_LIST_MAX]]
        if len(value) > DATA_LIST_MAX:
            items.append(f"… and {len(value) - DATA_LIST_MAX} more (metrics.json lists all)")
        return "; ".join(items) if items else "none"
    return str(value)


def data_section(summary: dict) -> list[str]:
    """The "Data" section's lines from the task's `data_summary` (metrics["data"]); [] when it is empty."""
    if not summary:
        return []
    return ["", "## Data", ""] + [f"- {str(k).replace('_', ' ')}: {_data_value(v)}" for k, v in summary.items()]


def throughput_lines(throughput: dict) -> list[str]:
    """Samples per second of each stage (all ranks) and the share of step time spent waiting for data."""
    if not throughput:
        return []
    return ["", "Throughput: " + " · ".join(
        f"{stage} {t['samples_per_s']:.1f} samples/s"
        + (f" ({100 * t['data_wait_share']:.1f} % waiting for data)" if "data_wait_share" in t else "")
        for stage, t in throughput.items())]


def write_report(cfg: dict, task, run, data, metrics: dict) -> list[Path]:
    """Write figures and report.md; return the figure paths."""
    from mke.train import plots

    run.figures_dir.mkdir(parents=True, exist_ok=True)
    figures = [plots.methods_bar(run, metrics)]
    if regularization_table(metrics) is not None:
        figures.append(plots.regularization_curves(run, metrics))
    figures += task.figures(run, data)
    figures += [plots.distillation_graph(run, r) for r in metrics["results"] if "edges" in r]
    units = {"accuracy": "accuracy, %", "miou": "mIoU, %", "map": "mAP"}[metrics["metric"]]
    h = metrics["headline"]
    pl = metrics["pseudo_labels"]
    parts = [
        f"# MKE report — {task.title}",
        "",
        f"Run `{run.root}`, {len(metrics['seeds'])} seeds, {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"torch {metrics['versions']['torch']}, Python {platform.python_version()}. Metric: {units} on the labeled "
        f"multimodal test split; mean ± standard deviation over seeds.",
        "",
        f"## Knowledge expansion ({h['regularization']}, {h['strength']})",
        "",
        headline_table(metrics),
        "",
        task.paper_note,
        "",
        pseudo_label_note(pl),
    ]
    parts += data_section(metrics.get("data") or {})
    reg_table = regularization_table(metrics)
    if reg_table:
        parts += ["", "## Regularization study", "", reg_table]
    parts += ["", "## Figures", ""] + [f"![{p.stem}]({p.relative_to(run.root)})" for p in figures]
    parts += ["", "## Timing (seconds)", "", " · ".join(f"{k}: {v:.1f}" for k, v in metrics.get("timing_s", {}).items())
              + " (up to this report; `metrics.json` adds the report's own seconds)"]
    parts += throughput_lines(metrics.get("throughput") or {})
    parts += ["", "The resolved configuration is in `config.yaml`; every number above is in `metrics.json`.", ""]
    write_text(run.report, "\n".join(parts))
    return figures
