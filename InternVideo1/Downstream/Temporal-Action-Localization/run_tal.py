"""Temporal action localization over pre-extracted features (anchor-free, ActionFormer-style)."""

import argparse

from internvideo1.downstream.localization_engine import add_localization_args, run_localization

if __name__ == "__main__":
    run_localization(
        add_localization_args(
            argparse.ArgumentParser("InternVideo1 temporal action localization")
        ).parse_args()
    )
