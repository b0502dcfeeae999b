"""CLIP alignment of the InternVideo2-1B video encoder with InternVL's LLaMA text tower."""

import os as _os

from configs.clip import *  # noqa: F403

_MODEL_PATH = _os.environ.get("INTERNVIDEO2_MODEL_PATH", "models")

clip_size = "1B"
max_txt_l = 80  # the LLaMA tokenizer's "summarize:"-prefixed 80-token inputs
model["model_cls"] = "InternVideo2_CLIP"  # noqa: F405
model["text_encoder"] = {  # noqa: F405
    "llama_path": f"{_MODEL_PATH}/chinese_alpaca_lora_7b",
    "tokenizer_path": f"{_MODEL_PATH}/chinese_alpaca_lora_7b",
    "use_lora": True,
    "prompt": "summarize:",
}
model["open_text_lora"] = False  # noqa: F405
