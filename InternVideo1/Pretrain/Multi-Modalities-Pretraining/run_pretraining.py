"""InternVideo1 multi-modality pretraining (VideoMAE + CLIP-video with cross-model attention)."""

import argparse

from internvideo1.pretrain.multimodal import add_multimodal_args, run_multimodal_pretraining

if __name__ == "__main__":
    parser = add_multimodal_args(argparse.ArgumentParser("InternVideo1 multi-modality pretraining"))
    run_multimodal_pretraining(parser.parse_args())
