"""Open-set action recognition by uncertainty-based rejection (evidential / max-softmax)."""

import argparse

from internvideo1.downstream.open_set import add_open_set_args, run_open_set

if __name__ == "__main__":
    run_open_set(add_open_set_args(argparse.ArgumentParser("InternVideo1 open-set recognition")).parse_args())
