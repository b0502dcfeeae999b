"""``InternVideo2_Stage2``: the InternVideo2 video encoder + the MED BERT text/fusion encoder.

Parameters (the released checkpoints' top-level keys): ``vision_encoder.*`` (the stage-2 video
encoder), ``text_encoder.bert.*`` / ``text_encoder.cls.*`` (BERT with fusion layers and, for
pretraining, the MLM head), ``vision_proj`` (``clip_embed_dim -> embed_dim``), ``text_proj``
(``text_width -> embed_dim``), ``temp`` (scalar) and ``itm_head`` (``text_width -> 2``).

The vision encoder is any module called as the original's
``vision_encoder(video (B, C, T, H, W), mask, use_image) -> (tokens (B, N, D), pooled (B, C), ...)``
(see ``InternVideo2Stage2Vision`` in :mod:`internvideo2.models`); ``D`` is the fusion layers'
cross-attention width and ``C`` the input width of ``vision_proj``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from internvideo2.mm.losses import mask_tokens, similarity, vtc_loss, vtm_loss
from internvideo2.models.text_bert import MedBertForMaskedLM, MedBertModel


@dataclass
class Stage2LossConfig:
    """The original's ``criterion`` settings (a weight of 0 disables that loss)."""

    vtc: float = 1.0
    vtm: float = 1.0
    mlm: float = 1.0
    vtm_hard_neg: bool = True
    mlm_masking_prob: float = 0.5


@dataclass
class TokenIds:
    """The tokenizer's special ids MLM needs."""

    pad: int = 0
    cls: int = 101
    mask: int = 103
    vocab_size: int = 30522
    extra_special: list[int] = field(default_factory=list)


def random_token_mask(
    batch: int, num_patches: int, ratio: float, device=None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``(B, 1 + N)`` bool mask (True = dropped) hiding ``int(N * ratio)`` random patches per sample.

    The class-token column stays visible. This is the original's ``RandomMaskingGenerator`` used by
    stage-2 training (``only_mask=True``) to feed the encoder a random subset of the tokens.
    """
    hidden = int(num_patches * ratio)
    order = torch.rand(batch, num_patches, generator=generator, device=device).argsort(1)
    mask = torch.zeros(batch, num_patches, dtype=torch.bool, device=device)
    mask.scatter_(1, order[:, :hidden], True)
    return torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=device), mask], dim=1)


class InternVideo2_Stage2(nn.Module):
    def __init__(
        self,
        vision_encoder: nn.Module,
        text_encoder: MedBertForMaskedLM | MedBertModel,
        vision_width: int,
        embed_dim: int = 512,
        temp: float = 0.07,
        loss: Stage2LossConfig | None = None,
        token_ids: TokenIds | None = None,
        video_mask_ratio: float = 0.0,
        image_mask_ratio: float = 0.0,
        freeze_vision: bool = False,
        freeze_text: bool = False,
    ):
        super().__init__()
        self.vision_encoder = vision_encoder
        self.text_encoder = text_encoder
        self.text_width = text_encoder.config.hidden_size
        self.vision_proj = nn.Linear(vision_width, embed_dim)
        self.text_proj = nn.Linear(self.text_width, embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(temp)))
        self.itm_head = nn.Linear(self.text_width, 2)
        self.loss_cfg = loss or Stage2LossConfig()
        self.token_ids = token_ids or TokenIds(vocab_size=text_encoder.config.vocab_size)
        self.video_mask_ratio, self.image_mask_ratio = video_mask_ratio, image_mask_ratio
        if self.loss_cfg.mlm and not isinstance(text_encoder, MedBertForMaskedLM):
            raise ValueError("the MLM loss needs the text encoder with its MLM head (MedBertForMaskedLM)")
        for module, frozen in ((vision_encoder, freeze_vision), (text_encoder, freeze_text)):
            for p in module.parameters():
                p.requires_grad_(not frozen)

    # ----------------------------------------------------------------- encoders
    @property
    def bert(self) -> MedBertModel:
        """The text/fusion BERT (without the MLM head)."""
        return (
            self.text_encoder.bert if isinstance(self.text_encoder, MedBertForMaskedLM) else self.text_encoder
        )

    def no_weight_decay(self) -> set[str]:
        skip = getattr(self.vision_encoder, "no_weight_decay", lambda: set())()
        return {"temp"} | {f"vision_encoder.{k}" for k in skip}

    @torch.no_grad()
    def clamp_temperature(self, min_val: float = 0.001, max_val: float = 0.5) -> None:
        self.temp.clamp_(min_val, max_val)

    def _token_mask(self, video: torch.Tensor, use_image: bool) -> torch.Tensor | None:
        ratio = self.image_mask_ratio if use_image else self.video_mask_ratio
        if not self.training or ratio <= 0:
            return None
        grid = getattr(self.vision_encoder, "grid_size", None)
        if grid is None:
            raise ValueError("token masking needs vision_encoder.grid_size (T', H', W')")
        patches = (1 if use_image else grid[0]) * grid[1] * grid[2]
        return random_token_mask(video.shape[0], patches, ratio, video.device)

    def encode_vision(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, C, H, W)`` (the original's layout; T = 1 for images) -> ``(tokens, pooled)``.

        During training, a random ``video_mask_ratio`` / ``image_mask_ratio`` of the patches is
        dropped, as the original's stage 2 does.
        """
        if video.dim() != 5:
            raise ValueError(f"expected (B, T, C, H, W) frames, got shape {tuple(video.shape)}")
        use_image = video.shape[1] == 1
        video = video.permute(0, 2, 1, 3, 4)
        out = self.vision_encoder(video, self._token_mask(video, use_image), use_image)
        return out[0], out[1]

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids -> ``(token features (B, L, W), [CLS] feature (B, W))`` of the text layers."""
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask, mode="text").last_hidden_state
        return hidden, hidden[:, 0]

    def get_vid_feat(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens, L2-normalised embedding (B, embed_dim))`` of videos ``(B, T, C, H, W)``."""
        tokens, pooled = self.encode_vision(video)
        return tokens, nn.functional.normalize(self.vision_proj(pooled), dim=-1)

    def get_txt_feat(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, pooled = self.encode_text(input_ids, attention_mask)
        return tokens, nn.functional.normalize(self.text_proj(pooled), dim=-1)

    def match_logits(
        self,
        vision_tokens: torch.Tensor,
        text_tokens: torch.Tensor,
        text_mask: torch.Tensor,
        head: nn.Module | None = None,
    ) -> torch.Tensor:
        """Matching-head logits ``(B, 2)`` (column 1: "matches") for aligned pairs of rows
        (``head``: ``itm_head`` unless given)."""
        fused = self.bert(
            encoder_embeds=text_tokens,
            attention_mask=text_mask,
            encoder_hidden_states=vision_tokens,
            mode="fusion",
        ).last_hidden_state
        return (head or self.itm_head)(fused[:, 0])

    # ----------------------------------------------------------------- training
    def mlm_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, vision_tokens: torch.Tensor):
        ids = self.token_ids
        masked, labels = mask_tokens(
            input_ids,
            ids.vocab_size,
            ids.mask,
            [ids.pad, ids.cls, *ids.extra_special],
            self.loss_cfg.mlm_masking_prob,
        )
        text = self.bert(input_ids=masked, attention_mask=attention_mask, mode="text").last_hidden_state
        out = self.text_encoder(
            encoder_embeds=text,
            attention_mask=attention_mask,
            encoder_hidden_states=vision_tokens,
            mode="fusion",
            labels=labels,
        )
        # A batch where no token was picked has no MLM target: contribute zero, not NaN.
        return out.loss if (labels != -100).any() else out.logits.sum() * 0.0

    def media_losses(
        self,
        name: str,
        tokens: torch.Tensor,
        proj: torch.Tensor,
        text: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        idx: torch.Tensor | None,
        weights: tuple[float, float, float],
        head: nn.Module,
    ) -> dict[str, torch.Tensor]:
        """Contrastive, matching and masked-LM losses of one medium (``name``: ``v``, ``a``, ``av``)
        against the captions ``text = (input_ids, attention_mask, token features, projection)``."""
        input_ids, attention_mask, text_tokens, text_proj = text
        w_tc, w_tm, w_mlm = weights
        zero = proj.sum() * 0.0
        out = {f"loss_{name}tc": zero, f"loss_{name}tm": zero}
        if w_tc:
            out[f"loss_{name}tc"] = w_tc * vtc_loss(proj, text_proj, idx, self.temp)
        if w_tm:
            with torch.no_grad():
                sim, _ = similarity(proj, text_proj, self.temp)
            out[f"loss_{name}tm"] = w_tm * vtm_loss(
                self.bert, head, tokens, text_tokens, attention_mask, sim, idx, self.loss_cfg.vtm_hard_neg
            )
        mlm_name = "loss_mlm" if name == "v" else f"loss_{name}mlm"
        out[mlm_name] = w_mlm * self.mlm_loss(input_ids, attention_mask, tokens) if w_mlm else zero
        return out

    def text_inputs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple:
        text_tokens, text_pooled = self.encode_text(input_ids, attention_mask)
        return input_ids, attention_mask, text_tokens, self.text_proj(text_pooled)

    def forward(
        self,
        video: torch.Tensor,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        idx: torch.Tensor | None,
    ) -> dict[str, torch.Tensor]:
        """The weighted stage-2 losses ``loss_vtc``, ``loss_vtm``, ``loss_mlm`` for one batch."""
        self.clamp_temperature()
        vision_tokens, pooled = self.encode_vision(video)
        cfg = self.loss_cfg
        text = self.text_inputs(input_ids, attention_mask)
        weights = (cfg.vtc, cfg.vtm, cfg.mlm)
        return self.media_losses(
            "v", vision_tokens, self.vision_proj(pooled), text, idx, weights, self.itm_head
        )


@dataclass
class AudioVisualLossConfig:
    """Audio (``a*``) and audio-visual (``av*``) loss weights of the 6B recipe (0 disables)."""

    atc: float = 0.0
    atm: float = 0.0
    amlm: float = 0.0
    avc: float = 0.0
    avtc: float = 1.0
    avtm: float = 1.0
    avmlm: float = 1.0


class InternVideo2_Stage2_audiovisual(InternVideo2_Stage2):
    """Stage 2 with a BEATs audio encoder (the released 6B model).

    Extra keys: ``audio_encoder.*`` (BEATs), ``audio_proj`` (audio width -> embed_dim),
    ``av_concat_audio_proj.{0,1}`` / ``av_concat_vision_proj.{0,1}`` (Linear + LayerNorm to
    ``av_concat_dim``, the fusion layers' cross-attention width), ``av_fusion`` (2 embed_dim ->
    embed_dim), and ``atm_head`` / ``avtm_head`` when those losses are on. Vision and audio tokens are
    projected to ``av_concat_dim`` before fusion; the audio embedding is the mean of BEATs' tokens.
    ``forward(video, input_ids, attention_mask, idx, audio)`` takes the fbank ``audio`` ``(B, frames, mel)``
    and one caption per sample for every loss.
    """

    def __init__(
        self,
        vision_encoder: nn.Module,
        text_encoder: MedBertForMaskedLM | MedBertModel,
        audio_encoder: nn.Module,
        vision_width: int,
        vision_token_width: int,
        audio_width: int = 768,
        av_concat_dim: int = 768,
        embed_dim: int = 768,
        av_loss: AudioVisualLossConfig | None = None,
        freeze_audio: bool = True,
        **kwargs,
    ):
        super().__init__(vision_encoder, text_encoder, vision_width, embed_dim=embed_dim, **kwargs)
        self.av_loss = av_loss or AudioVisualLossConfig()
        self.av_concat_vision_proj = nn.Sequential(
            nn.Linear(vision_token_width, av_concat_dim), nn.LayerNorm(av_concat_dim)
        )
        self.audio_encoder = audio_encoder
        self.audio_proj = nn.Linear(audio_width, embed_dim)
        self.av_concat_audio_proj = nn.Sequential(
            nn.Linear(audio_width, av_concat_dim), nn.LayerNorm(av_concat_dim)
        )
        if self.av_loss.avtc or self.av_loss.avtm:
            self.av_fusion = nn.Linear(2 * embed_dim, embed_dim)
        if self.av_loss.atm:
            self.atm_head = nn.Linear(self.text_width, 2)
        if self.av_loss.avtm:
            self.avtm_head = nn.Linear(self.text_width, 2)
        for p in audio_encoder.parameters():
            p.requires_grad_(not freeze_audio)

    def encode_vision(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, pooled = super().encode_vision(video)
        return self.av_concat_vision_proj(tokens), pooled

    def encode_audio(self, fbank: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, frames, mel)`` fbank -> ``(fusion tokens (B, N, av_concat_dim), pooled (B, audio_width))``."""
        tokens = self.audio_encoder(fbank)
        return self.av_concat_audio_proj(tokens), tokens.mean(dim=1)

    def av_embedding(self, audio_proj: torch.Tensor, vision_proj: torch.Tensor) -> torch.Tensor:
        """The audio-visual embedding: ``av_fusion`` of both projections (vision's without it)."""
        if not hasattr(self, "av_fusion"):
            return vision_proj
        return self.av_fusion(torch.cat([audio_proj, vision_proj], dim=-1))

    def get_av_feat(self, video: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(audio then vision fusion tokens, L2-normalised audio-visual embedding)`` of videos
        ``(B, T, C, H, W)`` with their fbanks ``(B, frames, mel)``: what audio-visual retrieval
        compares with the captions (the original's ``audio_video`` evaluation)."""
        vision_tokens, pooled = self.encode_vision(video)
        audio_tokens, audio_pooled = self.encode_audio(audio)
        emb = self.av_embedding(self.audio_proj(audio_pooled), self.vision_proj(pooled))
        return torch.cat([audio_tokens, vision_tokens], dim=1), nn.functional.normalize(emb, dim=-1)

    def av_match_logits(
        self, av_tokens: torch.Tensor, text_tokens: torch.Tensor, text_mask: torch.Tensor
    ) -> torch.Tensor:
        """``avtm_head`` logits ``(B, 2)`` of captions fused with audio-visual tokens."""
        return self.match_logits(av_tokens, text_tokens, text_mask, head=self.avtm_head)

    def forward(self, video, input_ids, attention_mask, idx, audio=None) -> dict[str, torch.Tensor]:
        if audio is None:
            return super().forward(video, input_ids, attention_mask, idx)
        self.clamp_temperature()
        cfg, av = self.loss_cfg, self.av_loss
        vision_tokens, pooled = self.encode_vision(video)
        audio_tokens, audio_pooled = self.encode_audio(audio)
        vision_proj, audio_proj = self.vision_proj(pooled), self.audio_proj(audio_pooled)
        text = self.text_inputs(input_ids, attention_mask)
        losses = self.media_losses(
            "v", vision_tokens, vision_proj, text, idx, (cfg.vtc, cfg.vtm, cfg.mlm), self.itm_head
        )
        losses.update(
            self.media_losses(
                "a",
                audio_tokens,
                audio_proj,
                text,
                idx,
                (av.atc, av.atm, av.amlm),
                getattr(self, "atm_head", None),
            )
        )
        if av.avtc or av.avtm or av.avmlm:
            av_tokens = torch.cat([audio_tokens, vision_tokens], dim=1)
            av_proj = self.av_embedding(audio_proj, vision_proj)
            weights = (av.avtc, av.avtm, av.avmlm)
            losses.update(
                self.media_losses(
                    "av", av_tokens, av_proj, text, idx, weights, getattr(self, "avtm_head", None)
                )
            )
        losses["loss_avc"] = (
            av.avc * vtc_loss(audio_proj, vision_proj, idx, self.temp) if av.avc else audio_proj.sum() * 0
        )
        return losses


# The original renamed the class; its 1B recipes still name the old one (a KeyError there).
InternVideo2_Stage2_visual = InternVideo2_Stage2
