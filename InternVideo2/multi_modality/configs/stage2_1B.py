"""InternVideo2-1B stage-2 settings (the original's ``scripts/pretraining/stage2/1B/config.py``)."""

import os as _os

from configs.data import *  # noqa: F403
from configs.inputs import *  # noqa: F403
from configs.model import *  # noqa: F403

_MODEL_PATH = _os.environ.get("INTERNVIDEO2_MODEL_PATH", "models")

# ========================= data ==========================
train_file = "${available_corpus.pretrain_example_data_1B}"
test_file = {"msrvtt_1k_test": "${available_corpus.msrvtt_1k_test}"}
test_types = ["msrvtt_1k_test"]
num_workers = 6

# ========================= input ==========================
num_frames = 4
num_frames_test = 4
batch_size = 64
batch_size_test = 4
max_txt_l = 32


# ========================= model ==========================
text_enc = "bert_large"
model = {
    "model_cls": "InternVideo2_Stage2",
    "vision_encoder": {
        "name": "pretrain_internvideo2_1b_patch14_224",
        "num_frames": "${num_frames}",
        "d_model": 1408,
        "clip_embed_dim": 768,
        "pretrained": "",
        "video_mask_ratio": 0.8,
        "image_mask_ratio": 0.5,
        # keyword arguments of InternVideo2Stage2Vision beyond the 1B defaults
        "arch": {"use_flash_attn": False, "use_fused_rmsnorm": False, "use_fused_mlp": False},
    },
    "text_encoder": "${TextEncoders[${text_enc}]}",
    "multimodal": {"enable": True},
    "embed_dim": 512,
    "temp": 0.07,
}

criterion = {
    "loss_weight": {"vtc": 1.0, "mlm": 1.0, "vtm": 1.0},
    "vtm_hard_neg": True,
    "mlm_masking_prob": 0.5,
}

optimizer = {
    "opt": "adamw",
    "lr": 5e-5,
    "opt_betas": [0.9, 0.98],
    "weight_decay": 0.05,
    "max_grad_norm": 3.0,
    "different_lr": {"enable": False, "module_names": [], "lr": 1e-3},
}
scheduler = {"epochs": 10, "min_lr_multi": 0.01, "warmup_epochs": 1}

evaluation = {"eval_frame_ensemble": "concat", "k_test": 128, "eval_x_only": False}

use_half_precision = True
use_bf16 = True
deepspeed = {"enable": True, "stage": 1}  # ZeRO-1, as the original
gradient_checkpointing = True
mode = "pt"

# ========================= others ==========================
output_dir = None
pretrained_path = f"{_MODEL_PATH}/InternVideo2-stage2_1b-224p-f4.pt"
auto_resume = True
log_freq = 100
seed = 42
max_iters_per_epoch = None
