"""Stage-2 pretraining of InternVideo2-1B: stage-1 video encoder + pretrained BERT-large."""

import os as _os

from configs.stage2_1B import *  # noqa: F403

_MODEL_PATH = _os.environ.get("INTERNVIDEO2_MODEL_PATH", "models")

pretrained_path = ""  # no full stage-2 checkpoint: the parts below start from their own weights
model["vision_encoder"]["pretrained"] = f"{_MODEL_PATH}/1B_stage1.pth"  # noqa: F405
model["text_encoder"] = {  # noqa: F405
    "name": "bert_large",
    "pretrained": f"{_MODEL_PATH}/bert-large-uncased",
    "config": "configs/config_bert_large.json",
    "d_model": 1024,
    "fusion_layer": 19,
    "load_text_weights": True,
}
