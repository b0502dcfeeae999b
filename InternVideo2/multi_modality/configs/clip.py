"""InternVideo2 CLIP settings (the original's ``scripts/pretraining/clip/*/config.py``).

``clip_size`` picks the video encoder (S14/B14/L14 with a MobileCLIP-B text tower, or 1B/6B with
InternVL's LLaMA text tower); the recipes below set it.
"""

import os as _os

from configs.data import *  # noqa: F403
from configs.inputs import *  # noqa: F403

_MODEL_PATH = _os.environ.get("INTERNVIDEO2_MODEL_PATH", "models")

train_file = "${available_corpus.webvid}"
test_file = {"msrvtt_1k_test": "${available_corpus.msrvtt_1k_test}"}
test_types = ["msrvtt_1k_test"]
num_workers = 6

num_frames = 8
num_frames_test = 8
batch_size = 64
batch_size_test = 4
max_txt_l = 77


clip_size = "B14"
model = {
    "model_cls": "InternVideo2_CLIP_small",
    "vision_encoder": {
        "name": "internvideo2_clip_vision_${clip_size}",
        "align_dim": 512,
        "arch": {
            "num_frames": "${num_frames}",
            "use_flash_attn": False,
            "use_fused_rmsnorm": False,
            "use_fused_mlp": False,
        },
    },
    "text_encoder": {"name": "mobileclip_b", "tokenizer_path": f"{_MODEL_PATH}/clip_tokenizer"},
    "temp": 1 / 100.0,
    "temp_min": 1 / 100.0,
    "freeze_vision": True,
    "open_vision_clip_projector": True,
    "freeze_text": True,
    "open_text_projection": False,
}

optimizer = {
    "opt": "adamw",
    "lr": 4e-4,
    "opt_betas": [0.9, 0.98],
    "weight_decay": 0.2,
    "max_grad_norm": -1,
    "different_lr": {"enable": False, "module_names": [], "lr": 1e-3},
}
scheduler = {"epochs": 5, "min_lr_multi": 0.01, "warmup_epochs": 0.6}
evaluation = {"eval_frame_ensemble": "concat", "k_test": 128, "eval_x_only": True}

use_half_precision = True
use_bf16 = True
deepspeed = {"enable": True, "stage": 1}  # ZeRO-1, as the original
output_dir = None
pretrained_path = ""
auto_resume = True
log_freq = 100
seed = 42
max_iters_per_epoch = None
