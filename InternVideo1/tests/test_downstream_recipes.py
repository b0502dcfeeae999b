"""Every downstream / multi-modality recipe script launches an existing entry point with arguments it accepts."""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from internvideo1.downstream.action_recognition import parse_action_recognition_args
from internvideo1.downstream.localization_engine import add_localization_args
from internvideo1.downstream.open_set import add_open_set_args
from internvideo1.downstream.retrieval import add_retrieval_args
from internvideo1.downstream.video_qa import add_qa_args
from internvideo1.downstream.zero_shot import add_zero_shot_args
from internvideo1.pretrain.multimodal import add_multimodal_args
from internvideo1.pretrain.videomae import add_videomae_linear_args

ROOT = Path(__file__).resolve().parents[1]


def _parser(add):
    return lambda argv: add(argparse.ArgumentParser()).parse_args(argv)


RECIPES = {
    "Downstream/Action-Recognition/finetune_k400.sh": parse_action_recognition_args,
    "Downstream/Action-Recognition/zeroshot_k400.sh": _parser(add_zero_shot_args),
    "Downstream/Temporal-Action-Localization/thumos14.sh": _parser(add_localization_args),
    "Downstream/Video-QA/finetune_msrvttqa.sh": _parser(add_qa_args),
    "Downstream/Video-Text-Retrieval/zeroshot_msrvtt.sh": _parser(add_retrieval_args),
    "Downstream/Open-Set-Action-Recognition/ucf101_vs_hmdb51.sh": _parser(add_open_set_args),
    "Pretrain/Multi-Modalities-Pretraining/pretrain_mm_b16.sh": _parser(add_multimodal_args),
    "Pretrain/scripts/videomae_vit_b_k400_linear.sh": _parser(add_videomae_linear_args),
}


def _script_arguments(path: Path) -> list[str]:
    text = path.read_text()
    body = text[text.index("-- \\") + 4 :].replace("\\\n", " ").replace('"$@"', "")
    return shlex.split(re.sub(r'"\$[^"]*"', "PLACEHOLDER", body))


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_arguments_parse(recipe):
    path = ROOT / recipe
    # The entry point the recipe launches exists where the recipe says.
    launched = re.search(r"((?:\.\./)*)(run_\w+\.py)", path.read_text())
    assert (path.parent / launched.group(1) / launched.group(2)).is_file()
    args = RECIPES[recipe](_script_arguments(path))
    assert vars(args)
