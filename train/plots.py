"""Report figures (matplotlib, written atomically as PNG)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.patches  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from mke.runtime.fileio import atomic_path  # noqa: E402

COLORS = {"ours": "#1f77b4", "paper": "#bbbbbb"}


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def methods_bar(run, metrics: dict) -> Path:
    from mke.train.report import PAPER_ORDER, headline_cell

    methods = [m for m in PAPER_ORDER if headline_cell(metrics, m) is not None]
    ours = [headline_cell(metrics, m) for m in methods]
    paper = [metrics["paper"].get(m, np.nan) for m in methods]
    x = np.arange(len(methods))
    fig, ax = plt.subplots(figsize=(1.6 * len(methods) + 2, 3.6))
    ax.bar(x - 0.2, [r["mean"] for r in ours], 0.4, yerr=[r["std"] for r in ours], capsize=3,
           label="ours", color=COLORS["ours"])
    ax.bar(x + 0.2, paper, 0.4, label="paper", color=COLORS["paper"])
    ax.set_xticks(x, [m.replace(" (", "\n(") for m in methods], fontsize=8)
    ax.set_ylabel(metrics["metric"])
    low = min([r["mean"] - r["std"] for r in ours] + [p for p in paper if not np.isnan(p)])
    ax.set_ylim(max(0.0, low - 10), None)
    h = metrics["headline"]
    ax.set_title(f"{metrics['task']}: {h['regularization']} ({h['strength']}), mean ± std over {len(metrics['seeds'])} seeds")
    ax.legend(loc="lower right")
    return _save(fig, run.figures_dir / "methods.png")


def regularization_curves(run, metrics: dict) -> Path:
    from mke.train.methods import METHODS
    from mke.train.report import STRENGTH_ORDER, find

    kinds = sorted({r["regularization"] for r in metrics["results"] if r["regularization"] != "none"})
    methods = [m for m in METHODS if METHODS[m].regularized and find(metrics, m) is not None]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.4), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        strengths = [s for s in STRENGTH_ORDER if find(metrics, methods[0], kind, s)]
        for m in methods:
            cells = [find(metrics, m, kind, s) for s in strengths]
            ax.errorbar(range(len(strengths)), [c["mean"] for c in cells], yerr=[c["std"] for c in cells],
                        marker="o", capsize=3, label=m)
        teacher = find(metrics, "UM teacher")
        if teacher:
            ax.axhline(teacher["mean"], color="k", ls=":", lw=1, label="UM teacher")
        ax.set_xticks(range(len(strengths)), strengths)
        ax.set_title(kind.replace("_", " "))
    axes[0][0].set_ylabel(metrics["metric"])
    axes[0][-1].legend(fontsize=7, loc="lower right")
    return _save(fig, run.figures_dir / "regularization.png")


def twomoon_decision_boundaries(run, task, data) -> Path:
    """The paper's Figure 3: teacher, its pseudo labels, UM student and MM student on the two moons."""
    from mke.train.pseudo import PseudoLabelCache, pseudo_targets
    from mke.train.runs import headline_student, load_model, run_config

    cfg = run_config(run)
    seed = cfg["report"]["example_seed"] % cfg["seeds"]
    h = cfg["report"]["headline"]

    test_xy = torch.cat([data.test.inputs["x"], data.test.inputs["y"]], 1).numpy()
    unl_xy = torch.cat([data.unlabeled.inputs["x"], data.unlabeled.inputs["y"]], 1).numpy()
    lo, hi = np.minimum(test_xy.min(0), unl_xy.min(0)) - 0.5, np.maximum(test_xy.max(0), unl_xy.max(0)) + 0.5
    gx, gy = np.meshgrid(np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200))
    grid = {"x": torch.tensor(gx.ravel(), dtype=torch.float32)[:, None],
            "y": torch.tensor(gy.ravel(), dtype=torch.float32)[:, None]}
    cmap = matplotlib.colors.ListedColormap(["#d62728", "#1f77b4"])

    panels = [("UM teacher (sees x)", run.teacher(seed), test_xy, data.test.targets.numpy())]
    hard, _ = pseudo_targets(PseudoLabelCache(run.pseudo_labels(seed)).load(run.teacher(seed)), "hard", False)
    panels.append(("pseudo labels on D_u", None, unl_xy, hard.numpy()))
    for method, label in [("UM student", "UM student (sees x)"), ("MM student", "MM student (sees x, y)")]:
        path = headline_student(run, cfg, seed, method)
        if path is not None:
            panels.append((label, path, test_xy, data.test.targets.numpy()))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.4))
    for ax, (title, path, pts, labels) in zip(np.atleast_1d(axes), panels):
        if path is not None:
            model, meta = load_model(cfg, task, path)
            with torch.no_grad():
                z = model(**{m: grid[m] for m in meta["modalities"]}).argmax(1).numpy().reshape(gx.shape)
                pred = model(**{m: data.test.inputs[m] for m in meta["modalities"]}).argmax(1)
            acc = 100.0 * float((pred == data.test.targets).float().mean())
            ax.contourf(gx, gy, z, levels=[-0.5, 0.5, 1.5], cmap=cmap, alpha=0.18)
            title = f"{title}: {acc:.1f} %"
        ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap=cmap, s=9, alpha=0.8, edgecolors="none")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([]); ax.set_yticks([])
        ax.set_xlabel("x (modality α)"); ax.set_ylabel("y (modality β)")
    fig.suptitle(f"TwoMoon, seed {seed}, {h['regularization']} ({h['strength']}); test points coloured by truth", fontsize=9)
    return _save(fig, run.figures_dir / "decision_boundaries.png")


def segmentation_examples(run, task, data) -> Path:
    """Test frames: RGB, depth, teacher, UM student, MM student (headline setting) and ground truth."""
    from mke.train.runs import headline_student, load_model, run_config

    cfg = run_config(run)
    seed = cfg["report"]["example_seed"] % cfg["seeds"]
    n = min(cfg["report"]["examples"], len(data.test))
    index = torch.linspace(0, len(data.test) - 1, n).long()
    frames = data.test.take(index)
    palette = np.array(task.class_colors, np.uint8)

    def colour(labels: torch.Tensor) -> np.ndarray:
        lab = labels.numpy()
        out = np.zeros(lab.shape + (3,), np.uint8)
        valid = lab < len(palette)
        out[valid] = palette[lab[valid]]
        return out

    columns = [("RGB", None), ("depth", None), ("UM teacher", run.teacher(seed))]
    for method in ("UM student", "MM student"):
        path = headline_student(run, cfg, seed, method)
        if path is not None:
            columns.append((method, path))
    columns.append(("ground truth", None))
    mean = np.asarray(cfg["preprocess"]["rgb"]["mean"])
    std = np.asarray(cfg["preprocess"]["rgb"]["std"])
    fig, axes = plt.subplots(n, len(columns), figsize=(2.2 * len(columns), 1.75 * n), squeeze=False)
    preds = {}
    for title, path in columns:
        if path is not None:
            model, meta = load_model(cfg, task, path)
            with torch.no_grad():
                preds[title] = model(**{m: frames.inputs[m] for m in meta["modalities"]}).argmax(1)
    for row in range(n):
        for col, (title, _) in enumerate(columns):
            ax = axes[row][col]
            if title == "RGB":
                img = (frames.inputs["rgb"][row].numpy().transpose(1, 2, 0) * std + mean).clip(0, 1)
                ax.imshow(img)
            elif title == "depth":
                ax.imshow(frames.inputs["depth"][row, 0].numpy(), cmap="viridis")
            elif title == "ground truth":
                ax.imshow(colour(frames.targets[row]))
            else:
                ax.imshow(colour(preds[title][row]))
            ax.set_xticks([]); ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
    handles = [matplotlib.patches.Patch(color=np.array(c) / 255, label=name)
               for name, c in zip(task.class_names, task.class_colors)]
    fig.legend(handles=handles, loc="lower center", ncol=min(8, len(handles)), fontsize=7, frameon=False)
    fig.suptitle(f"{task.title}: test frames, seed {seed}", fontsize=9)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    return _save(fig, run.figures_dir / "examples.png")


def _teacher_and_students(run) -> tuple[dict, int, list[tuple[str, Path]]]:
    """The run's config, the report's example seed, and (title, checkpoint) of its teacher, UM student and
    MM student (headline setting) that exist."""
    from mke.train.runs import headline_student, run_config

    cfg = run_config(run)
    seed = cfg["report"]["example_seed"] % cfg["seeds"]
    models = [("UM teacher", run.teacher(seed))]
    models += [(m, headline_student(run, cfg, seed, m)) for m in ("UM student", "MM student")]
    return cfg, seed, [(title, path) for title, path in models if path is not None and path.is_file()]


def confusion_matrices(run, task, data) -> Path:
    """Row-normalised confusion matrices on the test split (torchmetrics) of the teacher, the UM student
    and the MM student (headline setting) of the report's example seed."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    from mke.train.fit import predict
    from mke.train.metrics import class_ids
    from mke.train.runs import load_model

    cfg, seed, models = _teacher_and_students(run)
    names, k = data.class_names, data.num_classes
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False)
    for ax, (title, path) in zip(axes[0], models):
        model, meta = load_model(cfg, task, path)
        preds = class_ids(predict(model, data.test.select(meta["modalities"]), batch_size=256))
        cm = multiclass_confusion_matrix(preds, data.test.targets, k, normalize="true").numpy()
        accuracy = 100.0 * float((preds == data.test.targets).float().mean())
        ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                if cm[i, j] >= 0.005:
                    ax.text(j, i, f"{100 * cm[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if cm[i, j] > 0.6 else "black")
        ax.set_xticks(range(k), names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), names, fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_title(f"{title} ({' + '.join(meta['modalities'])}): {accuracy:.1f} %", fontsize=8)
    axes[0][0].set_ylabel("true", fontsize=8)
    fig.suptitle(f"{task.title}: test confusion (% of each true class), seed {seed}", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return _save(fig, run.figures_dir / "confusion.png")


def class_average_precision(run, task, data) -> Path:
    """Average precision of each class on the test split (torchmetrics) for the teacher, the UM student and
    the MM student (headline setting) of the report's example seed: a multilabel task's per-class view,
    where a confusion matrix has no meaning."""
    from torchmetrics.functional.classification import multilabel_average_precision

    from mke.train.fit import predict
    from mke.train.runs import load_model

    cfg, seed, models = _teacher_and_students(run)
    names, k = data.class_names, data.num_classes
    targets = data.test.targets.long()
    x = np.arange(k + 1)
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(min(0.75 * (k + 1) + 2, 24.0), 3.6))   # 63 classes: 24 in, small labels
    for i, (title, path) in enumerate(models):
        model, meta = load_model(cfg, task, path)
        probs = torch.sigmoid(predict(model, data.test.select(meta["modalities"]), batch_size=256).float())
        ap = multilabel_average_precision(probs, targets, k, average=None).numpy()
        ax.bar(x + (i - (len(models) - 1) / 2) * width, list(ap) + [float(ap.mean())], width,
               label=f"{title} ({' + '.join(meta['modalities'])}): mAP {ap.mean():.3f}")
    ax.set_xticks(x, list(names) + ["mean"], rotation=45 if k <= 20 else 90, ha="right" if k <= 20 else "center",
                  fontsize=8 if k <= 20 else 6)
    ax.set_ylabel("average precision (test)")
    ax.set_ylim(0.0, 1.05)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=len(models), frameon=False)
    ax.set_title(f"{task.title}: average precision per class, seed {seed}", fontsize=9)
    fig.tight_layout()
    return _save(fig, run.figures_dir / "class_ap.png")


def distillation_graph(run, result: dict) -> Path:
    """The learned edges of a distilling student (DMD): one graph per unit (homogeneous, heterogeneous),
    nodes the modalities and the teacher, each arrow j → i as wide as its mean weight over the test split,
    labelled mean ± std over seeds."""
    graphs = result["edges"]
    nodes = sorted({n for edges in graphs.values() for e in edges for n in e.split("→")}, key=lambda n: n != "teacher")
    angle = {n: np.pi / 2 + 2 * np.pi * k / len(nodes) for k, n in enumerate(nodes)}
    at = {n: (np.cos(a), np.sin(a)) for n, a in angle.items()}
    fig, axes = plt.subplots(1, len(graphs), figsize=(4.2 * len(graphs), 4.0), squeeze=False)
    for ax, (graph, edges) in zip(axes[0], sorted(graphs.items())):
        for n, (x, y) in at.items():
            ax.add_patch(matplotlib.patches.Circle((x, y), 0.22, color="#dddddd" if n == "teacher" else "#9ecae1"))
            ax.text(x, y, n, ha="center", va="center", fontsize=8)
        for edge, w in edges.items():
            j, i = edge.split("→")
            (x0, y0), (x1, y1) = at[j], at[i]
            dx, dy = x1 - x0, y1 - y0
            length = np.hypot(dx, dy)
            nx, ny = -dy / length * 0.06, dx / length * 0.06          # two arrows of a pair side by side
            sx, sy = x0 + dx * 0.25 + nx, y0 + dy * 0.25 + ny
            ax.annotate("", xy=(x0 + dx * 0.75 + nx, y0 + dy * 0.75 + ny), xytext=(sx, sy),
                        arrowprops=dict(arrowstyle="-|>", lw=0.5 + 5 * w["mean"], color="#31688e"))
            ax.text(x0 + dx * 0.5 + 3 * nx, y0 + dy * 0.5 + 3 * ny, f"{w['mean']:.2f}±{w['std']:.2f}", fontsize=7,
                    ha="center", va="center")
        ax.set_xlim(-1.5, 1.5)
        ax.set_ylim(-1.5, 1.5)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{graph}geneous graph: who teaches whom", fontsize=9)
    fig.suptitle(f"{result['method']} ({result['regularization']}, {result['strength']}): learned edge weights on "
                 f"the test split, mean ± std over {len(result['per_seed'])} seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    slug = "".join(c if c.isalnum() else "_" for c in f"{result['method']}_{result['regularization']}_{result['strength']}")
    return _save(fig, run.figures_dir / f"edges_{slug.lower()}.png")
