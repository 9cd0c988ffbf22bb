"""How much each modality of the built-in events data tells, on simple features (docs/events.md).

    python scripts/events_data_check.py [cache_dir] [key=value …]   (data settings, e.g. seed=1)

Audio: the log-mel spectrogram the runtime computes (64 bands, 2 s, 20 ms hop), summarised per band by
mean, standard deviation and maximum over time (192 numbers). Video: for each frame and each quarter of
it (a sprite fills about a quarter), a hue × saturation × value histogram (12 × 3 × 3) and the mean
absolute difference to the same quarter of the previous frame (motion), summarised by mean and maximum
over frames and quarters (218 numbers). All computed in well under a minute.

1. Probes: a logistic regression per class (scikit-learn, standardised features, C = 0.1) on the true
   labels of D_l (the teacher's 500 clips) and of D_l + D_u (1,500), for audio, video and both; test
   average precision per class.
2. MKE on these features: the audio probe trained on D_l is the teacher; its probabilities on D_u are
   soft labels; students — a one-hidden-layer network (128 ReLU units, dropout 0.2, Gaussian noise of
   0.5 standard deviations on the standardised inputs as T; AdamW, 100 epochs, batches of 64) fitted to
   those labels with binary cross-entropy — hear only the audio (UM student) or also see the video
   (MM student; without the input noise: MM student (no input noise)), and MM student (sup) is the same
   network on D_u's true labels. Seeds 0 and 1.

Prints markdown tables.
"""
from __future__ import annotations

import sys
import time

import numpy as np


def audio_features(clips) -> np.ndarray:
    from mke.runtime.audio_features import log_mel

    params = {"sample_rate": clips.sample_rate, "seconds": clips.clip_seconds, "n_fft": 512, "win_length": 400,
              "hop_length": 320, "n_mels": 64}
    out = []
    for track in clips.audio:
        m = log_mel(track[None], params)[0]
        out.append(np.concatenate([m.mean(1), m.std(1), m.max(1)]))
    return np.array(out, np.float32)


def video_features(clips) -> np.ndarray:
    import cv2

    out = []
    for frames in clips.frames:
        half = frames.shape[1] // 2
        quarters = [(slice(y, y + half), slice(x, x + half)) for y in (0, half) for x in (0, half)]
        hists, motion = [], []
        for j, f in enumerate(frames):
            hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
            for q in quarters:
                h = cv2.calcHist([np.ascontiguousarray(hsv[q])], [0, 1, 2], None, [12, 3, 3],
                                 [0, 180, 0, 256, 0, 256]).ravel()
                hists.append(h / h.sum())
                if j:
                    motion.append(float(np.abs(f[q].astype(np.float32) - frames[j - 1][q]).mean()) / 255)
        h, m = np.array(hists), np.array(motion)
        out.append(np.concatenate([h.mean(0), h.max(0), [m.mean(), m.max()]]))
    return np.array(out, np.float32)


def probe(train_x, train_y, test_x) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(train_x)
    a, b = scale.transform(train_x), scale.transform(test_x)
    return np.stack([LogisticRegression(C=0.1, max_iter=2000).fit(a, train_y[:, k]).predict_proba(b)[:, 1]
                     for k in range(train_y.shape[1])], 1)


def student(train_x, targets, test_x, seed: int, epochs: int = 100, noise: float = 0.5) -> np.ndarray:
    """A one-hidden-layer network fitted to (soft) targets with binary cross-entropy, Gaussian noise on its
    standardised inputs (T); test probabilities."""
    import torch

    torch.manual_seed(seed)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x = torch.tensor((train_x - mean) / std)
    y = torch.tensor(targets, dtype=torch.float32)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 128), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(128, y.shape[1]))
    opt = torch.optim.AdamW(net.parameters(), 1e-3, weight_decay=1e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            logits = net(x[idx] + noise * torch.randn_like(x[idx]))
            torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        return torch.sigmoid(net(torch.tensor((test_x - mean) / std))).numpy()


def per_class_ap(y, p) -> np.ndarray:
    from sklearn.metrics import average_precision_score

    return np.array([average_precision_score(y[:, k], p[:, k]) for k in range(y.shape[1])])


def table(rows: dict, class_names) -> None:
    print("| model | mAP | " + " | ".join(class_names) + " |")
    print("|---|---|" + "---|" * len(class_names))
    for name, ap in rows.items():
        print(f"| {name} | **{ap.mean():.3f}** | " + " | ".join(f"{v:.2f}" for v in ap) + " |")


def main(argv: list[str]) -> None:
    import torch
    import yaml

    from mke.train.datasets.builtin_events import CLASS_NAMES, load_events

    cfg = {"cache_dir": argv[0] if argv and "=" not in argv[0] else "data/cache"}
    for item in (a for a in argv if "=" in a):
        key, value = item.split("=", 1)
        cfg[key] = yaml.safe_load(value)
    torch.set_num_threads(1)
    started = time.perf_counter()
    data = load_events(cfg, progress=True)
    print(f"data ready in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    feats = {name: {"audio": audio_features(c), "video": video_features(c)} for name, c in data.items()}
    for f in feats.values():
        f["audio + video"] = np.concatenate([f["audio"], f["video"]], 1)
    y = {name: c.labels for name, c in data.items()}
    print(f"features in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    rows = {}
    for parts in (("labeled",), ("labeled", "unlabeled")):
        for mod in ("audio", "video", "audio + video"):
            x, t = np.concatenate([feats[p][mod] for p in parts]), np.concatenate([y[p] for p in parts])
            rows[f"{mod}, true labels of {' + '.join('D_' + p[0] for p in parts)}"] = \
                per_class_ap(y["test"], probe(x, t, feats["test"][mod]))
    print(f"\n1. probes ({time.perf_counter() - started:.0f} s): test AP per class\n")
    table(rows, CLASS_NAMES)

    started = time.perf_counter()
    soft = probe(feats["labeled"]["audio"], y["labeled"], feats["unlabeled"]["audio"])
    rows = {"UM teacher (audio probe on D_l)": rows["audio, true labels of D_l"]}
    runs = {"UM student (audio)": ("audio", soft, 0.5),
            "MM student (no input noise)": ("audio + video", soft, 0.0),
            "MM student (audio + video)": ("audio + video", soft, 0.5),
            "MM student (sup) (audio + video, true labels of D_u)": ("audio + video", y["unlabeled"], 0.5)}
    for name, (mod, targets, noise) in runs.items():
        rows[name] = np.mean([per_class_ap(y["test"], student(feats["unlabeled"][mod], targets, feats["test"][mod],
                                                              seed, noise=noise)) for seed in (0, 1)], 0)
    print(f"\n2. MKE on these features ({time.perf_counter() - started:.0f} s; the teacher's soft labels: "
          f"{per_class_ap(y['unlabeled'], soft).mean():.3f} mAP on D_u): test AP per class, mean of seeds 0 and 1\n")
    table(rows, CLASS_NAMES)

    test = data["test"]
    hidden = np.zeros_like(test.labels, bool)   # the (clip, class) of each masked test event
    for r, c in zip(*np.nonzero(test.masked)):
        hidden[r, test.events["event_class"][r, c]] = True
    present = test.labels > 0
    both = (np.concatenate([y["labeled"], y["unlabeled"]]), ("labeled", "unlabeled"))
    print()
    for mod in ("audio", "audio + video"):
        p = probe(np.concatenate([feats[s][mod] for s in both[1]]), both[0], feats["test"][mod])
        print(f"{mod} probe (true labels of D_l + D_u): mean probability {p[hidden].mean():.2f} on the "
              f"{int(hidden.sum())} masked test events, {p[present & ~hidden].mean():.2f} on the other "
              f"{int((present & ~hidden).sum())}")


if __name__ == "__main__":
    main(sys.argv[1:])
