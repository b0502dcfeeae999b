"""Linear (or, with --open_clip_projector, attentive) probing of a frozen InternVideo2. See README.md."""

from internvideo2.engine.finetune import build_probing_model, load_pretrained, probing_parser
from ivtools.train.classification import run_classification


def main(argv=None) -> dict:
    return run_classification(probing_parser().parse_args(argv), build_probing_model, load_pretrained)


if __name__ == "__main__":
    main()
