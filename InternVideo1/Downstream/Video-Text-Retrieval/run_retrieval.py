"""Video-text retrieval (R@1/5/10 both ways) with ViCLIP or the multi-modality model."""

import argparse

from internvideo1.downstream.retrieval import add_retrieval_args, run_retrieval

if __name__ == "__main__":
    run_retrieval(
        add_retrieval_args(argparse.ArgumentParser("InternVideo1 video-text retrieval")).parse_args()
    )
