"""Rank sentences for a video (the original's notebook demo), on CPU or GPU.

    from internvideo2.mm.api import VideoTextRetriever

    retriever = VideoTextRetriever.from_config("scripts/evaluation/stage2/zero_shot/1B/config_msrvtt.py",
                                               checkpoint="InternVideo2-stage2_1b-224p-f4.pt")
    for text, score, prob in retriever.rank("video.mp4", ["a dog runs", "a man cooks"]):
        print(f"{prob:.3f} {score:+.3f} {text}")

``score`` is the cosine similarity of the video and text embeddings; ``prob`` the softmax over the
given sentences of ``100 * score``, as the demo prints. ``rank(..., use_itm=True)`` re-scores with
the stage-2 matching head (probability of "match") and sorts by it instead.
"""

from __future__ import annotations

from pathlib import Path

import torch

from internvideo2.mm.build import build_model, build_tokenizer, load_for_evaluation
from internvideo2.mm.config import load_config, optional, require
from internvideo2.mm.data import MediaRecord, Tokenize, load_media, pre_text, test_transform

MM_ROOT = Path(__file__).resolve().parents[2] / "multi_modality"


class VideoTextRetriever:
    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        num_frames: int,
        image_res: int,
        max_txt_l: int,
        device: str = "cpu",
        prompt: str = "",
    ):
        self.model = model.to(device).eval()
        self.tokenize = Tokenize(tokenizer, max_txt_l, prompt)
        self.transform = test_transform(image_res)
        self.num_frames, self.device = num_frames, torch.device(device)

    @classmethod
    def from_config(
        cls, config: str | Path, checkpoint: str | Path | None = None, overrides=(), device: str = "cpu"
    ) -> VideoTextRetriever:
        """Model, tokenizer and input settings from a multi-modality config; weights from ``checkpoint``."""
        cfg = load_config(config, overrides, root=MM_ROOT)
        tokenizer = build_tokenizer(cfg)
        model = build_model(cfg, tokenizer, is_pretrain=False)
        load_for_evaluation(model, cfg, checkpoint)
        return cls(
            model,
            tokenizer,
            num_frames=int(require(cfg, "inputs.video_input.num_frames_test")),
            image_res=int(require(cfg, "inputs.image_res")),
            max_txt_l=int(optional(cfg, "inputs.max_txt_l.video", 40)),
            device=device,
            prompt=str(optional(cfg, "model.text_encoder.prompt", "") or ""),
        )

    def load_video(self, path: str | Path) -> torch.Tensor:
        """``(1, T, 3, H, W)`` normalised frames, sampled as retrieval evaluation samples them."""
        frames = load_media(MediaRecord(str(path), [], "video"), self.num_frames, "middle", rng=None)
        return self.transform(frames)[None].to(self.device)

    @torch.no_grad()
    def similarity(self, video: str | Path, texts: list[str]) -> torch.Tensor:
        """Cosine similarity ``(len(texts),)`` between the video and each sentence."""
        _, vid = self.model.get_vid_feat(self.load_video(video))
        batch = self.tokenize([pre_text(t) for t in texts])
        _, txt = self.model.get_txt_feat(
            batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        )
        return (vid @ txt.T)[0].float().cpu()

    @torch.no_grad()
    def match_probability(self, video: str | Path, texts: list[str]) -> torch.Tensor:
        """Stage-2 matching-head probability that each sentence describes the video."""
        if not hasattr(self.model, "match_logits"):
            raise ValueError(f"{type(self.model).__name__} has no matching head (use a stage-2 model)")
        tokens, _ = self.model.get_vid_feat(self.load_video(video))
        batch = self.tokenize([pre_text(t) for t in texts])
        ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
        text_tokens, _ = self.model.get_txt_feat(ids, mask)
        logits = self.model.match_logits(tokens.expand(len(texts), -1, -1), text_tokens, mask)
        return logits.float().softmax(-1)[:, 1].cpu()

    def rank(
        self, video: str | Path, texts: list[str], use_itm: bool = False
    ) -> list[tuple[str, float, float]]:
        """``(text, score, prob)`` from best to worst match."""
        if not texts:
            raise ValueError("give at least one sentence to rank")
        scores = self.similarity(video, texts)
        probs = (100.0 * scores).softmax(-1)
        key = self.match_probability(video, texts) if use_itm else scores
        order = key.argsort(descending=True, stable=True).tolist()
        return [(texts[i], float(key[i]), float(probs[i])) for i in order]
