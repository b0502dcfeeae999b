"""InternVid's ``Aesthetic_Score``: the LAION aesthetic predictor on CLIP image embeddings of frames.

Use it as an ``internvid score`` plugin (the column defaults to ``Aesthetic_Score``)::

    internvid score cut.jsonl aes.jsonl --clips-dir clips \\
        --scorer internvid.aesthetic:make_aesthetic_scorer \\
        --scorer-arg clip=/models/clip-vit-large-patch14 \\
        --scorer-arg predictor=/models/sac+logos+ava1-l14-linearMSE.pth

Both released heads load: the MLP of christophschuhmann/improved-aesthetic-predictor
(``sac+logos+ava1-l14-linearMSE.pth``, keys ``layers.{0,2,4,6,7}.{weight,bias}``) and the linear
head of LAION-AI/aesthetic-predictor (``sa_0_4_vit_l_14_linear.pth``, keys ``weight``, ``bias``),
the one InternVid's README links. Both take L2-normalised CLIP image embeddings (768-d for
ViT-L/14); the input width here follows the CLIP folder's projection dim.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .plugins import PluginError

CLIP_DIR_ENV = "INTERNVID_CLIP_DIR"
PREDICTOR_ENV = "INTERNVID_AESTHETIC_PREDICTOR"
FIELD = "Aesthetic_Score"


class AestheticPredictor(nn.Module):
    """The improved-aesthetic-predictor MLP: five linear layers and no activations (as released)."""

    def __init__(self, embed_dim: int = 768):
        super().__init__()
        # Dropout slots are kept so the Linear layers sit at the released indices 0, 2, 4, 6, 7.
        self.layers = nn.Sequential(
            nn.Linear(embed_dim, 1024),
            nn.Dropout(0.2),
            nn.Linear(1024, 128),
            nn.Dropout(0.2),
            nn.Linear(128, 64),
            nn.Dropout(0.1),
            nn.Linear(64, 16),
            nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise PluginError(f"cannot read aesthetic predictor {path}: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise PluginError(f"aesthetic predictor {path} is not a state dict of tensors")
    return state


def _mismatches(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], limit: int = 3
) -> list[str]:
    """Readable differences between a file's keys/shapes and the model's, at most ``limit`` of each kind."""
    missing = [k for k in expected if k not in state][:limit]
    unexpected = [k for k in state if k not in expected][:limit]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ][:limit]
    return (
        [f"missing {k}" for k in missing]
        + [f"unexpected {k}" for k in unexpected]
        + [f"shape {s}" for s in shapes]
    )


def load_predictor(path: str | os.PathLike, embed_dim: int = 768) -> nn.Module:
    """The released head in ``path`` (MLP or linear, told apart by its keys), in eval mode.

    Loading is strict: a file whose keys or shapes do not fit raises :class:`PluginError` naming
    the first mismatched keys and shapes.
    """
    path = Path(path)
    state = _read_state_dict(path)
    model = nn.Linear(embed_dim, 1) if "weight" in state else AestheticPredictor(embed_dim)
    problems = _mismatches(state, model.state_dict())
    if problems:
        raise PluginError(
            f"aesthetic predictor {path} does not fit a {embed_dim}-d {type(model).__name__}: "
            + "; ".join(problems)
        )
    model.load_state_dict(state)
    return model.eval()


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm; all-zero rows stay zero (the release divides those by 1)."""
    norm = x.norm(dim=-1, keepdim=True)
    return x / torch.where(norm > 0, norm, torch.ones_like(norm))


def _load_clip(folder: Path):
    """CLIP's vision tower with its projection, and its image processor, from a local folder."""
    from transformers import AutoConfig, CLIPImageProcessor, CLIPVisionModelWithProjection

    if not folder.is_dir():
        raise PluginError(f"CLIP folder {folder} does not exist (set clip=DIR or ${CLIP_DIR_ENV})")
    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        if config.model_type == "clip":
            # A whole-CLIP folder keeps the projection width at the top level; the vision
            # sub-config's own projection_dim is only a default.
            vision = config.vision_config
            config = type(vision)(**{**vision.to_dict(), "projection_dim": config.projection_dim})
        model = CLIPVisionModelWithProjection.from_pretrained(folder, config=config, local_files_only=True)
        processor = CLIPImageProcessor.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise PluginError(f"cannot load CLIP from {folder}: {exc}") from exc
    return model.eval(), processor


class AestheticScorer:
    """Mean predicted aesthetic score of a clip's frames; the caption is not used."""

    field = FIELD

    def __init__(
        self,
        clip_dir: str | os.PathLike,
        predictor: str | os.PathLike,
        device: str = "cpu",
        batch_size: int = 32,
    ):
        self.clip, self.processor = _load_clip(Path(clip_dir))
        width = self.clip.config.projection_dim
        try:
            self.head = load_predictor(predictor, width)
        except PluginError as exc:
            raise PluginError(f"{exc} (CLIP {clip_dir} gives {width}-d embeddings)") from exc
        self.device = torch.device(device)
        self.clip.to(self.device)
        self.head.to(self.device)
        self.batch_size = batch_size

    @torch.no_grad()
    def embed(self, frames: np.ndarray) -> torch.Tensor:
        """Unit CLIP image embeddings of ``(T, H, W, 3)`` uint8 RGB frames, ``batch_size`` at a time."""
        out = []
        for start in range(0, len(frames), self.batch_size):
            batch = list(frames[start : start + self.batch_size])
            pixels = self.processor(images=batch, return_tensors="pt")["pixel_values"]
            out.append(self.clip(pixel_values=pixels.to(self.device)).image_embeds.float())
        return unit_rows(torch.cat(out))

    @torch.no_grad()
    def score_frames(self, frames: np.ndarray) -> np.ndarray:
        """One aesthetic score per frame."""
        return self.head(self.embed(frames)).squeeze(-1).cpu().double().numpy()

    def score(self, frames: np.ndarray, texts: Sequence[str]) -> list[float]:
        return [float(self.score_frames(frames).mean())] * len(texts)


def make_aesthetic_scorer(
    clip: str | None = None,
    predictor: str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> AestheticScorer:
    """Factory for ``--scorer``; ``clip``/``predictor`` default to ``$INTERNVID_CLIP_DIR`` and
    ``$INTERNVID_AESTHETIC_PREDICTOR``."""
    clip = clip or os.environ.get(CLIP_DIR_ENV)
    predictor = predictor or os.environ.get(PREDICTOR_ENV)
    if not clip or not predictor:
        raise PluginError(
            f"the aesthetic scorer needs clip=DIR (or ${CLIP_DIR_ENV}) and predictor=FILE.pth "
            f"(or ${PREDICTOR_ENV})"
        )
    return AestheticScorer(clip, predictor, device, batch_size)
