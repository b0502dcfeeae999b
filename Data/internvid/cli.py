"""``internvid``: build and use an InternVid-style corpus from the shell.

Typical order::

    internvid validate InternVid-10M-FLT.jsonl
    internvid cut InternVid-10M-FLT.jsonl --source-dir videos --out-dir clips --workers 8 \\
        --download-cmd "yt-dlp -f mp4 -o {out} https://youtu.be/{youtube_id}" --output cut.jsonl
    internvid score cut.jsonl scored.jsonl --clips-dir clips --scorer mypkg.viclip:make_scorer
    internvid filter scored.jsonl kept.jsonl --min ViCLIP_Score=0.25 --min-duration 1 --min-height 360 --clips-dir clips
    internvid dedup kept.jsonl dedup.jsonl --threshold 0.5 --score-field ViCLIP_Score
    internvid convert dedup.jsonl anno.json --to internvideo2
    internvid shard dedup.jsonl --clips-dir clips --pattern shards/internvid-%06d.tar
    internvid instruct convert videochat_instruct_11k.json sft.json --to conversations

Every command that reads rows reports each bad row as ``file:line: reason``. ``--on-error fail``
(the default) lists them all and exits with status 1 without writing outputs; ``--on-error
reject --rejects bad.jsonl`` writes them there and carries on with the good rows.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from . import captioning, convert, cutting, instruction, plugins, scoring, selection, shards
from .jsonio import BadRowsError, RowErrors, write_jsonl
from .manifest import TRAINING_MIN_CAPTION_WORDS, read_manifest, write_manifest

PROG = "internvid"


# ----------------------------------------------------------------------------- shared options


def _add_rows_options(parser: argparse.ArgumentParser, manifest: bool = True) -> None:
    parser.add_argument(
        "--on-error", choices=("fail", "reject"), default="fail", help="what to do with bad rows"
    )
    parser.add_argument("--rejects", help="JSONL file for bad rows (with --on-error reject)")
    if manifest:
        parser.add_argument(
            "--loose-ids", action="store_true", help="accept ids that are not 11-character YouTube ids"
        )
        parser.add_argument(
            "--min-caption-words",
            type=int,
            default=1,
            help="reject captions with fewer words after the training loaders' text normalisation",
        )


def _errors(args: argparse.Namespace) -> RowErrors:
    return RowErrors(args.on_error, args.rejects)


def _read(args: argparse.Namespace, errors: RowErrors, **kwargs):
    return read_manifest(
        args.manifest,
        errors,
        strict_ids=not args.loose_ids,
        min_caption_words=args.min_caption_words,
        **kwargs,
    )


def _finish(errors: RowErrors) -> None:
    """Fail before anything is written (``fail``), or write the rejects file (``reject``)."""
    rejected = errors.finish()
    if rejected:
        print(f"{len(rejected)} bad row(s) written to {errors.rejects_path}", file=sys.stderr)


def _write_dropped(path: str | None, dropped: list[selection.Dropped]) -> None:
    if path:
        write_jsonl(path, ({"reason": why, "line": clip.line, "row": clip.to_row()} for clip, why in dropped))


def _threshold(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must look like NAME=NUMBER, got {text!r}") from None


# ----------------------------------------------------------------------------- commands


def _report(path: str, valid: int, errors: RowErrors, limit: int) -> int:
    """Print every bad row (up to ``limit``) and a summary; exit status 1 if any row is bad."""
    for error in errors.errors[:limit]:
        print(error, file=sys.stderr)
    hidden = len(errors.errors) - limit
    if hidden > 0:
        print(f"... and {hidden} more", file=sys.stderr)
    if errors.on_error == "reject":
        _finish(errors)
    print(f"{path}: {valid} valid, {len(errors.errors)} bad")
    return 1 if errors.errors else 0


def _validate(args) -> int:
    errors = RowErrors("reject", args.rejects) if args.rejects else RowErrors("fail")
    clips = _read(args, errors, unique=args.unique)
    return _report(args.manifest, len(clips), errors, args.max_report)


def _convert(args) -> int:
    errors = _errors(args)
    clips = _read(args, errors)
    rows = convert.to_annotations(
        clips, args.to, errors, args.manifest, args.video_from, args.source_dir, args.keep_field or ()
    )
    _finish(errors)
    convert.write_annotations(args.output, rows)
    print(f"wrote {len(rows)} {args.to} annotation(s) to {args.output}")
    print("config: " + convert.corpus_entry(args.to, args.output, args.data_root or ".", args.video_from))
    return 0


def _cut(args) -> int:
    errors = _errors(args)
    clips = _read(args, errors, unique=True)
    _finish(errors)
    options = cutting.CutOptions(
        out_dir=args.out_dir,
        source_dir=args.source_dir,
        mode=args.mode,
        download_cmd=args.download_cmd,
        download_timeout=args.download_timeout,
        delete_downloaded=args.delete_downloaded,
        crf=args.crf,
        preset=args.preset,
        audio=not args.no_audio,
        verify=not args.no_verify,
    )
    summary = cutting.cut_clips(clips, options, workers=args.workers, progress=not args.no_progress)
    if args.output:
        write_manifest(args.output, cutting.annotated_clips(clips, summary))
    if args.failures:
        write_jsonl(args.failures, (cutting.result_to_json(r) for r in summary.failed))
    print(summary.describe())
    return 1 if summary.failed and args.strict else 0


Rewrite = tuple[list, list[selection.Dropped], str]


def _rewrite(args, transform: Callable[[list, RowErrors], Rewrite]) -> int:
    """Read the manifest, ``transform`` it to ``(clips, dropped, message)``, and write the clips
    (and the dropped ones, when asked) only if no bad row stops the command."""
    errors = _errors(args)
    out, dropped, message = transform(_read(args, errors), errors)
    _finish(errors)
    write_manifest(args.output, out)
    _write_dropped(getattr(args, "dropped", None), dropped)
    print(message)
    return 0


def _score(args) -> int:
    scorer = scoring.as_scorer(plugins.build(args.scorer, plugins.parse_kwargs(args.scorer_arg)))
    # A scorer that always fills one column (the aesthetic scorer) names it as ``field``.
    field = args.field or getattr(scorer, "field", "ViCLIP_Score")

    def run(clips, errors) -> Rewrite:
        scored = scoring.score_clips(
            clips, scorer, args.clips_dir, errors, args.manifest, args.num_frames, field
        )
        scored = list(scored)
        return scored, [], f"scored {len(scored)} clip(s) into {field}"

    return _rewrite(args, run)


def _filter(args) -> int:
    spec = selection.FilterSpec(
        dict(args.min or ()),
        dict(args.max or ()),
        args.min_duration,
        args.max_duration,
        args.min_height,
        args.min_width,
    )

    def run(clips, errors) -> Rewrite:
        kept, dropped = selection.filter_clips(clips, spec, errors, args.manifest, args.clips_dir)
        return kept, dropped, f"kept {len(kept)}, dropped {len(dropped)}"

    return _rewrite(args, run)


def _dedup(args) -> int:
    def run(clips, errors) -> Rewrite:
        kept, dropped = selection.dedup_clips(
            clips, errors, args.manifest, args.metric, args.threshold, args.score_field
        )
        return kept, dropped, f"kept {len(kept)}, dropped {len(dropped)} overlapping"

    return _rewrite(args, run)


def _sample(args) -> int:
    def run(clips, errors) -> Rewrite:
        chosen = selection.diversity_sample(clips, args.count, args.seed)
        videos = len({c.youtube_id for c in clips})
        return chosen, [], f"sampled {len(chosen)} of {len(clips)} clip(s) from {videos} video(s)"

    return _rewrite(args, run)


def _caption(args) -> int:
    kwargs = plugins.parse_kwargs(args.captioner_arg)
    if args.video_captioner:
        parts = {"video_captioner": plugins.build(args.video_captioner, kwargs)}
    elif args.frame_captioner:
        fuser = captioning.LLMFuser(args.llm) if args.llm else captioning.JoinFuser()
        parts = {"frame_captioner": plugins.build(args.frame_captioner, kwargs), "fuser": fuser}
    else:
        raise ValueError("give --video-captioner, or --frame-captioner (fused by --llm, or joined)")

    def run(clips, errors) -> Rewrite:
        captioned = captioning.caption_clips(
            clips, args.clips_dir, errors, args.manifest, args.num_frames, field=args.field,
            keep_frame_captions=args.keep_frame_captions, **parts,
        )  # fmt: skip
        captioned = list(captioned)
        return captioned, [], f"captioned {len(captioned)} clip(s)"

    return _rewrite(args, run)


def _shard(args) -> int:
    errors = _errors(args)
    clips = _read(args, errors)
    written = shards.write_shards(
        clips, args.clips_dir, args.pattern, errors, args.manifest, args.max_count, args.max_size
    )
    _finish(errors)
    print(f"wrote {sum(s.count for s in written)} sample(s) into {len(written)} shard(s)")
    return 0


def _instruct_validate(args) -> int:
    errors = RowErrors("reject", args.rejects) if args.rejects else RowErrors("fail")
    samples = instruction.read_instructions(args.input, errors, args.video_root)
    print(json.dumps(instruction.instruction_stats(samples)))
    return _report(args.input, len(samples), errors, args.max_report)


def _instruct_convert(args) -> int:
    errors = _errors(args)
    samples = instruction.read_instructions(args.input, errors, args.video_root)
    _finish(errors)
    count = instruction.write_instructions(args.output, samples, args.to)
    print(f"wrote {count} sample(s) in the {args.to} layout to {args.output}")
    return 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="check a manifest; list every bad row with its line")
    p.add_argument("manifest")
    p.add_argument("--unique", action="store_true", help="also report rows repeating an earlier id and span")
    p.add_argument("--rejects", help="also write the bad rows (with file, line, reason) here")
    p.add_argument("--max-report", type=int, default=50, help="bad rows to print")
    p.add_argument("--loose-ids", action="store_true")
    p.add_argument("--min-caption-words", type=int, default=1)
    p.set_defaults(func=_validate)

    p = sub.add_parser("convert", help="manifest -> InternVideo2 multi_modality / ViCLIP annotation JSON")
    p.add_argument("manifest")
    p.add_argument("output")
    p.add_argument("--to", choices=convert.FORMATS, required=True)
    p.add_argument(
        "--video-from",
        choices=convert.VIDEO_FROM,
        default="clip",
        help="cut clips, or frame ranges of sources",
    )
    p.add_argument("--source-dir", help="uncut videos (for --video-from source)")
    p.add_argument("--data-root", help="folder the annotation paths are relative to (printed config only)")
    p.add_argument("--keep-field", action="append", help="manifest column to copy into each row (repeatable)")
    _add_rows_options(p)
    p.set_defaults(func=_convert, min_caption_words=TRAINING_MIN_CAPTION_WORDS)

    p = sub.add_parser("cut", help="cut clips out of source videos (parallel, resumable)")
    p.add_argument("manifest")
    p.add_argument("--source-dir", required=True, help="where <youtube_id>.mp4 (or .mkv/.webm/...) lie")
    p.add_argument("--out-dir", required=True)
    p.add_argument(
        "--mode", choices=cutting.MODES, default="copy", help="copy: keyframe-aligned, fast; reencode: exact"
    )
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--download-cmd",
        help="run for a missing source, e.g. 'yt-dlp -o {out} https://youtu.be/{youtube_id}'",
    )
    p.add_argument("--download-timeout", type=float)
    p.add_argument(
        "--delete-downloaded", action="store_true", help="remove a downloaded source once its clips are cut"
    )
    p.add_argument("--crf", type=int, default=18)
    p.add_argument("--preset", default="veryfast")
    p.add_argument("--no-audio", action="store_true")
    p.add_argument("--no-verify", action="store_true", help="trust done-markers without probing the clip")
    p.add_argument("--output", help="manifest of the cut clips (with clip_path and the real span)")
    p.add_argument("--failures", help="JSONL of the clips that failed, with reasons")
    p.add_argument("--strict", action="store_true", help="exit 1 if any clip failed")
    p.add_argument("--no-progress", action="store_true")
    _add_rows_options(p)
    p.set_defaults(func=_cut)

    p = sub.add_parser("score", help="clip scores with a pluggable model (clip-text similarity, aesthetics)")
    p.add_argument("manifest")
    p.add_argument("output")
    p.add_argument("--clips-dir", required=True)
    p.add_argument("--scorer", required=True, help="factory as package.module:name")
    p.add_argument("--scorer-arg", action="append", help="key=value passed to the factory (repeatable)")
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--field", help="output column (default: the scorer's `field`, else ViCLIP_Score)")
    _add_rows_options(p)
    p.set_defaults(func=_score)

    p = sub.add_parser("filter", help="keep clips by score thresholds, duration and resolution")
    p.add_argument("manifest")
    p.add_argument("output")
    p.add_argument("--min", type=_threshold, action="append", metavar="COLUMN=VALUE")
    p.add_argument("--max", type=_threshold, action="append", metavar="COLUMN=VALUE")
    p.add_argument("--min-duration", type=float)
    p.add_argument("--max-duration", type=float)
    p.add_argument("--min-height", type=int)
    p.add_argument("--min-width", type=int)
    p.add_argument("--clips-dir", help="cut clips (needed for resolution filters)")
    p.add_argument("--dropped", help="JSONL of dropped clips with reasons")
    _add_rows_options(p)
    p.set_defaults(func=_filter)

    p = sub.add_parser("dedup", help="drop clips overlapping a better-scored clip of the same video")
    p.add_argument("manifest")
    p.add_argument("output")
    p.add_argument("--metric", choices=selection.OVERLAP_METRICS, default="iou")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--score-field", default="UMT_Score")
    p.add_argument("--dropped")
    _add_rows_options(p)
    p.set_defaults(func=_dedup)

    p = sub.add_parser("sample", help="InternVid-10M-DIV diversity sampling (weight 1 / clips per video)")
    p.add_argument("manifest")
    p.add_argument("output")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", type=int, default=42)
    _add_rows_options(p)
    p.set_defaults(func=_sample)

    p = sub.add_parser(
        "caption", help="caption clips with pluggable frame captioner + fusion, or a video chat model"
    )
    p.add_argument("manifest")
    p.add_argument("output")
    p.add_argument("--clips-dir", required=True)
    p.add_argument("--frame-captioner", help="factory package.module:name of a frame captioner")
    p.add_argument("--llm", help="generate(prompt) -> text callable (package.module:name) for fusion")
    p.add_argument(
        "--video-captioner", help="factory of a video captioner (e.g. internvid.captioning:ChatCaptioner)"
    )
    p.add_argument(
        "--captioner-arg", action="append", help="key=value for the captioner factory (repeatable)"
    )
    p.add_argument("--num-frames", type=int, default=8)
    p.add_argument("--field", default="Caption", help="column to write (Caption replaces the caption)")
    p.add_argument("--keep-frame-captions", action="store_true")
    _add_rows_options(p)
    p.set_defaults(func=_caption)

    p = sub.add_parser("shard", help="pack clips and captions into WebDataset tar shards")
    p.add_argument("manifest")
    p.add_argument("--clips-dir", required=True)
    p.add_argument("--pattern", required=True, help="printf pattern, e.g. shards/internvid-%%06d.tar")
    p.add_argument("--max-count", type=int, default=1000)
    p.add_argument("--max-size", type=int, default=1 << 30, help="bytes per shard")
    _add_rows_options(p)
    p.set_defaults(func=_shard)

    p = sub.add_parser(
        "instruct", help="video instruction data (VideoChat 11K 'QA' or LLaVA 'conversations')"
    )
    isub = p.add_subparsers(dest="instruct_command", required=True)
    q = isub.add_parser("validate", help="check every sample; print counts")
    q.add_argument("input")
    q.add_argument("--video-root", help="also check that each video exists here")
    q.add_argument("--rejects", help="also write the bad rows (with file, line, reason) here")
    q.add_argument("--max-report", type=int, default=50, help="bad rows to print")
    q.set_defaults(func=_instruct_validate)
    q = isub.add_parser("convert", help="rewrite in the qa or conversations layout")
    q.add_argument("input")
    q.add_argument("output")
    q.add_argument("--to", choices=instruction.LAYOUTS, required=True)
    q.add_argument("--video-root")
    _add_rows_options(q, manifest=False)
    q.set_defaults(func=_instruct_convert)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (BadRowsError, FileNotFoundError, ValueError) as exc:  # PluginError is a ValueError
        print(f"{PROG} {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
