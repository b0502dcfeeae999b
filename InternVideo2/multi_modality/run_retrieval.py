"""Zero-shot video-text retrieval: ``python run_retrieval.py CONFIG.py [key=value ...]``."""

import argparse
import json
from pathlib import Path

from internvideo2.mm.config import load_config
from internvideo2.mm.engine import run_retrieval

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("config", help="a Python config file (see scripts/evaluation/)")
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="key.sub=value overrides")
    args = parser.parse_args()
    results = run_retrieval(load_config(args.config, args.overrides, root=Path(__file__).resolve().parent))
    print(json.dumps(results, indent=2))
