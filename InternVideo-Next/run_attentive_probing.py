"""InternVideo-Next attentive probing (frozen encoder) on action recognition."""

import argparse

from internvideo_next.engine.classification import add_model_args, build_model, load_pretrained
from ivtools.train.classification import add_classification_args, run_classification

if __name__ == "__main__":
    parser = add_model_args(add_classification_args(argparse.ArgumentParser(description=__doc__)), "probe")
    run_classification(parser.parse_args(), build_model, load_pretrained)
