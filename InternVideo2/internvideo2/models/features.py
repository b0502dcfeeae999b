"""Feature extraction: the pooled clip embedding and the patch tokens of a video, in one call.

Five lines from a released checkpoint::

    import timm, torch, internvideo2
    from internvideo2.models import extract_features, load_checkpoint
    model = timm.create_model("internvideo2_1B_patch14_224", num_classes=400, num_frames=8)
    load_checkpoint(model, "1B_ft_k710_ft_k400_f8.pth")
    pooled, patches = extract_features(model, video)  # video: (B, 3, 8, 224, 224), ImageNet-normalised
"""

from __future__ import annotations

import torch

from .backbone import InternVideo2Encoder


@torch.no_grad()
def extract_features(model: InternVideo2Encoder, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pooled (B, clip_embed_dim), patch tokens (B, T' * H' * W', embed_dim))`` of ``video``.

    ``pooled`` is the attention-pooled ``clip_projector`` output (what the classifier head and
    the CLIP alignment read); the patch tokens are the final hidden states without the class
    token, ordered ``(t, h, w)``. Runs in eval mode (no drop path) and restores the model's mode.
    """
    if not isinstance(model, InternVideo2Encoder):
        raise TypeError(f"extract_features needs an InternVideo2 encoder, got {type(model).__name__}")
    was_training = model.training
    model.eval()
    try:
        tokens, _ = model.run_blocks(model.embed(video))
        return model.clip_projector(tokens), tokens[:, 1:]
    finally:
        model.train(was_training)
