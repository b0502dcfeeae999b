"""Command-line arguments of the pretraining entry points (the original's names and defaults)."""

from .pretrain_args import add_pretrain_args, json_dict

__all__ = ["add_pretrain_args", "json_dict"]
