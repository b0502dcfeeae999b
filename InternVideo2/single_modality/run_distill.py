"""Distil the InternVideo2-1B model into S14/B14/L14 students. See README.md."""

import argparse

from internvideo2.engine.pretrain_pipeline import add_pretrain_args, run_pretraining


def main(argv=None) -> list:
    parser = argparse.ArgumentParser("InternVideo2 distillation", allow_abbrev=False)
    return run_pretraining(add_pretrain_args(parser, distill=True).parse_args(argv))


if __name__ == "__main__":
    main()
