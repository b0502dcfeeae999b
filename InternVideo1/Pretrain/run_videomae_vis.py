"""VideoMAE reconstruction pictures (the original's ``run_mae_vis.py``)."""

import argparse

from internvideo1.pretrain.mae_vis import add_mae_vis_args, run_mae_vis

if __name__ == "__main__":
    parser = add_mae_vis_args(argparse.ArgumentParser("VideoMAE reconstruction pictures"))
    written = run_mae_vis(parser.parse_args())
    print(f"wrote {len(written)} pictures to {written[0].parent}")
