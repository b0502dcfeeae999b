"""Re-encode a folder of videos for fast sparse sampling: H.264 with short keyframe intervals.

Sparse sampling (the fine-tuning recipes' 8 or 16 frames spread over the whole video) needs every
wanted frame's GOP decoded from its keyframe. With the keyframe every 2 s of typical web video a
clip costs about a full decode of the video; with a keyframe every 16 frames, 240p 8-frame clips
decode about 1.55x faster for about 30 % larger files (``tools/benchmarks/results/video_decode.md``).
Downscaling to the training resolution's class (``--short-side``) cuts decoding further.

Every decoded frame is encoded again with its own timestamp, so frame counts, frame rate and
frame indices stay those of the source. Files keep their relative paths and names, so annotation
files stay valid. ``.webm`` and ``.avi`` names hold Matroska (FFmpeg finds containers by their
content): WebM cannot hold H.264, and decord reads H.264 in AVI at the wrong frames once there is
more than one keyframe. A source that cannot be decoded is reported and
counted, never half-written: outputs appear only complete (written beside, then renamed).

    ivtools-reencode SRC_DIR OUT_DIR --keyint 16 --short-side 320 --workers 8
    python -m ivtools.video.reencode SRC_DIR OUT_DIR ...
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    import av

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv")
# The container written for each file name: the one its suffix names wherever that can hold H.264.
_CONTAINER = {
    ".mp4": "mp4",
    ".m4v": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "matroska",
    ".avi": "matroska",
    ".flv": "flv",
}


@dataclass(frozen=True)
class ReencodeOptions:
    """``keyint``: frames between keyframes (x264 may add more at scene cuts); ``short_side``:
    downscale so that the shorter side is at most this (never upscale); ``audio``: copy the first
    audio stream's packets unchanged (InternVideo2's audio-visual training reads soundtracks)."""

    keyint: int = 16
    short_side: int | None = None
    crf: int = 23
    preset: str = "veryfast"
    audio: bool = True
    threads: int = 0  # x264 threads per encoder; 0 lets x264 choose

    def __post_init__(self):
        if self.keyint < 1:
            raise ValueError(f"keyint must be at least 1, got {self.keyint}")
        if self.short_side is not None and self.short_side < 2:
            raise ValueError(f"short_side must be at least 2, got {self.short_side}")


@dataclass
class ReencodeReport:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outputs that already exist
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    def describe(self) -> str:
        return f"{len(self.done)} re-encoded, {len(self.skipped)} already there, {len(self.failed)} failed"


def output_size(height: int, width: int, short_side: int | None = None) -> tuple[int, int]:
    """``(height, width)`` scaled so that the shorter side is ``short_side`` (never up), each cut
    down to an even size (yuv420p needs even sizes)."""
    scale = 1.0 if short_side is None else min(1.0, short_side / min(height, width))
    return _even(height * scale), _even(width * scale)


def _even(size: float) -> int:
    return max(2, int(size) // 2 * 2)


def reencode_video(src: str | os.PathLike, dst: str | os.PathLike, options: ReencodeOptions) -> int:
    """Re-encode ``src`` into ``dst`` (see the module doc); returns the number of frames written.

    ``dst`` appears only once complete; any failure leaves no file and raises with ``src`` named.
    """
    import av

    src, dst = Path(src), Path(dst)
    container_format = _CONTAINER.get(dst.suffix.lower())
    if container_format is None:
        raise ValueError(f"{dst}: no container for suffix {dst.suffix!r}; expected one of {VIDEO_SUFFIXES}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    partial = dst.with_name(f".{dst.name}.partial")
    try:
        with av.open(str(src)) as source, av.open(str(partial), "w", format=container_format) as out:
            frames = _transcode(source, out, options)
        if frames == 0:
            raise ValueError("no video frames decoded")
        os.replace(partial, dst)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"{src}: cannot re-encode ({type(exc).__name__}: {exc})") from exc
    return frames


def _transcode(source, out, options: ReencodeOptions) -> int:
    if not source.streams.video:
        raise ValueError("no video stream")
    video = source.streams.video[0]
    encoder = h264_stream(
        out,
        video,
        crf=options.crf,
        preset=options.preset,
        keyint=options.keyint,
        short_side=options.short_side,
        threads=options.threads,
    )
    audio = source.streams.audio[0] if options.audio and source.streams.audio else None
    audio_out = _copied_stream(out, audio) if audio is not None else None
    frames = 0
    for packet in source.demux(*[s for s in (video, audio) if s is not None]):
        if packet.stream is audio:
            if packet.dts is not None:  # the demuxer's empty flush packet carries no data
                packet.stream = audio_out
                out.mux(packet)
            continue
        for frame in packet.decode():
            out.mux(encoder.encode(fit_frame(frame, encoder)))
            frames += 1
    out.mux(encoder.encode(None))
    return frames


def h264_stream(
    out: av.container.OutputContainer,
    video: av.video.stream.VideoStream,
    *,
    crf: int,
    preset: str,
    keyint: int | None = None,
    short_side: int | None = None,
    threads: int = 0,
) -> av.video.stream.VideoStream:
    """A libx264 yuv420p stream in ``out`` for the frames of the input stream ``video``: its frame
    rate and time base, its size (see :func:`output_size`), keyframes every ``keyint`` frames
    (x264's default when ``None``). Feed it frames through :func:`fit_frame`."""
    ctx = video.codec_context
    stream = out.add_stream("libx264", rate=video.average_rate or video.guessed_rate or 25)
    stream.height, stream.width = output_size(ctx.height, ctx.width, short_side)
    stream.pix_fmt = "yuv420p"
    # The source's time base keeps every frame's own timestamp (variable frame rates included).
    stream.codec_context.time_base = video.time_base
    if keyint is not None:
        stream.codec_context.gop_size = keyint
    stream.options = {"crf": str(crf), "preset": preset, "threads": str(threads)}
    return stream


def _copied_stream(
    out: av.container.OutputContainer, audio: av.audio.stream.AudioStream
) -> av.audio.stream.AudioStream:
    add = getattr(out, "add_stream_from_template", None)  # PyAV >= 13; older ones take template=
    return add(audio) if add is not None else out.add_stream(template=audio)


def fit_frame(frame: av.VideoFrame, stream: av.video.stream.VideoStream) -> av.VideoFrame:
    """``frame`` ready for :func:`h264_stream`'s ``stream``: its size in yuv420p, its timestamp, and
    no picture type."""
    if (frame.height, frame.width) != (stream.height, stream.width) or frame.format.name != "yuv420p":
        # AREA averages every source pixel when shrinking (bilinear would alias at 2x and more).
        fitted = frame.reformat(
            width=stream.width, height=stream.height, format="yuv420p", interpolation="AREA"
        )
        fitted.pts, fitted.time_base = frame.pts, frame.time_base
        frame = fitted
    # A decoded keyframe keeps its type, and libx264 makes every frame typed I a keyframe: the
    # source's keyframes would cut every GOP short of the asked interval.
    from av.video.frame import PictureType

    frame.pict_type = PictureType.NONE
    return frame


def find_videos(root: str | os.PathLike, suffixes: Sequence[str] = VIDEO_SUFFIXES) -> list[Path]:
    """Video files under ``root`` (recursively, by suffix), as paths relative to it, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a folder")
    wanted = {s.lower() for s in suffixes}
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in wanted)


def _reencode_one(job: tuple[Path, Path, ReencodeOptions]) -> tuple[str, str | None]:
    src, dst, options = job
    try:
        reencode_video(src, dst, options)
    except Exception as exc:  # one bad video must not stop the folder: it is reported instead
        return str(src), str(exc)
    return str(src), None


def reencode_folder(
    src_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ReencodeOptions,
    workers: int = 1,
    suffixes: Sequence[str] = VIDEO_SUFFIXES,
    overwrite: bool = False,
) -> ReencodeReport:
    """Re-encode every video under ``src_dir`` to the same relative path under ``out_dir``.

    Existing outputs are complete (see :func:`reencode_video`) and are kept unless ``overwrite``,
    so an interrupted run resumes where it stopped.
    """
    src_dir, out_dir = Path(src_dir), Path(out_dir)
    if out_dir.resolve() == src_dir.resolve():
        raise ValueError(f"{out_dir}: the output folder must differ from the source folder")
    output_inside_sources = out_dir.resolve().is_relative_to(src_dir.resolve())
    report = ReencodeReport()
    jobs = []
    for rel in find_videos(src_dir, suffixes):
        if output_inside_sources and (src_dir / rel).resolve().is_relative_to(out_dir.resolve()):
            continue  # an output folder inside the source folder holds outputs, not sources
        if (out_dir / rel).exists() and not overwrite:
            report.skipped.append(str(src_dir / rel))
        else:
            jobs.append((src_dir / rel, out_dir / rel, options))
    for src, error in _run(jobs, workers):
        if error is None:
            report.done.append(src)
        else:
            report.failed.append((src, error))
            tqdm.write(f"failed: {error}")
    return report


def _run(jobs: list[tuple[Path, Path, ReencodeOptions]], workers: int) -> Iterator[tuple[str, str | None]]:
    progress = {"total": len(jobs), "desc": "re-encoding", "unit": "video"}
    if workers <= 1:
        yield from tqdm(map(_reencode_one, jobs), **progress)
        return
    with ProcessPoolExecutor(workers) as pool:
        futures = [(job[0], pool.submit(_reencode_one, job)) for job in jobs]
        for src, future in tqdm(futures, **progress):
            try:
                yield future.result()
            except BrokenProcessPool:  # a worker killed (crash, out of memory) fails what was left
                yield str(src), f"{src}: not re-encoded, a worker process died; run again to retry"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--keyint", type=int, default=16, help="frames between keyframes")
    parser.add_argument("--short-side", type=int, default=None, help="downscale to this shorter side")
    parser.add_argument("--crf", type=int, default=23)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--no-audio", action="store_true", help="drop the soundtrack")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--overwrite", action="store_true", help="re-encode videos whose output exists")
    parser.add_argument("--suffixes", nargs="+", default=list(VIDEO_SUFFIXES))
    args = parser.parse_args(argv)
    options = ReencodeOptions(
        keyint=args.keyint,
        short_side=args.short_side,
        crf=args.crf,
        preset=args.preset,
        audio=not args.no_audio,
        # Parallel workers already fill the cores; one x264 thread each avoids oversubscription.
        threads=1 if args.workers > 1 else 0,
    )
    report = reencode_folder(args.src_dir, args.out_dir, options, args.workers, args.suffixes, args.overwrite)
    print(report.describe())
    return 1 if report.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
