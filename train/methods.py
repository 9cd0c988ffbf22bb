"""The paper's methods and the regularizing transformations T, as data.

Every method of the paper's tables is one row here: which modalities it sees, which samples it
trains on and which targets it fits. The pipeline plans its trainings from these rows and the
config's regularization settings, training once what several table cells share (for example
"MM student" with no regularization is "MM student (no reg)").
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from mke.runtime.errors import MkeError


@dataclass(frozen=True)
class Method:
    name: str          # as the paper writes it
    modalities: str    # "alpha" or "both"
    train_on: str      # "labeled", "unlabeled" or "labeled+unlabeled"
    targets: str       # "true", "pseudo" or "true+pseudo"
    regularized: bool  # trained under the transformation T
    network: str = "fusion"  # the task's network: "fusion" (its own: branches concatenated), "dmd" (DMD student)

    @property
    def identity(self) -> tuple:
        return (self.modalities, self.train_on, self.targets, self.network)

    @property
    def role(self) -> str:
        """What `Task.build_model` is asked for: "teacher", "student", or the student network's name."""
        return "teacher" if self.name == "UM teacher" else "student" if self.network == "fusion" else self.network


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("UM teacher", "alpha", "labeled", "true", regularized=False),
    Method("UM student", "alpha", "unlabeled", "pseudo", regularized=True),
    Method("NOISY student", "alpha", "labeled+unlabeled", "true+pseudo", regularized=True),
    Method("MM student (no reg)", "both", "unlabeled", "pseudo", regularized=False),
    Method("MM student", "both", "unlabeled", "pseudo", regularized=True),
    Method("MM student (sup)", "both", "unlabeled", "true", regularized=True),
    # Not the paper's: decoupled multimodal distillation (Li et al., CVPR 2023) as the MM student's network
    Method("DMD student", "both", "unlabeled", "pseudo", regularized=True, network="dmd"),
]}
TEACHER = METHODS["UM teacher"]
REG_KINDS = ("input_noise", "hidden_noise", "dropout", "augment")


def get_method(name: str) -> Method:
    if name not in METHODS:
        hint = difflib.get_close_matches(name, METHODS, n=1)
        raise MkeError(f"unknown method '{name}'" + (f" (did you mean '{hint[0]}'?)" if hint else "")
                       + f"; known: {', '.join(METHODS)}")
    return METHODS[name]


@dataclass(frozen=True)
class Regularization:
    """One setting of T: its kind and strength label as reported, and the parameters it sets.

    `input_noise` and `hidden_noise` are strengths s in x + s·mean|x|·N(0, 1); `dropout` is a rate;
    `augment` is the task's augmentation parameters (flip, scale range …) as sorted key/value pairs.
    """

    kind: str = "none"
    strength: str = "none"
    input_noise: float = 0.0
    hidden_noise: float = 0.0
    dropout: float = 0.0
    augment: tuple = field(default_factory=tuple)

    @property
    def params(self) -> tuple:
        return (self.input_noise, self.hidden_noise, self.dropout, self.augment)

    @property
    def augment_params(self) -> dict:
        return dict(self.augment)


NO_REG = Regularization()


def augmentation(strength: str, params: dict) -> Regularization:
    """T as the task's joint augmentation with these parameters (lists become tuples: hashable)."""
    return Regularization("augment", strength, augment=tuple(sorted(
        (k, tuple(v) if isinstance(v, list) else v) for k, v in params.items())))


def regularization_settings(reg_cfg: dict) -> list[Regularization]:
    """The settings of T the config asks for, from `{kind: {strength label: value}}`."""
    out = []
    for kind, strengths in reg_cfg["settings"].items():
        if kind not in REG_KINDS:
            hint = difflib.get_close_matches(kind, REG_KINDS, n=1)
            raise MkeError(f"unknown regularization 'regularization.settings.{kind}'"
                           + (f" (did you mean '{hint[0]}'?)" if hint else "") + f"; known: {', '.join(REG_KINDS)}")
        if not isinstance(strengths, dict) or not strengths:
            raise MkeError(f"regularization.settings.{kind} must map strength labels to values, e.g. {{weak: 0.5}}")
        for label, value in strengths.items():
            if kind == "augment":
                if not isinstance(value, dict):
                    raise MkeError(f"regularization.settings.augment.{label} must be a mapping of augmentation parameters")
                out.append(augmentation(str(label), value))
            else:
                if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                    raise MkeError(f"regularization.settings.{kind}.{label} must be a number >= 0, got {value!r}")
                if kind == "dropout" and value >= 1:
                    raise MkeError(f"regularization.settings.dropout.{label} is a rate and must be below 1, got {value}")
                out.append(Regularization(kind, str(label), **{kind: float(value)}))
    return out


@dataclass(frozen=True)
class StudentJob:
    """One student training, and every (method, regularization, strength) cell it fills."""

    slug: str
    method: Method
    reg: Regularization
    cells: tuple[tuple[str, str, str], ...]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def plan_students(method_names: list[str], reg_cfg: dict) -> list[StudentJob]:
    """Student trainings for the config's methods × settings, each distinct training once."""
    settings = regularization_settings(reg_cfg)
    jobs: dict[tuple, StudentJob] = {}
    for name in method_names:
        method = get_method(name)
        if method is TEACHER:
            continue
        if method.regularized:
            if not settings:
                raise MkeError(f"method '{name}' is regularized but regularization.settings is empty")
            plan = [Regularization(s.kind, "none") for s in settings if reg_cfg["with_none"]] + settings
        else:
            plan = [NO_REG]
        for reg in plan:
            key = (method.identity, reg.params)
            cell = (method.name, reg.kind, reg.strength)
            if key in jobs:
                job = jobs[key]
                if cell not in job.cells:
                    jobs[key] = StudentJob(job.slug, job.method, job.reg, job.cells + (cell,))
            else:
                slug = f"{_slug(method.name)}__{reg.kind}-{reg.strength}"
                jobs[key] = StudentJob(slug, method, reg, (cell,))
    return list(jobs.values())
