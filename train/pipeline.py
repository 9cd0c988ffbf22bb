"""The MKE stages — teacher, pseudo labels, students, report — resumable, one folder per run.

    runs/<name>/config.yaml                   the resolved config
    runs/<name>/code.json                     a fingerprint of the code that started the run
    runs/<name>/seed<k>/teacher.pt|.json      teacher checkpoint and its test score
    runs/<name>/seed<k>/pseudo_labels.pt      the teacher's soft labels on D_u (keyed by its checksum)
    runs/<name>/seed<k>/students/<job>.pt|.json
    runs/<name>/metrics.json, report.md, figures/

Every unit of work writes its result JSON last (atomically); a unit whose result exists is done,
so a killed run resumes where it stopped. A student trained on another teacher's labels is redone.
A run resumed by different code (training, the shared preprocessing or the room renderer changed)
reuses what it finished, with a warning that names `--fresh`. A unit killed mid-training continues
from its last training state (`*.state.pt`, written at epoch ends: mke.train.fit, `train_state`).
Units run in a pool of worker processes (`workers`), each stage with its own progress bar. Under
torchrun (mke.train.distributed) every rank runs every unit in lockstep, data-parallel, one unit at a
time; rank 0 alone writes the run folder, evaluates on the test split and shows progress.
Reading a run back (its folder, config, models) is `mke.train.runs`, public for mke-export.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable

import torch
from tqdm import tqdm

from mke.runtime.errors import MkeError
from mke.runtime.fileio import file_sha256, write_json, write_text
from mke.runtime.memory import huge_pages_off
from mke.train import distributed
from mke.train.augment import nearest_inputs
from mke.train.checkpoint import save_checkpoint, warm_start
from mke.train.config import dump_config
from mke.train.data import MKEData, Split
from mke.train.fit import OptimSettings, Throughput, fit, predict, resolve_device
from mke.train.methods import NO_REG, TEACHER, Method, Regularization, StudentJob, augmentation, plan_students
from mke.train.pseudo import PseudoLabelCache, PseudoLabels, pseudo_targets
from mke.train.runs import RunDir, load_model, read_json, run_config, run_context
from mke.train.stacked import StackedModels, stack_split
from mke.train.tasks import get_task
from mke.train.tta import tta_batches, tta_probs, views

# Keys that change how fast a run goes, not what is trained: a resumed run may differ in them. (The
# threads each unit gets, cores / workers, can change float rounding, hence the last digits.)
SPEED_KEYS = ("workers", "train_state", "loader")


# ---------------------------------------------------------------- work done inside worker processes

def _modalities(method: Method, data: MKEData) -> tuple[str, ...]:
    return (data.alpha,) if method.modalities == "alpha" else (data.alpha, data.beta)


def _meta(cfg: dict, data: MKEData, method: Method, role: str, mods: tuple, reg, seed: int) -> dict:
    return {"task": cfg["task"], "method": method.name, "role": role, "modalities": list(mods),
            "classes": list(data.class_names), "regularization": {"kind": reg.kind, "strength": reg.strength},
            "seed": seed}


def evaluate(task, model: torch.nn.Module, data: MKEData, mods: tuple[str, ...], device: str) -> dict:
    """The task metric on the test split, plus what else its kind reports (per-class IoU for segmentation)."""
    logits = predict(model, data.test.select(mods), batch_size=32, device=device)
    return task.label_kind.evaluate(logits, data.test.targets, data.num_classes)


def _new_model(cfg: dict, task, role: str, mods: tuple, reg, seed: int) -> torch.nn.Module:
    """A model whose initial weights depend on the seed alone, not on what this process ran before."""
    torch.manual_seed(seed)
    return task.build_model(cfg, role, mods, reg)


def teacher_augmentation(cfg: dict) -> Regularization:
    """The teacher's own data augmentation (`teacher.augment`, e.g. flip + scale for segmentation):
    ordinary supervised training on D_l, not MKE's transformation T."""
    params = cfg["teacher"]["augment"]
    return augmentation("teacher", params) if params else NO_REG


def _train(cfg: dict, task, data: MKEData, seeds: tuple[int, ...], build, split_of, optim: OptimSettings,
           reg: Regularization, state_path: Path, throughput: Throughput, tag: str = "") -> list[torch.nn.Module]:
    """One model per seed, `build(seed)`, trained on `split_of(seed)`: one by one, or — a task that
    stacks its seeds (Task.stack_seeds) — all of them at once as one stacked model (mke.train.stacked).
    `state_path`: the training's resume point (fit), valid only for the same `tag` too; `throughput`
    collects its speed."""
    resume = {"state_path": state_path, "state_every_s": float(cfg["train_state"]["every_s"]),
              "state_tag": tag, "throughput": throughput}
    if len(seeds) == 1:
        model, split = build(seeds[0]), split_of(seeds[0])
        return [fit(model, split, optim, reg, seed=seeds[0], task=task, device=cfg["device"],
                    class_weight=task.class_weight(cfg, split.targets, data.num_classes), precision=cfg["precision"],
                    **resume)]
    splits = [split_of(seed) for seed in seeds]
    if any(task.class_weight(cfg, split.targets, data.num_classes) is not None for split in splits):
        raise MkeError(f"task {task.name} weights its classes: its seeds cannot be stacked (Task.stack_seeds)")
    stacked = StackedModels([build(seed) for seed in seeds])
    fit(stacked, stack_split(splits), optim, reg, seed=seeds[0], task=task, device=cfg["device"],
        precision=cfg["precision"], **resume)
    return stacked.unstack()


def _finished(state_path: Path) -> None:
    """After the trained model's checkpoint and result are written: its resume point is not needed,
    and every rank may go on (to read what rank 0 wrote)."""
    if distributed.world().main:
        state_path.unlink(missing_ok=True)
    distributed.barrier()


def _teacher_unit(cfg_json: str, root: str, seeds: tuple[int, ...]) -> list[dict]:
    cfg, task, data = run_context(cfg_json)
    run = RunDir(Path(root))
    start = time.perf_counter()
    mods = (data.alpha,)
    split = data.labeled.select(mods)
    speed = Throughput()
    state = run.teacher_state(seeds[0])
    models = _train(cfg, task, data, seeds, lambda seed: _new_model(cfg, task, "teacher", mods, NO_REG, seed),
                    lambda seed: split, optim_settings(cfg, "teacher"), teacher_augmentation(cfg), state, speed)
    results = []
    for seed, model in zip(seeds, models):
        if not distributed.world().main:  # under torchrun rank 0 alone evaluates and writes
            continue
        save_checkpoint(run.teacher(seed), model, _meta(cfg, data, TEACHER, "teacher", mods, NO_REG, seed))
        result = {"seed": seed, "cells": [[TEACHER.name, "none", "none"]],
                  **evaluate(task, model, data, mods, cfg["device"]),
                  "seconds": (time.perf_counter() - start) / len(seeds), "throughput": speed.as_dict()}
        write_json(run.teacher_result(seed), result)
        results.append(result)
    _finished(state)
    return results


def _pseudo_unit(cfg_json: str, root: str, seed: int) -> dict:
    cfg, task, data = run_context(cfg_json)
    run = RunDir(Path(root))
    teacher_sha = file_sha256(run.teacher(seed))
    previous = read_json(run.pseudo_result(seed))
    cache = PseudoLabelCache(run.pseudo_labels(seed))
    if previous and previous.get("teacher_sha256") == teacher_sha:
        try:
            cache.load(run.teacher(seed))
            return previous
        except MkeError:
            pass  # the labels file is gone or stale: make it again
    teacher, meta = load_model(cfg, task, run.teacher(seed))
    if len(meta["classes"]) != data.num_classes:
        raise MkeError(f"teacher {run.teacher(seed)} predicts {len(meta['classes'])} classes but the data has "
                       f"{data.num_classes} ({', '.join(data.class_names[:5])} …)")
    unlabeled_alpha = data.unlabeled.select((data.alpha,))
    batch = cfg["pseudo_labels"]["batch_size"]
    tta = cfg["pseudo_labels"]["tta"]
    kind = task.label_kind

    def compute(start: int, stop: int):  # one shard of D_u (mke.train.pseudo: each rank labels its shards)
        return tta_batches(teacher, unlabeled_alpha.part(start, stop), tta, kind=kind, batch_size=batch,
                           device=cfg["device"], precision=cfg["precision"],
                           nearest_inputs=nearest_inputs(task.input_kinds))

    started = time.perf_counter()
    labels, labelled = cache.load_or_compute_sharded(run.teacher(seed), compute, len(unlabeled_alpha), kind=kind,
                                                     top_k=cfg["pseudo_labels"]["top_k"], batch_size=batch,
                                                     shard_samples=cfg["loader"]["pseudo_shard_samples"])
    seconds = time.perf_counter() - started
    labelled = sum(distributed.all_gather_object(labelled))  # every rank's share of the pass
    if len(labels) != len(data.unlabeled):
        raise MkeError(f"{run.pseudo_labels(seed)} holds {len(labels)} labels for {len(data.unlabeled)} unlabeled samples")
    result = {"seed": seed, "teacher_sha256": teacher_sha, "bytes_per_sample": labels.nbytes_per_sample}
    if labelled:  # the pass's speed: D_u samples labelled (by all ranks, each through every TTA view) per second
        result.update(labelled_samples=labelled, pass_s=round(seconds, 3), samples_per_s=round(labelled / seconds, 2))
    if data.unlabeled.targets is not None:  # how good the labels the students learn from are
        result["score_on_unlabeled"] = kind.score_labels(labels.probs, data.unlabeled.targets, data.num_classes)
    if len(views(tta)) > 1 and distributed.world().main:  # the labelling teacher on the test split (rank 0)
        probs = tta_probs(teacher, data.test.select((data.alpha,)), tta, kind=kind, batch_size=batch,
                          device=cfg["device"], precision=cfg["precision"],
                          nearest_inputs=nearest_inputs(task.input_kinds))
        result["tta_teacher_test"] = kind.score_probs(probs, data.test.targets)
    result = distributed.broadcast_object(result)  # rank 0's, with its test score, on every rank
    if distributed.world().main:
        write_json(run.pseudo_result(seed), result)
    return result


def training_split(method: Method, data: MKEData, labels: PseudoLabels | None, pl_cfg: dict) -> Split:
    """The samples and targets a method trains on (DESIGN.md §2, baselines)."""
    mods = _modalities(method, data)
    if method.train_on == "labeled":
        return data.labeled.select(mods)
    unlabeled = data.unlabeled.select(mods)
    if method.targets == "true":
        if data.unlabeled.targets is None:
            raise MkeError(f"'{method.name}' needs labels on the unlabeled split, which this dataset lacks; "
                           f"remove it from `methods`")
        return unlabeled.with_targets(data.unlabeled.targets)
    targets, weights = pseudo_targets(labels, pl_cfg["kind"], pl_cfg["confidence_weight"])
    if method.train_on == "unlabeled":
        return unlabeled.with_targets(targets, weights)
    # NOISY student: true labels of D_l (in the pseudo labels' form) plus pseudo labels of D_u
    labeled_targets = labels.kind.true_as(data.labeled.targets, targets)
    labeled_weights = None if weights is None else torch.ones((len(data.labeled),) + weights.shape[1:])
    return Split.concat([data.labeled.select(mods).with_targets(labeled_targets, labeled_weights),
                         unlabeled.with_targets(targets, weights)])


def student_init(cfg: dict) -> str:
    init = cfg["student"]["init"]
    if init not in ("scratch", "teacher"):
        raise MkeError(f"student.init must be 'scratch' or 'teacher', got {init!r}")
    return init


def optim_settings(cfg: dict, role: str) -> OptimSettings:
    """`teacher.optim` or `student.optim`, typed (their defaults: OptimSettings)."""
    return OptimSettings.of(cfg[role]["optim"], f"{role}.optim")


def _student_unit(cfg_json: str, root: str, seeds: tuple[int, ...], job: StudentJob) -> list[dict]:
    cfg, task, data = run_context(cfg_json)
    run = RunDir(Path(root))
    start = time.perf_counter()
    mods = _modalities(job.method, data)
    splits = {seed: training_split(job.method, data, PseudoLabelCache(run.pseudo_labels(seed)).load(run.teacher(seed)),
                                   cfg["pseudo_labels"]) for seed in seeds}

    def build(seed: int) -> torch.nn.Module:
        model = _new_model(cfg, task, job.method.role, mods, job.reg, seed)
        if student_init(cfg) == "teacher":  # the teacher's weights wherever the student has the same layer (its RGB branch)
            warm_start(model, run.teacher(seed))
        return model

    optim = optim_settings(cfg, "student")
    if cfg["student"]["same_steps"]:  # equal compute: as many steps as `epochs` passes over D_u
        optim = dataclasses.replace(optim, epochs=optim.epochs * len(data.unlabeled) / len(splits[seeds[0]]))
    speed = Throughput()
    state = run.student_state(seeds[0], job.slug)
    teachers = [file_sha256(run.teacher(seed)) for seed in seeds]  # a state of other teachers' labels is not resumed
    models = _train(cfg, task, data, seeds, build, splits.__getitem__, optim, job.reg, state, speed,
                    tag=",".join(teachers))
    results = []
    for seed, model, teacher_sha in zip(seeds, models, teachers):
        if not distributed.world().main:  # under torchrun rank 0 alone evaluates and writes
            continue
        save_checkpoint(run.student(seed, job.slug), model, _meta(cfg, data, job.method, job.method.role, mods, job.reg, seed))
        result = {"seed": seed, "cells": [list(c) for c in job.cells], **evaluate(task, model, data, mods, cfg["device"]),
                  "teacher_sha256": teacher_sha, "seconds": (time.perf_counter() - start) / len(seeds),
                  "throughput": speed.as_dict()}
        if hasattr(model, "edge_weights"):  # a distilling network (DMD): its learned edges on the test split
            teacher, _ = load_model(cfg, task, run.teacher(seed))
            scores = predict(teacher, data.test.select((data.alpha,)), batch_size=256, device=cfg["device"])
            result["edges"] = model.to("cpu").edge_weights(data.test.select(mods).inputs, scores)
        write_json(run.student_result(seed, job.slug), result)
        results.append(result)
    _finished(state)
    return results


def _init_worker(threads: int) -> None:
    huge_pages_off()
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- the driver, in the main process

class Stages:
    """Runs units of work inline (workers=1) or in a pool of processes, one progress bar a stage.

    Under torchrun units run inline, one at a time on every rank (data-parallel inside each unit):
    `workers` other than 1 is set to 1 with a notice, and the cores of a machine are shared by its
    ranks (`cores // ranks on the machine` threads each)."""

    def __init__(self, workers: int, progress: bool):
        me = distributed.world()
        self.cores = distributed.cores_per_process()
        if me.size > 1 and workers != 1:
            if me.main:
                print(f"mke-train: notice: workers={workers} is ignored under torchrun: the {me.size} processes "
                      f"train one unit at a time together (docs/scale.md)", file=sys.stderr, flush=True)
            workers = 1
        self.workers = max(1, workers if workers > 0 else self.cores)
        self.progress = progress
        self.timing: dict[str, float] = {}
        self.pool = None

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:  # started on first need: a resumed run with nothing left starts none
            self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                            initargs=(max(1, self.cores // self.workers),))
        return self.pool

    def run(self, name: str, fn: Callable, units: Iterable[tuple]) -> list[dict]:
        units = list(units)
        start = time.perf_counter()
        bar = tqdm(total=len(units), desc=f"{name:>13}", unit="run", disable=not self.progress, leave=True)
        results = []
        if self.workers == 1 or len(units) <= 1:
            # the same threads per unit as in the pool: float results depend on the thread count, so a
            # 1-seed run must train its seed exactly as a 10-seed run does
            threads = torch.get_num_threads()
            torch.set_num_threads(max(1, self.cores // self.workers))
            try:
                for args in units:
                    results.append(fn(*args))
                    bar.update()
            finally:
                torch.set_num_threads(threads)
        else:
            futures = [self._pool().submit(fn, *args) for args in units]
            try:
                for fut in as_completed(futures):
                    results.append(fut.result())
                    bar.update()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
        bar.close()
        self.timing[name] = self.timing.get(name, 0.0) + time.perf_counter() - start
        return results

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


def seed_groups(task, cfg: dict, role: str, seeds: list[int]) -> list[tuple[int, ...]]:
    """The seeds one unit of work trains: all together where the task stacks them (Task.stack_seeds),
    `role`'s optimizer takes full batches and the run is not data-parallel (torchrun), else one each."""
    if not seeds:
        return []
    if task.stack_seeds and optim_settings(cfg, role).batch_size <= 0 and distributed.world().size == 1:
        return [tuple(seeds)]
    return [(s,) for s in seeds]


def _comparable(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in SPEED_KEYS}


def code_fingerprint() -> str:
    """sha256 (first 16 hex digits) of the source that decides what a run computes: mke.train, the
    shared preprocessing (mke.runtime.preprocess, the modalities and what they use) and the room
    renderer of the built-in data (mke.runtime.sim). Not the runtime's live side, export or docs."""
    import mke.runtime.audio_features
    import mke.runtime.camera
    import mke.runtime.depth_units
    import mke.runtime.modalities
    import mke.runtime.preprocess
    import mke.runtime.sim
    import mke.train

    files = [Path(m.__file__) for m in (mke.runtime.preprocess, mke.runtime.audio_features, mke.runtime.camera,
                                        mke.runtime.depth_units)]
    for package in (mke.train, mke.runtime.sim, mke.runtime.modalities):
        root = Path(package.__file__).parent
        files += sorted(root.rglob("*.py"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def check_run_dir(run: RunDir, cfg: dict, fresh: bool) -> None:
    """An existing run folder must have been made with the same config (or be started afresh); one
    started by other code is reused with a warning. Its config is read completed from today's
    configs/defaults.yaml, so a run written before a key had its default there still resumes."""
    if fresh or not run.config.is_file():
        return
    old = run_config(run)
    if _comparable(old) != _comparable(cfg):
        differ = sorted(k for k in set(old) | set(cfg) if k not in SPEED_KEYS and old.get(k) != cfg.get(k))
        raise MkeError(f"{run.root} holds a run made with another config (differs in: {', '.join(differ)}); "
                       f"pass --fresh to start it over or --name for a new run")
    made_by = (read_json(run.code) or {}).get("fingerprint")
    if made_by != code_fingerprint() and distributed.world().main:
        which = f"other code (fingerprint {made_by})" if made_by else "code older than code fingerprints"
        print(f"mke-train: warning: {run.root} was started by {which}; what it finished is reused as it is. "
              f"Pass --fresh to redo it all with this code.", file=sys.stderr, flush=True)


def start_run_dir(run: RunDir, cfg: dict, fresh: bool) -> None:
    if fresh and run.root.exists():
        shutil.rmtree(run.root)
    new = not run.config.is_file()
    run.root.mkdir(parents=True, exist_ok=True)
    write_text(run.config, dump_config(cfg))
    if new:  # a resumed run keeps the fingerprint of the code that started it: the warning stays until --fresh
        write_json(run.code, {"fingerprint": code_fingerprint()})


def run_mke(cfg: dict, root: str | Path, *, fresh: bool = False, progress: bool = True) -> dict:
    """All stages for every seed; returns the metrics dictionary also written to metrics.json.

    Under torchrun every rank calls this alike (mke-train does) and gets the same metrics."""
    from mke.train.report import write_report

    me = distributed.world()
    run = RunDir(Path(root))
    check_run_dir(run, cfg, fresh)
    task = get_task(cfg["task"])
    cfg_json = json.dumps(cfg, sort_keys=True)
    seeds = list(range(int(cfg["seeds"])))
    if not seeds:
        raise MkeError("seeds must be at least 1")
    jobs = plan_students(cfg["methods"], cfg["regularization"])
    for job in jobs:
        if job.method.network not in task.networks:
            raise MkeError(f"'{job.method.name}' needs the {job.method.network} network, which task {task.name} does "
                           f"not build (it has: {', '.join(task.networks)}); remove it from `methods`")
    student_init(cfg), views(cfg["pseudo_labels"]["tta"])  # bad settings fail now, not after the teachers
    task.label_kind.check(cfg["pseudo_labels"])
    resolve_device(cfg["device"])
    optim_settings(cfg, "teacher"), optim_settings(cfg, "student")
    started = time.perf_counter()
    progress = progress and me.main
    task.prepare(cfg, progress)  # data problems surface here, before the run folder exists
    distributed.barrier()  # every rank has checked the old run folder before rank 0 (re)writes it
    if me.main:
        start_run_dir(run, cfg, fresh)
    distributed.barrier()
    stages = Stages(int(cfg["workers"]), progress)
    try:
        # what is left to do, as rank 0 sees it: all ranks must run the same units
        todo = distributed.broadcast_object(
            [s for s in seeds if not (run.teacher(s).is_file() and read_json(run.teacher_result(s)))])
        stages.run("teacher", _teacher_unit,
                   [(cfg_json, str(run.root), group) for group in seed_groups(task, cfg, "teacher", todo)])
        stages.run("pseudo labels", _pseudo_unit, [(cfg_json, str(run.root), s) for s in seeds])
        shas = {s: file_sha256(run.teacher(s)) for s in seeds}

        def done(seed, job):
            result = read_json(run.student_result(seed, job.slug))
            return bool(result) and result.get("teacher_sha256") == shas[seed] and run.student(seed, job.slug).is_file()

        left = distributed.broadcast_object({j.slug: [s for s in seeds if not done(s, j)] for j in jobs})
        stages.run("students", _student_unit,
                   [(cfg_json, str(run.root), group, j) for j in jobs
                    for group in seed_groups(task, cfg, "student", left[j.slug])])
    finally:
        stages.close()
    if not me.main:  # rank 0 writes the metrics and the report; the others get its metrics
        return distributed.broadcast_object(None)
    report_start = time.perf_counter()
    _, _, data = run_context(cfg_json)
    metrics = collect_metrics(cfg, task, run, seeds, jobs, data.class_names)
    metrics["timing_s"] = {k: round(v, 2) for k, v in stages.timing.items()}
    metrics["timing_s"]["total"] = round(time.perf_counter() - started, 2)  # so far: the report states this one
    figures = write_report(cfg, task, run, data, metrics)
    metrics["timing_s"]["report"] = round(time.perf_counter() - report_start, 2)
    metrics["timing_s"]["total"] = round(time.perf_counter() - started, 2)
    metrics["figures"] = [str(p.relative_to(run.root)) for p in figures]
    replay = task.replay(cfg)
    if replay is not None:
        metrics["replay"] = str(replay)
    write_json(run.metrics, metrics)
    return distributed.broadcast_object(metrics)


def _nanmean(values: list[float]) -> float | None:
    finite = [v for v in values if v == v]
    return sum(finite) / len(finite) if finite else None


def collect_metrics(cfg: dict, task, run: RunDir, seeds: list[int], jobs: list[StudentJob],
                    class_names: list[str]) -> dict:
    """Mean, std and per-seed values of every (method, regularization, strength) cell."""
    import statistics

    cells: dict[tuple, list[float]] = {}
    per_class: dict[tuple, list[list[float]]] = {}
    edges: dict[tuple, list[dict]] = {}
    files = [run.teacher_result(s) for s in seeds] + [run.student_result(s, j.slug) for s in seeds for j in jobs]
    for path in files:
        result = read_json(path)
        if result is None:
            raise MkeError(f"result {path} is missing or unreadable; rerun the same command to finish the run")
        for cell in result["cells"]:
            cells.setdefault(tuple(cell), []).append(result["value"])
            if "per_class" in result:
                per_class.setdefault(tuple(cell), []).append(result["per_class"])
            if "edges" in result:
                edges.setdefault(tuple(cell), []).append(result["edges"])
    results = []
    for (method, reg, strength), values in cells.items():
        entry = {"method": method, "regularization": reg, "strength": strength,
                 "mean": statistics.fmean(values),
                 "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                 "per_seed": values}
        if (method, reg, strength) in per_class:
            rows = per_class[(method, reg, strength)]
            entry["per_class_iou"] = {name: _nanmean([r[i] for r in rows]) for i, name in enumerate(class_names)}
        if (method, reg, strength) in edges:  # a distilling network's learned edges: mean and std over seeds
            runs = edges[(method, reg, strength)]
            entry["edges"] = {graph: {edge: {"mean": statistics.fmean(r[graph][edge] for r in runs),
                                             "std": statistics.stdev([r[graph][edge] for r in runs]) if len(runs) > 1
                                             else 0.0} for edge in runs[0][graph]} for graph in runs[0]}
        results.append(entry)
    pseudo = [read_json(run.pseudo_result(s)) or {} for s in seeds]
    pl_acc = [p["score_on_unlabeled"] for p in pseudo if "score_on_unlabeled" in p]
    tta_test = [p["tta_teacher_test"] for p in pseudo if "tta_teacher_test" in p]
    data_summary = task.data_summary(cfg)
    metrics = {
        "task": cfg["task"],
        "metric": task.metric,
        "seeds": seeds,
        "headline": dict(cfg["report"]["headline"]),
        "results": results,
        "pseudo_labels": {"kind": cfg["pseudo_labels"]["kind"],
                          "score_on_unlabeled": statistics.fmean(pl_acc) if pl_acc else None,
                          "tta": dict(cfg["pseudo_labels"]["tta"]),
                          "tta_teacher_test": statistics.fmean(tta_test) if tta_test else None,
                          "bytes_per_sample": pseudo[0].get("bytes_per_sample")},
        "paper": dict(task.paper),
        "versions": {"torch": torch.__version__},
    }
    if data_summary:  # what the task says about its data: split protocol, skipped files (Task.data_summary)
        metrics["data"] = data_summary
    throughput = stage_throughput(run, seeds, jobs)
    if throughput:
        metrics["throughput"] = throughput
    return metrics


def stage_throughput(run: RunDir, seeds: list[int], jobs: list[StudentJob]) -> dict:
    """{stage: {"samples_per_s", "data_wait_share"}} over the trainings (and pseudo-label passes) of
    this run whose result JSON records a `throughput` (mke.train.fit.Throughput.as_dict); a stage
    finished by older code that recorded none is left out."""
    files = {"teacher": [run.teacher_result(s) for s in seeds],
             "pseudo labels": [run.pseudo_result(s) for s in seeds],
             "students": [run.student_result(s, j.slug) for s in seeds for j in jobs]}
    out = {}
    for stage, paths in files.items():
        records = {}
        for path in paths:
            result = read_json(path) or {}
            record = result.get("throughput")
            if "pass_s" in result and "labelled_samples" in result:  # a pseudo-label pass: no batches waited for
                record = {"samples": result["labelled_samples"], "seconds": result["pass_s"]}
            if record:  # seeds trained stacked share one record: count it once
                records[json.dumps(record, sort_keys=True)] = record
        summary = Throughput.summary(list(records.values()))
        if summary:
            out[stage] = summary
    return out
