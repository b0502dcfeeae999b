"""Rank sentences for a video: ``python run_demo.py CONFIG.py --video V.mp4 --text "..." --text "..."``."""

import argparse

from internvideo2.mm.api import VideoTextRetriever

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="a multi-modality config (model and input settings)")
    parser.add_argument("--checkpoint", help="released or trained checkpoint (.pt/.pth)")
    parser.add_argument("--video", required=True)
    parser.add_argument("--text", action="append", required=True, help="a candidate sentence (repeat)")
    parser.add_argument("--itm", action="store_true", help="sort by the stage-2 matching head")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("overrides", nargs="*", help="key.sub=value config overrides")
    args = parser.parse_args()
    retriever = VideoTextRetriever.from_config(args.config, args.checkpoint, args.overrides, args.device)
    for text, score, prob in retriever.rank(args.video, args.text, use_itm=args.itm):
        print(f"{prob:7.4f}  {score:+.4f}  {text}")
