"""``ivtools-ckpt``: inspect, convert and edit checkpoints from the shell.

Every command that writes reads the input, unwraps it (``--key``, default ``model|module|state_dict``)
and writes a plain state dict in the format the output suffix names. Examples::

    ivtools-ckpt inspect ckpt.pth --match 'blocks.0.*'
    ivtools-ckpt convert ckpt.pth ckpt.safetensors
    ivtools-ckpt strip-prefix ckpt.pth out.pth module.
    ivtools-ckpt add-prefix vit.pth out.pth vision_encoder. --match 'blocks.*'
    ivtools-ckpt consolidate-zero output/ckpt_dir fp32.pth
    ivtools-ckpt interpolate-pos-embed ckpt.pth out.pth --old-grid 8,16,16 --new-grid 16,16,16
    ivtools-ckpt convert-model                    # list model-specific conversions
    ivtools-ckpt convert-model NAME in.pth out.pth --opt num_classes=400
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .edit import add_prefix, format_table, select_keys, strip_prefix
from .io import DEFAULT_WRAPPER_KEYS, load_state_dict_file, save_state_dict_file, unwrap_state_dict
from .pos_embed import interpolate_pos_embed
from .registry import get_conversion, list_conversions
from .zero import consolidate_zero_checkpoint

PROG = "ivtools-ckpt"


def _load(args: argparse.Namespace) -> dict:
    return unwrap_state_dict(load_state_dict_file(args.input), args.key)


def _save(state_dict: Mapping, args: argparse.Namespace) -> None:
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    save_state_dict_file(state_dict, out)
    print(f"wrote {len(state_dict)} tensors to {out}")


def _grid(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"grid must be comma-separated integers like 8,16,16, got {text!r}"
        ) from None


def _option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--opt needs key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, ast.literal_eval(value)  # numbers, booleans, tuples; anything else stays text
    except (ValueError, SyntaxError):
        return key, value


def cmd_inspect(args: argparse.Namespace) -> None:
    raw = load_state_dict_file(args.input)
    state_dict = unwrap_state_dict(raw, args.key)
    if isinstance(raw, Mapping) and raw.keys() != state_dict.keys():
        print(f"{args.input}: wrapper with entries {list(raw.keys())}")
    selected = select_keys(state_dict, args.match)
    if not selected:
        raise KeyError(f"{args.input}: no key matches {args.match!r}")
    print(format_table(selected, depth=args.depth))


def cmd_convert(args: argparse.Namespace) -> None:
    _save(_load(args), args)


def cmd_strip_prefix(args: argparse.Namespace) -> None:
    state_dict = _load(args)
    out = strip_prefix(state_dict, args.prefix, args.match)
    changed = sum(a != b for a, b in zip(state_dict, out))
    print(f"stripped {args.prefix!r} from {changed} of {len(out)} keys")
    _save(out, args)


def cmd_add_prefix(args: argparse.Namespace) -> None:
    state_dict = _load(args)
    out = add_prefix(state_dict, args.prefix, args.match)
    changed = sum(a != b for a, b in zip(state_dict, out))
    print(f"added {args.prefix!r} to {changed} of {len(out)} keys")
    _save(out, args)


def cmd_consolidate_zero(args: argparse.Namespace) -> None:
    _save(consolidate_zero_checkpoint(args.input, tag=args.tag, exclude_frozen=args.exclude_frozen), args)


def cmd_interpolate_pos_embed(args: argparse.Namespace) -> None:
    state_dict = _load(args)
    if args.name not in state_dict:
        raise KeyError(f"{args.input}: no key {args.name!r}")
    before = state_dict[args.name]
    state_dict[args.name] = interpolate_pos_embed(before, args.extra_tokens, args.old_grid, args.new_grid)
    print(f"{args.name}: {list(before.shape)} -> {list(state_dict[args.name].shape)}")
    _save(state_dict, args)


def cmd_convert_model(args: argparse.Namespace) -> None:
    if args.name is None:
        conversions = list_conversions()
        if not conversions:
            print("no conversions registered")
        for name, help_text in conversions.items():
            print(f"{name:30s} {help_text}")
        return
    if args.input is None or args.output is None:
        raise ValueError("convert-model NAME needs IN and OUT")
    conversion = get_conversion(args.name)
    _save(conversion(_load(args), **dict(args.opt)), args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    key_help = f"wrapper keys tried in order to find the weights (default {'|'.join(DEFAULT_WRAPPER_KEYS)})"

    def command(
        name: str, fn, help_text: str, writes: bool = True, io: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(fn=fn)
        if io:
            p.add_argument("input", help="checkpoint file or folder")
            if writes:
                p.add_argument("output", help="output file; its suffix picks the format")
        if writes:
            p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
        p.add_argument("--key", default="|".join(DEFAULT_WRAPPER_KEYS), help=key_help)
        return p

    p = command("inspect", cmd_inspect, "print keys, shapes, dtypes and parameter counts", writes=False)
    p.add_argument("--match", help="only keys matching this glob, e.g. 'blocks.0.*'")
    p.add_argument("--depth", type=int, default=1, help="dot-separated key parts to group counts by")

    command("convert", cmd_convert, "rewrite in another format (.pth/.pt/.bin/.safetensors)")

    for name, fn, verb in (
        ("strip-prefix", cmd_strip_prefix, "remove"),
        ("add-prefix", cmd_add_prefix, "add"),
    ):
        p = command(name, fn, f"{verb} a key prefix such as module. or vision_encoder.")
        p.add_argument("prefix")
        p.add_argument("--match", help="only edit keys matching this glob")

    p = command(
        "consolidate-zero", cmd_consolidate_zero, "merge a DeepSpeed ZeRO checkpoint into one fp32 file"
    )
    p.add_argument("--tag", help="step folder to use instead of the one 'latest' names")
    p.add_argument("--exclude-frozen", action="store_true", help="leave out parameters that were frozen")

    p = command("interpolate-pos-embed", cmd_interpolate_pos_embed, "resize a position-embedding table")
    p.add_argument("--name", default="pos_embed", help="key of the table (default pos_embed)")
    p.add_argument("--extra-tokens", type=int, default=1, help="leading rows kept as they are (class tokens)")
    p.add_argument("--old-grid", type=_grid, required=True, help="T,H,W (or H,W) of the table in the file")
    p.add_argument("--new-grid", type=_grid, required=True, help="T,H,W (or H,W) wanted")

    p = command(
        "convert-model", cmd_convert_model, "run a model-specific conversion; no NAME lists them", io=False
    )
    p.add_argument("name", nargs="?")
    p.add_argument("input", nargs="?")
    p.add_argument("output", nargs="?")
    p.add_argument("--opt", type=_option, action="append", default=[], metavar="KEY=VALUE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``ivtools-ckpt``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        args.fn(args)
    except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
