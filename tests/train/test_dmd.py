"""The DMD student network (issue 15): shapes of the exported and the training paths, graph
distillation's edge weights, prior and detached teachers, the decoupling losses by hand, FP16-safe masks
and pooling, the exported path in ONNX Runtime against PyTorch, and the method in mke-train/mke-export."""
import numpy as np
import pytest
import torch

from mke.runtime.errors import MkeError
from mke.train.models.branches import build_branch
from mke.train.models.dmd import (MASK_NEGATIVE, DMDNet, DMDParts, GraphDistillation, ImageSequence, SpectrogramSequence,
                                  attention_mask, build_dmd, margin_loss, masked_max, masked_mean, orthogonality_loss, positional_table,
                                  reconstruction_loss)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
K = 5


def tiny_dmd(**over):
    frames = ImageSequence(build_branch(3, {"arch": "cnn", "widths": [4, 8], "pool": "max"}))
    sound = SpectrogramSequence(build_branch(1, {"arch": "cnn", "widths": [4, 6]}))   # (1, 8, 21) → (5, 6)
    args = dict(sequences={"rgb": (frames, frames.out_features), "audio": (sound, 6)},
                lengths={"rgb": 4, "audio": 5}, num_classes=K, width=16, heads=4, layers=1,
                kernels={"rgb": (3, 3, 3), "audio": (5, 3, 3)})
    return DMDNet(**{**args, **over})


def inputs(n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {"rgb": torch.randn(n, 4, 3, 16, 16, generator=g), "audio": torch.randn(n, 1, 8, 21, generator=g)}


def test_the_exported_path_gives_class_scores_and_training_gets_every_part():
    torch.manual_seed(0)
    model = tiny_dmd().eval()
    x = inputs()
    scores = model(**x)
    assert scores.shape == (3, K) and not torch.allclose(scores[0], scores[1])
    parts = model.forward_train(**x)
    assert isinstance(parts, DMDParts) and torch.allclose(parts.logits, scores, atol=1e-6)
    assert {n: tuple(t.shape) for n, t in parts.shared.items()} == {"rgb": (3, 4, 16), "audio": (3, 5, 16)}
    assert parts.rebuilt["audio"].shape == parts.projected["audio"].shape
    assert parts.homo_logits["rgb"].shape == parts.hetero_logits["audio"].shape == (3, K)
    with pytest.raises(MkeError, match="built for 5"):
        model(rgb=x["rgb"], audio=torch.randn(3, 1, 8, 30))
    with pytest.raises(MkeError, match="two or more inputs"):
        DMDNet({"rgb": (torch.nn.Identity(), 8)}, {"rgb": 4}, K)


def test_graph_distillation_weights_sum_to_one_per_receiver_and_the_teacher_only_sends():
    torch.manual_seed(0)
    gd = GraphDistillation(K, 6)
    logits = {n: torch.randn(4, K, requires_grad=True) for n in ("teacher", "rgb", "audio")}
    feats = {n: torch.randn(4, 6, requires_grad=True) for n in ("teacher", "rgb", "audio")}
    loss, w = gd(logits, feats, senders=("teacher",))
    assert set(w) == {("rgb", "audio"), ("teacher", "audio"), ("audio", "rgb"), ("teacher", "rgb")}
    for receiver in ("rgb", "audio"):
        total = sum(v for (j, i), v in w.items() if i == receiver)
        assert torch.allclose(total, torch.ones(4))
    loss.backward()
    assert logits["teacher"].grad is None and feats["teacher"].grad is None   # detached wherever it teaches
    assert logits["rgb"].grad is not None and logits["rgb"].grad.abs().sum() > 0


def test_graph_distillation_loss_by_hand_with_two_nodes():
    gd = GraphDistillation(2, 2)
    a = {"x": torch.tensor([[1.0, 2.0]]), "y": torch.tensor([[0.0, 0.0]])}
    f = {"x": torch.tensor([[3.0, 0.0]]), "y": torch.tensor([[0.0, 5.0]])}
    loss, w = gd(a, f)
    # one source per receiver: weight 1. Probabilities [e/(e+e²), e²/(e+e²)] = [0.2689, 0.7311] against
    # [0.5, 0.5]: half their L1 distance 0.2311; unit features [1, 0] and [0, 1]: half their distance √2/2
    assert w[("y", "x")].item() == pytest.approx(1.0)
    p = 1 / (1 + torch.e)
    assert loss.item() == pytest.approx(2 * ((0.5 - p) + 2 ** 0.5 / 2), abs=1e-5)
    # the unimodal teacher's node has scores only: its edges compare probabilities alone
    loss, _ = gd({**a, "t": torch.tensor([[0.0, 0.0]])}, {**f, "t": None}, senders=("t",))
    assert torch.isfinite(loss)


def test_the_edge_prior_mixes_into_the_weights_and_pulls_the_learned_edges_back():
    """Weight = ½ (learned edge + 1/sources); + prior_reg × Σ (batch-mean edge − 1/sources)²."""
    gd = GraphDistillation(2, 2, temperature=1.0, prior_reg=3.0)
    with torch.no_grad():                    # the edge network scores [node_i, node_j] by node_j's first logit
        gd.edge[0].weight.zero_(), gd.edge[0].bias.zero_(), gd.edge[2].weight.zero_(), gd.edge[2].bias.zero_()
        gd.edge[0].weight[0, 4] = 1.0        # j's logit 0 (i's [logits, features] come first: 4 values)
        gd.edge[2].weight[0, 0] = 1.0
    logits = {"x": torch.tensor([[0.0, 0.0]]), "t": torch.tensor([[2.0, 0.0]]), "u": torch.tensor([[0.0, 0.0]])}
    loss, w = gd(logits, {"x": None, "t": None, "u": None}, senders=("t", "u"))
    e = torch.softmax(torch.tensor([2.0, 0.0]), 0)                       # learned: t 0.881, u 0.119
    assert w[("t", "x")].item() == pytest.approx(e[0].item(), abs=1e-5)
    gap_t = 0.5 * (torch.softmax(logits["t"][0], 0) - 0.5).abs().sum()  # probabilities only: no features
    expected = 3.0 * ((e - 0.5) ** 2).sum() + 0.5 * (e[0] + 0.5) * gap_t + 0.5 * (e[1] + 0.5) * 0.0
    assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
    with pytest.raises(MkeError, match="temperature"):
        GraphDistillation(2, 2, temperature=0.0)


def test_max_pooling_over_time_skips_padded_steps():
    x = torch.tensor([[[1.0, -5.0], [3.0, -2.0], [100.0, 100.0]]])
    assert masked_max(x, torch.tensor([[True, True, False]])).tolist() == [[3.0, -2.0]]
    assert masked_max(x, None).tolist() == [[100.0, 100.0]]
    with pytest.raises(MkeError, match="pool"):
        tiny_dmd(pool="median")


def test_build_dmd_names_a_missing_or_unknown_setting():
    from mke.train.config import resolve_config
    from mke.train.tasks import get_task

    cfg = resolve_config("av", None, [])
    task = get_task("av")
    del cfg["model"]["dmd"]["gd_prior_reg"]
    with pytest.raises(MkeError, match="lacks gd_prior_reg"):
        build_dmd(task, cfg, ("rgb", "audio"), 8)
    cfg["model"]["dmd"]["gd_prior_reg"], cfg["model"]["dmd"]["depth"] = 1.0, 3
    with pytest.raises(MkeError, match="has no setting depth"):
        build_dmd(task, cfg, ("rgb", "audio"), 8)
    del cfg["model"]["dmd"]
    with pytest.raises(MkeError, match="no model.dmd section"):
        build_dmd(task, cfg, ("rgb", "audio"), 8)


def test_decoupling_losses_by_hand():
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    parts = DMDParts(logits=None, projected={"a": s}, shared={"a": s}, private={"a": s}, rebuilt={"a": s},
                     private_of_rebuilt={"a": s}, homo_logits={}, homo_features={}, hetero_logits={},
                     hetero_features={}, valid={})
    assert orthogonality_loss(parts).item() == pytest.approx(1.0)          # parallel: cos² = 1
    parts.private = {"a": torch.tensor([[[0.0, 3.0], [-1.0, 0.0]]])}
    assert orthogonality_loss(parts).item() == pytest.approx(0.0)          # orthogonal
    parts.private_of_rebuilt = {"a": parts.private["a"] + 1.0}
    assert reconstruction_loss(parts).item() == pytest.approx(1.0)          # rebuilt exact, cycle off by 1
    # margin: two classes already 1 apart in cosine distance → no loss; collapsed → the margin
    parts.homo_features = {"a": torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])}
    classes = torch.tensor([0, 0, 1, 1])
    assert margin_loss(parts, classes, 0.1).item() == pytest.approx(0.0)
    parts.homo_features = {"a": torch.ones(4, 2)}
    assert margin_loss(parts, classes, 0.1).item() == pytest.approx(0.1)


def test_masks_are_finite_and_fp16_safe():
    valid = torch.tensor([[True, True, False]])
    mask = attention_mask(valid, target_len=2, heads=2)
    assert mask.shape == (2, 2, 3) and mask[0, 0].tolist() == [0.0, 0.0, MASK_NEGATIVE]
    assert torch.isfinite(torch.softmax(torch.full((3,), MASK_NEGATIVE, dtype=torch.float16), 0)).all()
    assert attention_mask(None, 2, 2) is None
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(x, valid).item() == pytest.approx(2.0)
    table = positional_table(4, 6)
    assert table.shape == (4, 6) and table[0, 0] == 0 and table[0, 1] == 1


def test_the_exported_path_runs_in_onnx_runtime_like_pytorch(tmp_path):
    pytest.importorskip("onnxruntime")
    from mke.runtime.onnxrt import ort_session

    torch.manual_seed(0)
    model = tiny_dmd().eval()
    x = inputs(1, seed=1)
    path = tmp_path / "dmd.onnx"
    torch.onnx.export(model, (), str(path), kwargs=x, input_names=["rgb", "audio"], output_names=["logits"],
                      dynamo=True, opset_version=18)
    got = ort_session(path).run(None, {k: v.numpy() for k, v in x.items()})[0]
    with torch.no_grad():
        want = model(**x).numpy()
    assert np.abs(got - want).max() <= 1e-3


def test_a_task_without_the_network_refuses_the_method_before_training(tmp_path):
    from mke.train.cli import main

    assert main(["--task", "twomoon", "--runs-dir", str(tmp_path), "seeds=1", "methods=[UM teacher, DMD student]"]) == 2
    assert not (tmp_path / "twomoon").exists()


@pytest.mark.slow
def test_the_dmd_student_trains_in_mke_train_records_its_edges_and_exports(tmp_path):
    """`mke-train --task av methods=[UM teacher, DMD student]` on tiny data: the edges of both graphs in
    metrics.json (mean ± std over 2 seeds, every receiver's incoming weights summing to 1) and drawn in the
    report; `mke-export --student "DMD student"` gives an FP32 ONNX within 1e-3 of PyTorch."""
    import json

    from mke.export.cli import main as export_main
    from mke.train.cli import main

    tiny = ["seeds=2", "workers=1", f"data.cache_dir={tmp_path / 'cache'}", "data.actors=6", "data.statements=1",
            "data.repetitions=1", "data.val_actors=1", "data.test_actors=1", "data.replay.clips=2",
            "teacher.optim.epochs=2", "student.optim.epochs=1", "model.dmd.layers=1", "model.dmd.width=16",
            "methods=[UM teacher, DMD student]"]
    assert main(["--task", "av", "--runs-dir", str(tmp_path / "runs"), "--no-progress", *tiny]) == 0
    run = tmp_path / "runs" / "av"
    dmd = next(r for r in json.loads((run / "metrics.json").read_text())["results"] if r["method"] == "DMD student")
    assert set(dmd["edges"]) == {"homo", "hetero"}
    for edges in dmd["edges"].values():
        assert set(edges) == {"audio→rgb", "rgb→audio", "teacher→rgb", "teacher→audio"}   # the teacher only sends
        for receiver in ("rgb", "audio"):
            assert sum(w["mean"] for e, w in edges.items() if e.endswith(receiver)) == pytest.approx(1.0, abs=1e-3)
    assert "edges_dmd_student_augment_default.png" in (run / "report.md").read_text()
    out = tmp_path / "exports"
    assert export_main([str(run), "--student", "DMD student", "--out", str(out), "--repeats", "2"]) == 0
    report = json.loads((out / "export_report.json").read_text())
    fp32 = next(a for a in report["artifacts"] if a["model"] == "student" and a["precision"] == "fp32")
    assert fp32["parity"]["max_abs_diff"] <= 1e-3
