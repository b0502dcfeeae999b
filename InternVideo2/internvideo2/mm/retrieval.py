"""Video-text retrieval: recall metrics and the original's two-stage zero-shot evaluation.

Stage one scores every (video, caption) pair by the cosine similarity of their projected
embeddings ("itc"), and its dual-softmax variant ("dsl"). Stage two ("itm") re-scores, for every
video, its ``k_test`` most similar captions, and for every caption its ``k_test`` most similar
videos, with the matching head on the fusion encoder; pairs outside the top-k get -100, as in
the original.

``eval_frame_ensemble="concat"`` (the released recipes) encodes a test video as one clip.
``mean`` / ``max`` / ``lse`` encode each of its frames as a one-frame clip (the original's
single-frame ensembles, inherited from UMT): the dual-encoder score is the mean of the per-frame
cosine similarities (the original's ``get_sim``), the matching-head score the mean, max or
log-sum-exp of the per-frame matching scores. Test sets of ``audio_video`` entries are scored
with the audio-visual embedding (``av_fusion`` of the audio and vision projections) and
re-ranked by the audio-visual matching head (``avtm_head``) on the audio and vision tokens.

Ranks are 0-based positions in a descending sort where ties keep the lower index first; with
several ground-truth items (a video's many captions), a query's rank is its best one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from internvideo2.mm.data import RetrievalDataset, Tokenize
from ivtools.distributed import all_gather_object, get_world_size


def target_ranks(scores: torch.Tensor, targets: Sequence[Sequence[int]]) -> torch.Tensor:
    """0-based rank of the best-placed target in each row of ``scores`` (Q, N)."""
    if len(targets) != scores.shape[0]:
        raise ValueError(f"{len(targets)} target lists for {scores.shape[0]} queries")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    position = torch.empty_like(order)
    position.scatter_(1, order, torch.arange(scores.shape[1]).expand_as(order).contiguous())
    ranks = []
    for row, wanted in enumerate(targets):
        if len(wanted) == 0:
            raise ValueError(f"query {row} has no ground-truth item")
        ranks.append(int(position[row, list(wanted)].min()))
    return torch.tensor(ranks)


def recall_summary(ranks: torch.Tensor, prefix: str) -> dict[str, float]:
    """R@1/5/10 (percent), their mean, median rank and mean rank (1-based) of ``ranks``."""
    out = {f"{prefix}_r{k}": 100.0 * (ranks < k).float().mean().item() for k in (1, 5, 10)}
    out[f"{prefix}_r_mean"] = sum(out[f"{prefix}_r{k}"] for k in (1, 5, 10)) / 3
    one_based = ranks.float() + 1
    out[f"{prefix}_medr"] = one_based.quantile(0.5).item()
    out[f"{prefix}_meanr"] = one_based.mean().item()
    return out


def retrieval_metrics(
    scores_v2t: torch.Tensor,
    scores_t2v: torch.Tensor,
    txt2vid: Sequence[int],
    vid2txt: Sequence[Sequence[int]],
) -> dict[str, float]:
    """The original's ``itm_eval`` keys (``v2t_r1`` ... ``t2v_r_mean``, ``r_mean``) plus median/mean rank."""
    v2t = recall_summary(target_ranks(scores_v2t, vid2txt), "v2t")
    t2v = recall_summary(target_ranks(scores_t2v, [[v] for v in txt2vid]), "t2v")
    return {**v2t, **t2v, "r_mean": (v2t["v2t_r_mean"] + t2v["t2v_r_mean"]) / 2}


def multiple_choice_accuracy(
    sim_v2t: torch.Tensor, vid2txt: Sequence[Sequence[int]], answers: Sequence[int | None]
) -> float:
    """Percent of videos whose best-scoring option is the answer (the original's ``retrieval_mc``)."""
    if any(a is None for a in answers):
        raise ValueError("multiple-choice evaluation needs an 'answer' in every annotation entry")
    hits = [int(sim_v2t[v, list(options)].argmax()) == answers[v] for v, options in enumerate(vid2txt)]
    return 100.0 * sum(hits) / len(hits)


def dual_softmax(sim_v2t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's dual-softmax re-weighting: each score times its softmax over the other side."""
    sim = sim_v2t.float()
    return sim * sim.softmax(dim=0), sim.T * sim.T.softmax(dim=0)


@torch.no_grad()
def encode_texts(model, texts: list[str], tokenize: Tokenize, device, batch_size: int = 64):
    """``(token features, masks, normalised embeddings)`` of all ``texts``."""
    tokens, masks, embeds = [], [], []
    for start in range(0, len(texts), batch_size):
        batch = tokenize(texts[start : start + batch_size])
        ids, mask = batch["input_ids"].to(device), batch["attention_mask"].to(device)
        feats, emb = model.get_txt_feat(ids, mask)
        tokens.append(feats)
        masks.append(mask)
        embeds.append(emb)
    return _cat(tokens), torch.cat(masks), torch.cat(embeds)


def _cat(parts: list) -> torch.Tensor | None:
    """Concatenate per-batch token features; dual encoders without token outputs give None."""
    return None if parts[0] is None else torch.cat(parts)


FRAME_ENSEMBLES = ("concat", "mean", "max", "lse")


def aggregate_clips(scores: torch.Tensor, method: str) -> torch.Tensor:
    """Combine per-clip scores ``(clips, K)`` into ``(K,)`` (``concat``: the single clip's)."""
    if method in ("concat", "mean"):
        return scores.mean(0)
    if method == "max":
        return scores.max(0).values
    if method == "lse":
        return torch.logsumexp(scores, 0)
    raise ValueError(f"evaluation.eval_frame_ensemble must be one of {FRAME_ENSEMBLES}, got {method!r}")


def _media_features(model, batch: dict, device, ensemble: str):
    """``(tokens (B, clips, N, D), embeddings (B, clips, E))`` of one test batch."""
    video = batch["video"].to(device)
    if "audio" in batch and hasattr(model, "get_av_feat"):
        if ensemble != "concat":
            raise ValueError(
                f"audio-visual test sets support eval_frame_ensemble='concat' only, got {ensemble!r}"
            )
        feats, emb = model.get_av_feat(video, batch["audio"].to(device))
        return feats[:, None], emb[:, None]
    if ensemble == "concat":
        feats, emb = model.get_vid_feat(video)
        return (None if feats is None else feats[:, None]), emb[:, None]
    batch_size, frames = video.shape[:2]
    feats, emb = model.get_vid_feat(video.flatten(0, 1)[:, None])  # every frame a one-frame clip
    feats = None if feats is None else feats.unflatten(0, (batch_size, frames))
    return feats, emb.unflatten(0, (batch_size, frames))


@torch.no_grad()
def encode_videos(model, loader: DataLoader, device, ensemble: str = "concat"):
    """``(token features (V, clips, N, D), normalised embeddings (V, clips, E), valid flags)`` of all
    videos, in dataset order.

    Under torch.distributed each rank encodes its shard of the loader; the shards (moved to the
    CPU) are exchanged so that every rank returns every video.
    """
    parts = []
    for batch in loader:
        feats, emb = _media_features(model, batch, device, ensemble)
        parts.append((None if feats is None else feats.cpu(), emb.cpu(), batch["valid"], batch["index"]))
    if get_world_size() > 1:
        parts = [part for shard in all_gather_object(parts) for part in shard]
    order = torch.cat([p[3] for p in parts]).argsort()
    tokens = _cat([p[0] for p in parts])
    embeds, valid = torch.cat([p[1] for p in parts])[order], torch.cat([p[2] for p in parts])[order]
    return None if tokens is None else tokens[order].to(device), embeds.to(device), valid


def _matcher(model, audio_visual: bool):
    """The matching-head scorer for this test set, or None (dual encoders, or the head is off)."""
    if audio_visual:
        return model.av_match_logits if hasattr(model, "avtm_head") else None
    return getattr(model, "match_logits", None)


@torch.no_grad()
def itm_rerank(
    match,
    sim_v2t: torch.Tensor,
    video_tokens: torch.Tensor,
    text_tokens: torch.Tensor,
    text_masks: torch.Tensor,
    k_test: int,
    ensemble: str = "concat",
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching-head scores (``match(vision_tokens, text_tokens, mask)`` logits, column 1) for each
    query's top ``k_test`` candidates, -100 elsewhere; ``video_tokens`` is ``(V, clips, N, D)``."""
    num_videos, num_texts = sim_v2t.shape
    v2t = torch.full_like(sim_v2t, -100.0)
    t2v = torch.full_like(sim_v2t.T, -100.0)

    def score(video_rows: torch.Tensor, text_rows: torch.Tensor) -> torch.Tensor:
        per_clip = []
        for clip in range(video_tokens.shape[1]):
            out = []
            for start in range(0, len(video_rows), batch_size):
                v, t = video_rows[start : start + batch_size], text_rows[start : start + batch_size]
                out.append(match(video_tokens[v, clip], text_tokens[t], text_masks[t])[:, 1].float())
            per_clip.append(torch.cat(out))
        return aggregate_clips(torch.stack(per_clip), ensemble)

    for video in range(num_videos):
        top = sim_v2t[video].topk(min(k_test, num_texts)).indices
        v2t[video, top] = score(torch.full_like(top, video), top)
    for text in range(num_texts):
        top = sim_v2t[:, text].topk(min(k_test, num_videos)).indices
        t2v[text, top] = score(top, torch.full_like(top, text))
    return v2t, t2v


@torch.no_grad()
def retrieval_scores(
    model,
    dataset: RetrievalDataset,
    loader: DataLoader,
    tokenize: Tokenize,
    device,
    k_test: int = 128,
    use_itm: bool = True,
    ensemble: str = "concat",
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """``({"itc"|"dsl"|"itm": (video-to-text (V, T), text-to-video (T, V))}, valid flags)``.

    Unreadable videos keep their place (so caption indices stay right) but score -inf with every
    caption. ``itm`` needs a matching head and ``use_itm``.
    """
    aggregate_clips(torch.zeros(1, 1), ensemble)  # reject an unknown method before encoding
    model.eval()
    text_tokens, text_masks, text_emb = encode_texts(model, dataset.texts, tokenize, device)
    video_tokens, video_emb, valid = encode_videos(model, loader, device, ensemble)
    invalid = ~valid.to(video_emb.device)
    sim_v2t = torch.einsum("vce,te->vct", video_emb, text_emb).float().mean(1)
    sim_v2t[invalid] = float("-inf")
    finite = sim_v2t.clamp_min(-1e4)  # keep the softmax defined for unreadable rows
    scores = {"itc": (sim_v2t, sim_v2t.T), "dsl": dual_softmax(finite)}
    audio_visual = hasattr(model, "get_av_feat") and any(r.audio for r in getattr(dataset, "records", []))
    match = _matcher(model, audio_visual)
    if use_itm and match is not None:
        v2t, t2v = itm_rerank(match, finite, video_tokens, text_tokens, text_masks, k_test, ensemble)
        v2t[invalid], t2v[:, invalid] = float("-inf"), float("-inf")
        scores["itm"] = (v2t, t2v)
    return scores, valid


@torch.no_grad()
def evaluate_retrieval(
    model, dataset: RetrievalDataset, loader: DataLoader, tokenize: Tokenize, device, **options
) -> dict[str, dict[str, float]]:
    """Zero-shot retrieval on one test set: metrics for ``itc``, ``dsl`` and ``itm``
    (``options``: ``k_test``, ``use_itm``, ``ensemble`` of :func:`retrieval_scores`); a set whose
    entries all carry an ``answer`` is a multiple-choice set and gets ``mc/accuracy`` instead.
    ``num_invalid_videos`` counts the unreadable videos.
    """
    mc = all(a is not None for a in dataset.answers)
    if mc:
        options["use_itm"] = False
    scores, valid = retrieval_scores(model, dataset, loader, tokenize, device, **options)
    if mc:
        return {
            "mc": {"accuracy": multiple_choice_accuracy(scores["itc"][0], dataset.vid2txt, dataset.answers)}
        }
    results = {
        kind: retrieval_metrics(v2t, t2v, dataset.txt2vid, dataset.vid2txt)
        for kind, (v2t, t2v) in scores.items()
    }
    for metrics in results.values():
        metrics["num_invalid_videos"] = int((~valid).sum())
    return results
