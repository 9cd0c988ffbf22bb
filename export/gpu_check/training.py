"""Rows 2 and 3: the check's mke-train run on the GPU, the training speed of its teacher and MM student
in steady state, and the trained student's PyTorch latency at batch 1."""
from __future__ import annotations

import dataclasses
import json
import time

from mke.export.gpu_check.context import Context, Row, failed
from mke.export.gpu_check.machine import has_module
from mke.export.gpu_check.plan import (DRY_LATENCY_REPEATS, DRY_THROUGHPUT_EPOCHS, LATENCY_REPEATS, SIZES, STUDENT,
                                       THROUGHPUT_EPOCHS, train_overrides)

STAGE = "training: mke-train --task rgbd"


def stage_train(ctx: Context) -> list[Row]:
    """mke-train in a subprocess: the whole pipeline on the GPU, as a user runs it."""
    from mke.train.runs import open_run, read_json

    missing = [m for m in ("torchvision", "torchmetrics", "matplotlib", "sklearn") if not has_module(m)]
    if missing:
        return [Row(STAGE, "skipped", f"{', '.join(missing)} absent", "mke-train needs them")]
    rc, seconds, line = ctx.run_module("train", ["mke.train.cli", "--task", "rgbd", "--name", ctx.run_dir.name,
                                                 "--runs-dir", str(ctx.work), "--fresh", "--no-progress",
                                                 *train_overrides(ctx.dry_run, ctx.work)], 300)
    if rc != 0:
        return [failed(STAGE, rc, seconds, line)]
    run, cfg = open_run(ctx.run_dir)
    metrics = read_json(run.metrics) or {}
    scores = ", ".join(f"{r['method']} {r['mean']:.2f}" for r in metrics.get("results", []))
    timing = metrics.get("timing_s", {})
    stages = ", ".join(f"{k} {v:.1f}" for k, v in timing.items() if k != "total")
    return [Row(f"{STAGE} on {cfg['device']}", "ok", f"{seconds:.0f} s; mIoU {scores}",
                f"stages in s: {stages} (together {timing.get('total', float('nan')):.1f}); the rest is the "
                "process start and reading the rooms", seconds)]


def stage_throughput(ctx: Context) -> list[Row]:
    """Training speed without start-up: `fit` (the loop every mke-train model trains in) on the run's own
    data, model, optimizer, augmentation, class weights and precision, timed from the end of its first
    epoch (CUDA's start, cuDNN's choices, the allocator growing) to the end of its last."""
    import torch

    from mke.train.fit import fit, resolve_precision
    from mke.train.methods import plan_students
    from mke.train.pipeline import optim_settings, teacher_augmentation, training_split
    from mke.train.pseudo import PseudoLabelCache
    from mke.train.runs import open_run, run_context

    run, cfg = open_run(ctx.run_dir)
    cfg, task, data = run_context(json.dumps(cfg, sort_keys=True))  # `device` resolved as the workers resolve it
    device = cfg["device"]
    precision = resolve_precision(cfg["precision"], device)
    if ctx.dry_run:
        torch.set_num_threads(1)  # tiny nets on a shared CPU: one thread beats two contending
    job = next(j for j in plan_students(cfg["methods"], cfg["regularization"]) if j.method.name == STUDENT)
    labels = PseudoLabelCache(run.pseudo_labels(0)).load(run.teacher(0))
    trainings = [("UM teacher", "teacher", data.labeled.select((data.alpha,)), teacher_augmentation(cfg),
                  "D_l, RGB"),
                 (STUDENT, "student", training_split(job.method, data, labels, cfg["pseudo_labels"]), job.reg,
                  "D_u with the teacher's pseudo labels, RGB + depth")]
    epochs = DRY_THROUGHPUT_EPOCHS if ctx.dry_run else THROUGHPUT_EPOCHS
    rows = []
    for method, role, split, reg, what in trainings:
        optim = dataclasses.replace(optim_settings(cfg, role), epochs=epochs)
        model = task.build_model(cfg, role, tuple(split.inputs), reg)
        ends: list[float] = []
        start = time.monotonic()
        fit(model, split, optim, reg, seed=0, task=task, device=device, precision=cfg["precision"],
            class_weight=task.class_weight(cfg, split.targets, data.num_classes),
            on_epoch=lambda epoch, loss: ends.append(time.perf_counter()))  # after loss.item(): the GPU is done
        samples = (epochs - 1) * len(split)
        rate = samples / (ends[-1] - ends[0])
        rows.append(Row(f"training on {device}, {precision} autocast, steady state: {method}", "ok",
                        f"{rate:.0f} samples/s",
                        f"`fit` on {what} ({len(split)} frames, batch {optim.batch_size}, {optim.name}, "
                        f"`{cfg['model']['encoder']}` encoder, channels-last): epochs 2–{epochs} timed, "
                        f"{samples} samples in {ends[-1] - ends[0]:.2f} s", time.monotonic() - start))
    return rows


def stage_latency(ctx: Context) -> list[Row]:
    """The MM student at batch 1 and each of SIZES (a fully convolutional net takes any size), timed
    interleaved by mke.runtime.timing with a CUDA synchronise in every call."""
    import torch

    from mke.runtime.timing import interleaved_latency
    from mke.train.fit import channels_last
    from mke.train.runs import headline_student, load_model, open_run
    from mke.train.tasks import get_task

    run, cfg = open_run(ctx.run_dir)
    task = get_task(cfg["task"])
    model, meta = load_model(cfg, task, headline_student(run, cfg, 0, STUDENT))
    device, dtype = ("cpu", torch.float32) if ctx.dry_run else ("cuda", torch.float16)
    label = "PyTorch CPU FP32 (dry run)" if ctx.dry_run else "PyTorch CUDA FP16"
    repeats = DRY_LATENCY_REPEATS if ctx.dry_run else LATENCY_REPEATS
    if ctx.dry_run:
        torch.set_num_threads(1)
    torch.backends.cudnn.benchmark = True  # fixed sizes: cuDNN picks its fastest kernels once, in the warm-up
    model = model.to(device=device, dtype=dtype).to(memory_format=torch.channels_last).eval()
    channels = {m: task.input_spec(cfg, m).shape[1] for m in meta["modalities"]}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    runs = {}
    for h, w in SIZES:
        inputs = channels_last({m: torch.randn(1, c, h, w, device=device, dtype=dtype) for m, c in channels.items()})

        def forward(inputs=inputs):
            with torch.inference_mode():
                model(**inputs)
            sync()

        runs[f"{w}×{h}"] = forward
    start = time.monotonic()
    timing = interleaved_latency(runs, repeats=repeats, warmup=max(2, repeats // 10))
    each_s = (time.monotonic() - start) / len(runs)
    inputs_text = " + ".join(f"{m} ({c} channel{'s' if c > 1 else ''})" for m, c in channels.items())
    weights = "weights in FP16 (`model.half()`), " if dtype == torch.float16 else ""
    return [Row(f"{label} latency, batch 1, {size}: {STUDENT}", "ok",
                f"{lat.median_ms:.2f} ms median, {1000 / lat.median_ms:.0f} FPS",
                f"p90 {lat.p90_ms:.2f} ms over {lat.runs} runs, interleaved with the other size; "
                f"`{cfg['model']['encoder']}` encoder, {inputs_text}, {weights}channels-last, cudnn.benchmark",
                each_s)
            for size, lat in timing.items()]
