"""Stage-2 video-text pretraining: ``python run_pretrain.py CONFIG.py [key=value ...]``."""

import argparse
from pathlib import Path

from internvideo2.mm.config import load_config
from internvideo2.mm.engine import run_pretrain

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="a Python config file (see configs/ and scripts/)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="key.sub=value overrides")
    args = parser.parse_args()
    run_pretrain(load_config(args.config, args.overrides, root=Path(__file__).resolve().parent))
