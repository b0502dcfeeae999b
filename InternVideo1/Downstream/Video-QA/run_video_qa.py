"""Video question answering: zero-shot multiple choice, or an open-ended answer classifier."""

import argparse

from internvideo1.downstream.video_qa import add_qa_args, run_video_qa

if __name__ == "__main__":
    run_video_qa(add_qa_args(argparse.ArgumentParser("InternVideo1 video QA")).parse_args())
