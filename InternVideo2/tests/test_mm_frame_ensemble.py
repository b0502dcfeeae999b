"""Frame ensembles (``eval_frame_ensemble``) of the zero-shot evaluation against hand computations.

A fake model stands in for the encoders: a frame filled with the value ``c`` embeds to the unit
vector at angle ``c`` and has one token of value ``c``; text ``t`` embeds to the unit vector at
angle ``phi[t]`` and has one token ``phi[t]``; the matching head scores ``-(c - phi)^2``. So the
cosine of a frame and a text is ``cos(c - phi)``, and every expected score below is written out
with ``math`` alone.
"""

import math
from types import SimpleNamespace

import pytest
import torch

from internvideo2.mm.config import ConfigError
from internvideo2.mm.engine import frame_ensemble
from internvideo2.mm.retrieval import aggregate_clips, retrieval_scores

FRAMES = [[0.0, 0.5], [1.0, 1.6]]  # 2 videos x 2 frames: the value each frame is filled with
PHI = [0.1, 1.2, 3.0]  # 3 captions: their angles
TXT2VID = [0, 1, 1]


class AngleModel(torch.nn.Module):
    def get_vid_feat(self, video):
        value = video[:, :, 0, 0, 0].mean(1)  # a clip's value: the mean of its frames'
        emb = torch.stack([value.cos(), value.sin()], dim=-1)
        return value[:, None, None], emb

    def get_txt_feat(self, ids, mask):
        phi = torch.tensor(PHI)[ids[:, 0]]
        return phi[:, None, None], torch.stack([phi.cos(), phi.sin()], dim=-1)

    def match_logits(self, vision_tokens, text_tokens, mask):
        match = -((vision_tokens - text_tokens) ** 2)[:, 0, 0]
        return torch.stack([-match, match], dim=1)


def _evaluate(ensemble: str, k_test: int = 3):
    video = torch.tensor(FRAMES)[:, :, None, None, None].expand(2, 2, 3, 4, 4)
    batches = [{"video": video, "valid": torch.tensor([True, True]), "index": torch.tensor([0, 1])}]
    dataset = SimpleNamespace(
        texts=["0", "1", "2"], txt2vid=TXT2VID, vid2txt=[[0], [1, 2]], answers=[None] * 2
    )

    def tokenize(texts):
        ids = torch.tensor([[int(t)] for t in texts])
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    scores, _ = retrieval_scores(AngleModel(), dataset, batches, tokenize, "cpu", k_test, True, ensemble)
    return scores


def test_per_frame_ensembles_match_hand_computed_scores():
    for method, combine in (
        ("mean", lambda s: sum(s) / len(s)),
        ("max", max),
        ("lse", lambda s: math.log(sum(math.exp(x) for x in s))),
    ):
        scores = _evaluate(method)
        itc, itm = scores["itc"][0], scores["itm"][0]
        for v, frames in enumerate(FRAMES):
            for t, phi in enumerate(PHI):
                # dual encoder: mean of the per-frame cosines, whatever the method (the original's get_sim)
                assert itc[v, t].item() == pytest.approx(sum(math.cos(c - phi) for c in frames) / 2, abs=1e-6)
                expected = combine([-((c - phi) ** 2) for c in frames])
                assert itm[v, t].item() == pytest.approx(expected, abs=1e-5), (method, v, t)
        assert torch.equal(scores["itm"][1], itm.T)  # all 3 x 2 pairs are in every top-k


def test_concat_scores_the_whole_clip_once_and_top_k_keeps_minus_100():
    scores = _evaluate("concat", k_test=1)
    itc, itm_v2t, itm_t2v = scores["itc"][0], *scores["itm"]
    for v, frames in enumerate(FRAMES):
        clip = sum(frames) / 2
        for t, phi in enumerate(PHI):
            assert itc[v, t].item() == pytest.approx(math.cos(clip - phi), abs=1e-6)
    # top-1 by cosine: video 0 -> caption 0 (0.25 vs 0.1), video 1 -> caption 1 (1.3 vs 1.2)
    expected_v2t = [[-((0.25 - 0.1) ** 2), -100, -100], [-100, -((1.3 - 1.2) ** 2), -100]]
    torch.testing.assert_close(itm_v2t, torch.tensor(expected_v2t))
    # captions 0 and 1 pick clips 0 and 1; caption 2 (3.0): clip 1 (1.3) is nearer than 0.25
    expected_t2v = [[-((0.25 - 0.1) ** 2), -100], [-100, -((1.3 - 1.2) ** 2)], [-100, -((1.3 - 3.0) ** 2)]]
    torch.testing.assert_close(itm_t2v, torch.tensor(expected_t2v))


def test_aggregate_clips_and_config_key_errors():
    scores = torch.tensor([[1.0, -2.0], [3.0, 0.0]])
    assert aggregate_clips(scores, "mean").tolist() == [2.0, -1.0]
    assert aggregate_clips(scores, "max").tolist() == [3.0, 0.0]
    assert aggregate_clips(scores, "lse")[0].item() == pytest.approx(math.log(math.e + math.e**3))
    with pytest.raises(ValueError, match="median"):
        aggregate_clips(scores, "median")
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"evaluation": {"eval_frame_ensemble": "avg"}, "config_file": "my_cfg.py"})
    with pytest.raises(ConfigError, match=r"eval_frame_ensemble.*my_cfg\.py"):
        frame_ensemble(cfg)
