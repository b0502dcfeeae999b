"""Masked video pretraining of InternVideo2 with CLIP and MAE teachers. See README.md."""

import argparse

from internvideo2.engine.pretrain_pipeline import add_pretrain_args, run_pretraining


def main(argv=None) -> list:
    parser = argparse.ArgumentParser("InternVideo2 pretraining", allow_abbrev=False)
    return run_pretraining(add_pretrain_args(parser, distill=False).parse_args(argv))


if __name__ == "__main__":
    main()
