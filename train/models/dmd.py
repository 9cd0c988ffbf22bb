"""Decoupled multimodal distillation (DMD; Li, Wang, Cui, CVPR 2023) as a multimodal student network.

Each modality is a sequence — a clip's images (their per-image features) or its spectrogram's frames —
that a 1D temporal convolution projects to a common width d. One *shared* encoder (the same weights
for every modality) and one *private* encoder per modality split it into a homogeneous part (what the
modalities have in common) and a heterogeneous part (what only this one has); a decoder per modality
rebuilds the projected sequence from [private, shared]. Two graph-distillation units then let the
modalities teach each other, with learned, per-sample edge weights: HomoGD over the shared features,
HeteroGD over the private features after cross-modal attention (MulT-style: each modality's private
sequence attends to the other's). The classifier reads both parts, pooled over time.

Only `forward` (inputs → class scores) is the model that is exported and run live: fixed sequence
lengths, a precomputed positional table, attention masks with a large finite negative (FP16-safe), no
training-only module on its path. `forward_train` returns everything the DMD losses need
(`DMDParts`); the losses are functions here, each pinned by a test. Nothing is created on a device
inside the modules: the model runs wherever it is moved.

`build_dmd` makes one from a task's inputs (an image clip → `ImageSequence`, a spectrogram →
`SpectrogramSequence`) and `model.dmd` of its config; the method "DMD student" asks for it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mke.runtime.errors import MkeError

LOSS_WEIGHTS = {"heads": 1.0, "homo_gd": 0.1, "hetero_gd": 0.1, "decouple": 0.1, "margin": 0.1}   # beside the fused scores' task loss
DMD_SETTINGS = ("width", "kernels", "pool", "heads", "layers", "gd_hidden", "gd_temperature", "gd_prior_reg", "margin", "loss")
MASK_NEGATIVE = -1e4   # "no attention" for masked keys: finite, so FP16 softmax stays finite (−inf gives NaN rows)


def positional_table(length: int, width: int) -> torch.Tensor:
    """The sinusoidal positions of Vaswani et al. (L, d), computed once (a buffer, exported as a constant)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, :width // 2]
    return table


class ImageSequence(nn.Module):
    """A clip (N, T, C, H, W) → the per-image features of a 2D branch (`branches.FrameBranch`), (N, T, F)."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.branch = branch
        self.out_features = branch.image_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.branch.per_image(x)


class SpectrogramSequence(nn.Module):
    """A spectrogram (N, C, bands, frames) through a 2D branch's convolutions (`branches.FrameBranch`), the
    maximum over the bands kept per time step: (N, frames', F) — the sound as a sequence of learnt
    features (its raw frames through a 1D convolution alone learnt far less, docs/dmd.md)."""

    def __init__(self, branch: nn.Module):
        super().__init__()
        self.body = branch.body

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).amax(dim=2).transpose(1, 2)


class TemporalProjection(nn.Module):
    """(N, L, F) → (N, L, d): 1D convolutions over time (`kernels`, e.g. 5, 3, 3), GELU between them."""

    def __init__(self, in_features: int, width: int, kernels: tuple[int, ...]):
        super().__init__()
        layers, c = [], in_features
        for i, k in enumerate(kernels):
            if k % 2 == 0:
                raise MkeError(f"DMD temporal kernels must be odd (the sequence keeps its length), got {kernels}")
            layers.append(nn.Conv1d(c, width, k, padding=k // 2))
            if i < len(kernels) - 1:
                layers.append(nn.GELU())
            c = width
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.transpose(1, 2)).transpose(1, 2)


class CrossModalBlock(nn.Module):
    """One MulT layer: the target sequence attends to the source sequence, then a feed-forward layer,
    each with a residual connection and pre-normalisation."""

    def __init__(self, width: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, target: torch.Tensor, source: torch.Tensor, source_mask: torch.Tensor | None) -> torch.Tensor:
        kv = self.norm_kv(source)
        h, _ = self.attention(self.norm_q(target), kv, kv, attn_mask=source_mask, need_weights=False)
        target = target + h
        return target + self.ff(self.norm_ff(target))


def attention_mask(valid: torch.Tensor | None, target_len: int, heads: int) -> torch.Tensor | None:
    """An additive float mask (N·heads, L_target, L_source) from the source's valid steps (N, L_source):
    0 where a key may be attended, MASK_NEGATIVE where it is padding; None when every step is valid."""
    if valid is None:
        return None
    bias = (~valid).to(torch.float32) * MASK_NEGATIVE                      # (N, S)
    return bias[:, None, :].expand(-1, target_len, -1).repeat_interleave(heads, dim=0)


def masked_mean(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """The mean over time (N, L, d) → (N, d) of the valid steps only."""
    if valid is None:
        return x.mean(dim=1)
    w = valid.to(x.dtype)[..., None]
    return (x * w).sum(dim=1) / w.sum(dim=1).clamp(min=1.0)


def masked_max(x: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """The maximum over time (N, L, d) → (N, d) of the valid steps only: what a short event in a long
    sequence (a word in a 2 s clip) leaves, where the mean dilutes it."""
    if valid is None:
        return x.amax(dim=1)
    return x.masked_fill(~valid[..., None], MASK_NEGATIVE).amax(dim=1)


POOLS = {"mean": masked_mean, "max": masked_max}


class GraphDistillation(nn.Module):
    """A graph-distillation unit. Nodes are modalities, each with its logits (N, K) and features (N, d);
    the edge j → i (j teaches i) gets a score from a small network over the two nodes' [logits, features],
    divided by `temperature` and softmax-normalised over i's incoming edges, per sample (the learned edge).
    The distillation weight of an edge is the mean of its learned edge and the uniform prior (1 / i's
    incoming edges), and a regulariser pulls each edge's batch mean towards that prior, `prior_reg` ×
    squared gap: an edge network trained by the same loss it weighs otherwise collapses onto the closest
    node (measured on av: every weight on the other modality, none on the teacher; docs/dmd.md). The
    loss sums, over edges, weight × (half the L1 distance between their softmax probabilities + half the
    distance between their unit-length features: each in [0, 1]), the teaching side detached; nodes named
    in `senders` only teach (MKE's unimodal teacher)."""

    def __init__(self, num_classes: int, width: int, hidden: int = 32, temperature: float = 8.0,
                 prior_reg: float = 1.0):
        super().__init__()
        if temperature <= 0:
            raise MkeError(f"a graph-distillation temperature must be > 0, got {temperature}")
        self.temperature, self.prior_reg = float(temperature), float(prior_reg)
        self.edge = nn.Sequential(nn.Linear(2 * (num_classes + width), hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, logits: dict[str, torch.Tensor], features: dict[str, torch.Tensor | None],
                senders: tuple[str, ...] = ()) -> tuple[torch.Tensor, dict[tuple[str, str], torch.Tensor]]:
        """(loss, {(teacher j, receiver i): per-sample learned edge}); a node whose features are None (the
        unimodal teacher: scores only) enters the edge network with zero features and is distilled on its
        scores."""
        names = list(logits)
        width = self.edge[0].in_features // 2 - logits[names[0]].shape[1]
        node = {n: torch.cat([logits[n], features[n] if features.get(n) is not None
                              else logits[n].new_zeros(len(logits[n]), width)], dim=1) for n in names}
        receivers = [n for n in names if n not in senders]
        # compared as probabilities and unit-length features: raw logits and features can all shrink to one
        # point, where every gap is 0 and nothing is learnt (measured: chance accuracy on av)
        prob = {n: torch.softmax(logits[n].float(), dim=1) for n in names}
        unit = {n: None if features.get(n) is None else F.normalize(features[n].float(), dim=1) for n in names}
        loss = logits[names[0]].new_zeros(())
        weights: dict[tuple[str, str], torch.Tensor] = {}
        for i in receivers:
            sources = [j for j in names if j != i]
            if not sources:
                continue
            scores = torch.cat([self.edge(torch.cat([node[i], node[j].detach()], dim=1)) for j in sources], dim=1)
            w = torch.softmax(scores.float() / self.temperature, dim=1)          # (N, sources)
            prior = 1.0 / len(sources)
            loss = loss + self.prior_reg * (w.mean(dim=0) - prior).pow(2).sum()
            for k, j in enumerate(sources):
                gap = 0.5 * (prob[i] - prob[j].detach()).abs().sum(dim=1)         # per sample, in [0, 1]
                if unit.get(i) is not None and unit.get(j) is not None:
                    gap = gap + 0.5 * (unit[i] - unit[j].detach()).norm(dim=1)  # in [0, 1]
                loss = loss + (0.5 * (w[:, k] + prior) * gap).mean()
                weights[(j, i)] = w[:, k].detach()
        return loss, weights


@dataclass
class DMDParts:
    """What one training forward pass gives the DMD losses (per modality name)."""

    logits: torch.Tensor                        # (N, K) the fused classifier's
    projected: dict[str, torch.Tensor]          # (N, L, d) each modality's projected sequence
    shared: dict[str, torch.Tensor]             # (N, L, d)
    private: dict[str, torch.Tensor]            # (N, L, d)
    rebuilt: dict[str, torch.Tensor]            # (N, L, d) the decoder's reconstruction of `projected`
    private_of_rebuilt: dict[str, torch.Tensor]  # (N, L, d) the private encoder on the reconstruction (cycle)
    homo_logits: dict[str, torch.Tensor]        # (N, K) per modality, from its pooled shared features
    homo_features: dict[str, torch.Tensor]      # (N, d)
    hetero_logits: dict[str, torch.Tensor]      # (N, K) per modality, after cross-modal attention
    hetero_features: dict[str, torch.Tensor]    # (N, d)
    valid: dict[str, torch.Tensor | None]       # (N, L) bool, or None: every step valid


class DMDNet(nn.Module):
    """The DMD student over the inputs `sequences` = {name: (sequence encoder, its per-step features)}:
    an encoder maps the input (N, …) to a sequence (N, L, F) (e.g. a per-image CNN over a clip, or a
    spectrogram's frames) of fixed length `lengths[name]`."""

    def __init__(self, sequences: dict[str, tuple[nn.Module, int]], lengths: dict[str, int], num_classes: int,
                 width: int = 32, kernels: dict[str, tuple[int, ...]] | None = None, heads: int = 4,
                 layers: int = 2, dropout: float = 0.0, gd_hidden: int = 32, gd_temperature: float = 8.0,
                 gd_prior_reg: float = 1.0, margin: float = 0.1, loss_weights: dict[str, float] | None = None,
                 pool: str = "max"):
        super().__init__()
        if pool not in POOLS:
            raise MkeError(f"model.dmd.pool must be one of {', '.join(POOLS)}, got {pool!r}")
        self.pool = POOLS[pool]
        self.margin = float(margin)
        self.loss_weights = {**LOSS_WEIGHTS, **(loss_weights or {})}
        if len(sequences) < 2:
            raise MkeError(f"a DMD student needs two or more inputs to distil between, got {list(sequences)}")
        if width % heads:
            raise MkeError(f"DMD width {width} must be a multiple of its attention heads {heads}")
        self.input_names = tuple(sequences)
        self.heads = heads
        self.encoders = nn.ModuleDict({n: enc for n, (enc, _) in sequences.items()})
        self.project = nn.ModuleDict({n: TemporalProjection(f, width, tuple((kernels or {}).get(n, (5, 3, 3))))
                                      for n, (_, f) in sequences.items()})
        self.shared = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
        self.private = nn.ModuleDict({n: nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
                                      for n in sequences})
        self.decoders = nn.ModuleDict({n: nn.Linear(2 * width, width) for n in sequences})
        for n in sequences:
            self.register_buffer(f"positions_{n}", positional_table(lengths[n], width), persistent=False)
        self.cross = nn.ModuleDict({f"{s}_to_{t}": nn.ModuleList(CrossModalBlock(width, heads, dropout)
                                                                  for _ in range(layers))
                                    for t in sequences for s in sequences if s != t})
        self.homo_head = nn.Linear(width, num_classes)
        self.hetero_head = nn.Linear(width, num_classes)
        self.classifier = nn.Sequential(nn.Linear(2 * width * len(sequences), 2 * width), nn.ReLU(),
                                        nn.Dropout(dropout), nn.Linear(2 * width, num_classes))
        self.homo_gd = GraphDistillation(num_classes, width, gd_hidden, gd_temperature, gd_prior_reg)
        self.hetero_gd = GraphDistillation(num_classes, width, gd_hidden, gd_temperature, gd_prior_reg)

    def _parts(self, inputs: dict[str, torch.Tensor], valid: dict[str, torch.Tensor | None], train: bool):
        projected, shared, private = {}, {}, {}
        for n in self.input_names:
            seq = self.encoders[n](inputs[n])
            positions = getattr(self, f"positions_{n}")
            if seq.shape[1] != positions.shape[0]:
                raise MkeError(f"DMD input {n!r} gives {seq.shape[1]} steps; the model was built for "
                               f"{positions.shape[0]} (pad or crop to that length, with a mask)")
            projected[n] = self.project[n](seq) + positions
            shared[n], private[n] = self.shared(projected[n]), self.private[n](projected[n])
        hetero = {}
        for t in self.input_names:
            h = private[t]
            for s in self.input_names:
                if s == t:
                    continue
                mask = attention_mask(valid.get(s), h.shape[1], self.heads)
                for block in self.cross[f"{s}_to_{t}"]:
                    h = block(h, private[s], mask)
            hetero[t] = h
        pooled_shared = {n: self.pool(shared[n], valid.get(n)) for n in self.input_names}
        pooled_hetero = {n: self.pool(hetero[n], valid.get(n)) for n in self.input_names}
        fused = torch.cat([pooled_shared[n] for n in self.input_names] + [pooled_hetero[n] for n in self.input_names],
                          dim=1)
        logits = self.classifier(fused)
        if not train:
            return logits
        rebuilt = {n: self.decoders[n](torch.cat([private[n], shared[n]], dim=2)) for n in self.input_names}
        return DMDParts(logits=logits, projected=projected, shared=shared, private=private, rebuilt=rebuilt,
                        private_of_rebuilt={n: self.private[n](rebuilt[n]) for n in self.input_names},
                        homo_logits={n: self.homo_head(pooled_shared[n]) for n in self.input_names},
                        homo_features=pooled_shared,
                        hetero_logits={n: self.hetero_head(pooled_hetero[n]) for n in self.input_names},
                        hetero_features=pooled_hetero, valid=valid)

    def forward(self, **inputs: torch.Tensor) -> torch.Tensor:
        """Class scores (N, K): the exported path."""
        return self._parts(inputs, {}, train=False)

    def forward_train(self, valid: dict[str, torch.Tensor] | None = None, **inputs: torch.Tensor) -> DMDParts:
        """Everything the losses need; `valid` {name: (N, L) bool} masks padded steps."""
        return self._parts(inputs, dict(valid or {}), train=True)

    def distillation(self, parts: DMDParts, teacher_scores: torch.Tensor) -> dict:
        """Both graph-distillation units over the modalities and the unimodal teacher (a node that only
        sends, its scores those of its pseudo labels): {"homo": (loss, weights), "hetero": (loss, weights)}."""
        homo = self.homo_gd({**parts.homo_logits, "teacher": teacher_scores}, {**parts.homo_features, "teacher": None},
                            senders=("teacher",))
        hetero = self.hetero_gd({**parts.hetero_logits, "teacher": teacher_scores},
                                {**parts.hetero_features, "teacher": None}, senders=("teacher",))
        return {"homo": homo, "hetero": hetero}

    def training_loss(self, inputs: dict[str, torch.Tensor], targets: torch.Tensor, weights, kind) -> torch.Tensor:
        """The DMD objective under MKE: the task loss (`kind.loss`) of the fused scores and of each
        modality's homogeneous and heterogeneous heads against the targets (the teacher's pseudo labels),
        both graph-distillation losses (the teacher a sending node), the reconstruction and cycle loss, the
        orthogonality of the two parts and the margin loss on the shared features (classes: the targets'
        most likely), weighed by `loss_weights`."""
        parts = self.forward_train(**inputs)
        lw = self.loss_weights
        loss = kind.loss(parts.logits.float(), targets, weights)
        heads = [kind.loss(parts.homo_logits[n].float(), targets, weights) +
                 kind.loss(parts.hetero_logits[n].float(), targets, weights) for n in self.input_names]
        teacher = kind.scores_of(targets, parts.logits.shape[1])
        gd = self.distillation(parts, teacher)
        classes = targets.argmax(dim=1) if targets.is_floating_point() else targets
        return (loss + lw["heads"] * torch.stack(heads).mean()
                + lw["homo_gd"] * gd["homo"][0] + lw["hetero_gd"] * gd["hetero"][0]
                + lw["decouple"] * (reconstruction_loss(parts) + orthogonality_loss(parts))
                + lw["margin"] * margin_loss(parts, classes, self.margin))

    @torch.no_grad()
    def edge_weights(self, inputs: dict[str, torch.Tensor], teacher_scores: torch.Tensor, batch: int = 256) -> dict:
        """The learned edges, averaged over the samples given: {"homo"|"hetero": {"a→b": mean weight}}
        (a teaches b; the teacher sends only)."""
        was = self.training
        self.eval()
        sums: dict[str, dict[str, float]] = {"homo": {}, "hetero": {}}
        n = len(teacher_scores)
        for start in range(0, n, batch):
            part = {k: v[start:start + batch] for k, v in inputs.items()}
            gd = self.distillation(self.forward_train(**part), teacher_scores[start:start + batch])
            for graph, (_, w) in gd.items():
                for (j, i), v in w.items():
                    key = f"{j}→{i}"
                    sums[graph][key] = sums[graph].get(key, 0.0) + float(v.sum())
        self.train(was)
        return {graph: {k: round(v / n, 4) for k, v in sorted(edges.items())} for graph, edges in sums.items()}


# ---------------------------------------------------------------- the decoupling losses

def reconstruction_loss(parts: DMDParts) -> torch.Tensor:
    """Mean over modalities of MSE(decoder([private, shared]), projected) + MSE(private(rebuilt), private)
    (the cycle: the private part survives its own reconstruction)."""
    terms = [F.mse_loss(parts.rebuilt[n], parts.projected[n].detach())
             + F.mse_loss(parts.private_of_rebuilt[n], parts.private[n].detach()) for n in parts.projected]
    return torch.stack(terms).mean()


def orthogonality_loss(parts: DMDParts) -> torch.Tensor:
    """Mean over modalities and steps of cos²(shared, private): the two parts carry different things."""
    terms = [F.cosine_similarity(parts.shared[n], parts.private[n], dim=2).pow(2).mean() for n in parts.shared]
    return torch.stack(terms).mean()


def margin_loss(parts: DMDParts, classes: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """Pull the pooled shared features of the same class together across modalities, push other classes
    `margin` further apart (cosine distance, over every pair of samples and modalities): max(0, d(same) −
    d(other) + margin), averaged over the anchors that have both. `classes`: (N,) ids (the pseudo label's
    argmax)."""
    feats = torch.cat([F.normalize(parts.homo_features[n], dim=1) for n in parts.homo_features])   # (M·N, d)
    labels = classes.repeat(len(parts.homo_features))
    distance = 1.0 - feats @ feats.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    positive = (distance * (same & ~eye)).sum(1) / (same & ~eye).sum(1).clamp(min=1)
    negative = (distance * ~same).sum(1) / (~same).sum(1).clamp(min=1)
    usable = (same & ~eye).any(1) & (~same).any(1)
    if not usable.any():
        return distance.new_zeros(())
    return F.relu(positive - negative + margin)[usable].mean()


def build_dmd(task, cfg: dict, modalities: tuple[str, ...], num_classes: int, dropout: float = 0.0) -> DMDNet:
    """The DMD student of an audio-visual task: an image clip (T, C, H, W) becomes the per-image features of
    its `model.branches` branch, a spectrogram (C, bands, frames) the per-step features of its branch's
    convolutions; `model.dmd` sets the rest
    (DMD_SETTINGS: width, heads, layers, kernels, the GD units' sizes, margin, loss weights)."""
    from mke.train.models.branches import build_branch

    if "dmd" not in cfg["model"]:
        raise MkeError(f"task {task.name}'s config has no model.dmd section (the DMD student's sizes; configs/av.yaml "
                       f"shows one)")
    d = dict(cfg["model"]["dmd"])
    sequences, lengths = {}, {}
    for name in modalities:
        shape = task.input_modality(name).input_shape(task.input_params(cfg, name))
        if len(shape) == 4:                         # (T, C, H, W): an image clip
            settings = {k: v for k, v in cfg["model"]["branches"][name].items() if k != "frames"}
            encoder = ImageSequence(build_branch(shape[1], settings, f"model.branches.{name}"))
            sequences[name], lengths[name] = (encoder, encoder.out_features), shape[0]
        elif len(shape) == 3:                       # (C, bands, frames): a spectrogram
            settings = {k: v for k, v in cfg["model"]["branches"][name].items() if k != "frames"}
            encoder = SpectrogramSequence(build_branch(shape[0], settings, f"model.branches.{name}"))
            with torch.no_grad():                   # its steps and features: what the convolutions leave
                length, features = encoder(torch.zeros(1, *shape)).shape[1:]
            sequences[name], lengths[name] = (encoder, features), length
        else:
            raise MkeError(f"a DMD student takes image clips and spectrograms; input {name!r} has the shape {shape}")
    unknown, missing = sorted(set(d) - set(DMD_SETTINGS)), sorted(set(DMD_SETTINGS) - set(d))
    if unknown or missing:
        raise MkeError(f"model.dmd {'has no setting ' + ', '.join(unknown) if unknown else 'lacks ' + ', '.join(missing)}; "
                       f"it takes {', '.join(DMD_SETTINGS)} (configs/av.yaml shows them all)")
    bad = sorted(set(d["loss"]) - set(LOSS_WEIGHTS))
    if bad:
        raise MkeError(f"model.dmd.loss has no weight {', '.join(bad)}; it weighs {', '.join(LOSS_WEIGHTS)}")
    return DMDNet(sequences, lengths, num_classes, width=int(d["width"]),
                  kernels={k: tuple(v) for k, v in d["kernels"].items()}, heads=int(d["heads"]),
                  layers=int(d["layers"]), dropout=dropout, gd_hidden=int(d["gd_hidden"]),
                  gd_temperature=float(d["gd_temperature"]), gd_prior_reg=float(d["gd_prior_reg"]),
                  margin=float(d["margin"]), loss_weights=d["loss"], pool=str(d["pool"]))
