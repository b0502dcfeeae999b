"""Fine-tune (or, with --eval, test) an InternVideo2 video classifier. See README.md."""

from internvideo2.engine.finetune import build_model, finetuning_parser, load_pretrained
from ivtools.train.classification import run_classification


def main(argv=None) -> dict:
    return run_classification(finetuning_parser().parse_args(argv), build_model, load_pretrained)


if __name__ == "__main__":
    main()
