"""Text encoders the recipes pick with ``text_enc`` (the original's ``TextEncoders``).

``pretrained`` is a local Hugging Face BERT folder (tokenizer files, and weights that
``load_text_weights=True`` loads); ``config`` the BERT architecture, relative to this folder's parent.
"""

import os as _os

_MODEL = _os.environ.get("INTERNVIDEO2_MODEL_PATH", "models")

TextEncoders = {
    "bert": {
        "name": "bert_base",
        "pretrained": f"{_MODEL}/bert-base-uncased",
        "config": "configs/config_bert.json",
        "d_model": 768,
        "fusion_layer": 9,
    },
    "bert_large": {
        "name": "bert_large",
        "pretrained": f"{_MODEL}/bert-large-uncased",
        "config": "configs/config_bert_large.json",
        "d_model": 1024,
        "fusion_layer": 19,
    },
}
