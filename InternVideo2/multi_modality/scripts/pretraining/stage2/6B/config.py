"""Stage-2 pretraining of the audio-visual InternVideo2-6B (BEATs audio, frozen)."""

import os as _os

from configs.stage2_1B import *  # noqa: F403

_MODEL_PATH = _os.environ.get("INTERNVIDEO2_MODEL_PATH", "models")

train_file = "${available_corpus.pretrain_example_data_6B}"
inputs["max_txt_l"]["audio_video"] = "${max_txt_l}"  # noqa: F405
inputs["batch_size"]["audio_video"] = "${batch_size}"  # noqa: F405
inputs["batch_size_test"]["audio_video"] = "${batch_size_test}"  # noqa: F405
model["model_cls"] = "InternVideo2_Stage2_audiovisual"  # noqa: F405
model["vision_encoder"].update(  # noqa: F405
    name="pretrain_internvideo2_6b_patch14_224", d_model=3200, pretrained=f"{_MODEL_PATH}/6B_stage1.pth"
)
model["audio_encoder"] = {"name": "beats", "d_model": 768, "audio_model_path": f"{_MODEL_PATH}/beats.pth"}  # noqa: F405
model["contra_dim"] = 768  # noqa: F405
model["av_concat_dim"] = 768  # noqa: F405
model["freeze_audio"] = True  # noqa: F405
criterion["loss_weight"].update(avtc=1.0, avtm=1.0, avmlm=1.0)  # noqa: F405
