"""Open-set action recognition by uncertainty-based rejection.

The original (DEAR, "Deep Evidential Action Recognition") trains video classifiers with an
evidential loss and rejects a video as unknown when its uncertainty is high. Here:

* :func:`evidential_loss` -- DEAR's EDL objective: the logits give Dirichlet evidence
  ``exp(clamp(logits))``, the loss is the expected log-likelihood under that Dirichlet plus a KL
  term to the uniform Dirichlet (on the misleading evidence only), annealed in over epochs;
* :func:`uncertainty` -- ``evidential`` (``K / sum(alpha)``), ``max_softmax`` (``1 - max p``) or
  ``entropy`` of the softmax;
* :func:`evaluate_open_set` -- closed-set accuracy on the known classes, open-set AUROC (unknown
  videos as positives, ranked by uncertainty) and open-set macro-F1 with unknowns as class ``K``
  at a threshold that accepts ``accept_rate`` of the known videos;
* :func:`train_open_set_head` -- a linear evidential head trained on frozen encoder features.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from internvideo1.downstream.metrics import binary_auroc, macro_f1, topk_accuracy

UNCERTAINTY_METHODS = ("evidential", "max_softmax", "entropy")


def dirichlet_alpha(logits: torch.Tensor, clamp: float = 10.0) -> torch.Tensor:
    """Dirichlet parameters from logits: evidence ``exp(clamp(logits))`` plus one."""
    return torch.exp(logits.float().clamp(-clamp, clamp)) + 1.0


def _kl_to_uniform_dirichlet(alpha: torch.Tensor) -> torch.Tensor:
    """``KL(Dir(alpha) || Dir(1, ..., 1))`` per row."""
    k = alpha.shape[1]
    strength = alpha.sum(1)
    log_norm = torch.lgamma(strength) - torch.lgamma(alpha).sum(1) - math.lgamma(k)
    digamma_term = ((alpha - 1) * (torch.digamma(alpha) - torch.digamma(strength)[:, None])).sum(1)
    return log_norm + digamma_term


def evidential_loss(
    logits: torch.Tensor, targets: torch.Tensor, epoch: int, annealing_epochs: int = 10
) -> torch.Tensor:
    """DEAR's EDL loss (log variant): ``sum_k y_k (log S - log alpha_k) + lambda_t KL``.

    ``lambda_t = min(1, epoch / annealing_epochs)``; the KL acts on ``alpha`` with the true
    class's evidence removed, so only evidence for the wrong classes is pushed to zero.
    """
    alpha = dirichlet_alpha(logits)
    one_hot = F.one_hot(targets.long(), alpha.shape[1]).float()
    strength = alpha.sum(1, keepdim=True)
    nll = (one_hot * (torch.log(strength) - torch.log(alpha))).sum(1)
    misleading = one_hot + (1 - one_hot) * alpha
    kl = _kl_to_uniform_dirichlet(misleading)
    coef = min(1.0, epoch / annealing_epochs) if annealing_epochs > 0 else 1.0
    return (nll + coef * kl).mean()


def uncertainty(logits: torch.Tensor, method: str = "evidential") -> torch.Tensor:
    """Per-row uncertainty in [0, 1]: high means "probably an unknown class"."""
    if method == "evidential":
        alpha = dirichlet_alpha(logits)
        return alpha.shape[1] / alpha.sum(1)
    probs = logits.float().softmax(1)
    if method == "max_softmax":
        return 1.0 - probs.max(1).values
    if method == "entropy":
        return -(probs * probs.clamp(min=1e-12).log()).sum(1) / math.log(probs.shape[1])
    raise ValueError(f"unknown uncertainty method {method!r}: use one of {UNCERTAINTY_METHODS}")


def rejection_threshold(known_uncertainty: torch.Tensor, accept_rate: float = 0.95) -> float:
    """The uncertainty under which ``accept_rate`` of the known videos fall."""
    if not 0 < accept_rate <= 1:
        raise ValueError(f"accept_rate must lie in (0, 1], got {accept_rate}")
    return float(torch.quantile(known_uncertainty.float(), accept_rate))


def open_set_predict(logits: torch.Tensor, threshold: float, method: str = "evidential") -> torch.Tensor:
    """Class predictions, with ``K`` (the unknown class) wherever uncertainty exceeds ``threshold``."""
    pred = logits.argmax(1)
    return torch.where(uncertainty(logits, method) > threshold, torch.full_like(pred, logits.shape[1]), pred)


def evaluate_open_set(
    known_logits: torch.Tensor,
    known_labels: torch.Tensor,
    unknown_logits: torch.Tensor,
    method: str = "evidential",
    threshold: float | None = None,
    accept_rate: float = 0.95,
) -> dict[str, float]:
    """Closed-set top-1, open-set AUROC and open-set macro-F1 (all in %), and the threshold used."""
    u_known, u_unknown = uncertainty(known_logits, method), uncertainty(unknown_logits, method)
    if threshold is None:
        threshold = rejection_threshold(u_known, accept_rate)
    scores = torch.cat([u_known, u_unknown])
    is_unknown = torch.cat([torch.zeros_like(u_known), torch.ones_like(u_unknown)])
    k = known_logits.shape[1]
    truth = torch.cat([known_labels.long(), torch.full((len(unknown_logits),), k, dtype=torch.long)])
    pred = open_set_predict(torch.cat([known_logits, unknown_logits]), threshold, method)
    return {
        "closed_top1": topk_accuracy(known_logits.float(), known_labels.long(), ks=(1,))[0],
        "open_auroc": 100.0 * binary_auroc(scores, is_unknown),
        "open_macro_f1": 100.0 * macro_f1(truth, pred, k + 1),
        "threshold": threshold,
    }


def train_open_set_head(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    epochs: int = 50,
    lr: float = 1e-2,
    batch_size: int = 256,
    loss: str = "evidential",
    annealing_epochs: int = 10,
    seed: int = 0,
) -> nn.Linear:
    """A linear classifier on frozen features, trained with the evidential or cross-entropy loss."""
    if loss not in ("evidential", "ce"):
        raise ValueError(f"unknown loss {loss!r}: use 'evidential' or 'ce'")
    gen = torch.Generator().manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    features, labels = features.float(), labels.long()
    for epoch in range(epochs):
        order = torch.randperm(len(features), generator=gen)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            logits = head(features[idx])
            if loss == "evidential":
                value = evidential_loss(logits, labels[idx], epoch, annealing_epochs)
            else:
                value = F.cross_entropy(logits, labels[idx])
            opt.zero_grad()
            value.backward()
            opt.step()
    return head.eval()


def load_feature_file(
    path: str | os.PathLike, need_labels: bool = True
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``features`` ``(N, D)`` and ``labels`` ``(N,)`` from an ``.npz`` file (labels optional for unknowns)."""
    try:
        data = np.load(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read feature file {path}: {err}") from err
    if "features" not in data or data["features"].ndim != 2:
        raise ValueError(f"{path}: needs a 2D 'features' array (N, D)")
    labels = torch.from_numpy(data["labels"]).long() if "labels" in data else None
    if need_labels and labels is None:
        raise ValueError(f"{path}: needs a 'labels' array")
    return torch.from_numpy(data["features"]).float(), labels


def add_open_set_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    g = parser.add_argument_group("open-set recognition")
    g.add_argument("--train_features", required=True, help=".npz with features (N, D) and labels (N,)")
    g.add_argument("--known_features", required=True, help="test videos of the training classes")
    g.add_argument("--unknown_features", required=True, help="test videos of unseen classes (labels unused)")
    g.add_argument("--loss", default="evidential", choices=["evidential", "ce"])
    g.add_argument("--uncertainty", default=None, choices=UNCERTAINTY_METHODS, help="default: by --loss")
    g.add_argument("--accept_rate", default=0.95, type=float, help="share of known videos kept as known")
    g.add_argument("--epochs", default=50, type=int)
    g.add_argument("--lr", default=1e-2, type=float)
    g.add_argument("--annealing_epochs", default=10, type=int)
    g.add_argument("--seed", default=0, type=int)
    g.add_argument("--output_json", default="")
    return parser


def run_open_set(args: argparse.Namespace) -> dict[str, float]:
    """Train the head on ``--train_features``, then report closed-set accuracy, AUROC and macro-F1."""
    train_x, train_y = load_feature_file(args.train_features)
    known_x, known_y = load_feature_file(args.known_features)
    unknown_x, _ = load_feature_file(args.unknown_features, need_labels=False)
    num_classes = int(train_y.max()) + 1
    head = train_open_set_head(
        train_x, train_y, num_classes, args.epochs, args.lr, loss=args.loss,
        annealing_epochs=args.annealing_epochs, seed=args.seed,
    )  # fmt: skip
    method = args.uncertainty or ("evidential" if args.loss == "evidential" else "max_softmax")
    with torch.no_grad():
        results = evaluate_open_set(
            head(known_x), known_y, head(unknown_x), method, accept_rate=args.accept_rate
        )
    print("open set: " + json.dumps({k: round(v, 4) for k, v in results.items()}), flush=True)
    if args.output_json:
        Path(args.output_json).write_text(json.dumps(results, indent=1))
    return results
