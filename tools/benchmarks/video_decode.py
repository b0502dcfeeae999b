"""Clips/s for frame sampling from 240p and 720p videos, per installed backend and per CPU worker.

Two measurements, each for 8- and 16-frame clips (sparse sampling, the Kinetics_sparse recipe):

* ``decode``: open the video and read the sampled frames (what a backend costs);
* ``pipeline``: the whole training sample of ``ivtools.data`` -- decode, random resized crop to
  224, flip, RandAugment, normalise, random erasing -- in one process with one torch thread
  (as a DataLoader worker runs), i.e. clips/s per worker.

``--keyints N ...`` re-encodes the 240p source with ``ivtools-reencode`` at each keyframe interval
and times its decoding (what shorter GOPs buy sparse sampling, and their file size).
``--workers N ...`` adds clips/s out of a DataLoader with N worker processes; ``--device_augment``
measures those rows also with workers that only decode, crop and flip (``--device_augment`` of
the training), and times ``DeviceAugment`` (RandAugment, normalise, erasing) on a batch of 32
8x224x224 clips on the training device (CUDA when present, else the CPU with one thread).

The source videos are written first (H.264, 30 fps, keyframe every 2 s like typical web video;
``--gop`` sets another interval).
The table goes to stdout and to ``tools/benchmarks/results/video_decode.md`` with the date,
machine, library versions and the exact command.

    python tools/benchmarks/video_decode.py              # full run (about a minute per backend)
    python tools/benchmarks/video_decode.py --quick      # seconds; what the test suite runs
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ivtools.data import (
    ClipSampling,
    TrainTransform,
    TrainTransformConfig,
    VideoClassificationDataset,
    VideoRecord,
)
from ivtools.video import available_backends, open_video, sparse_indices
from ivtools.video.synthetic import coded_frames, write_video

RESULTS = Path(__file__).with_name("results") / "video_decode.md"
SOURCES = {"240p": (240, 426), "720p": (720, 1280)}


def write_sources(folder: Path, seconds: float, gop: int) -> dict[str, Path]:
    fps = 30
    out = {}
    for name, (h, w) in SOURCES.items():
        frames = coded_frames(int(seconds * fps), h, w)
        out[name] = write_video(folder / f"{name}.mp4", frames, fps=fps, codec="libx264", gop=gop)
    return out


def decode_rate(
    path: Path, backend: str, clip_len: int, clips: int, rng: np.random.Generator, threads: int = 1
) -> float:
    start = time.perf_counter()
    for _ in range(clips):
        with open_video(path, backend=backend, threads=threads) as reader:
            reader.get_frames(sparse_indices(len(reader), clip_len, rng=rng))
    return clips / (time.perf_counter() - start)


def augment_config(device_augment: bool = False) -> TrainTransformConfig:
    return TrainTransformConfig(
        input_size=224, rand_augment="rand-m7-n4-mstd0.5-inc1", device_augment=device_augment
    )


def train_dataset(
    path: Path,
    backend: str,
    clip_len: int,
    videos: int,
    num_sample: int,
    device_augment: bool = False,
    decode_threads: int = 1,
) -> VideoClassificationDataset:
    """``videos`` training items of ``path``, with the B14 recipe's augmentation."""
    return VideoClassificationDataset(
        [VideoRecord(str(path), (0,))] * videos,
        "train",
        ClipSampling("sparse", clip_len),
        TrainTransform(augment_config(device_augment)),
        num_classes=1,
        backend=backend,
        num_sample=num_sample,
        decode_threads=decode_threads,
    )


def pipeline_rate(path: Path, backend: str, clip_len: int, clips: int, num_sample: int = 1) -> float:
    dataset = train_dataset(path, backend, clip_len, clips, num_sample)
    start = time.perf_counter()
    for i in range(clips):
        dataset[(i, 0)]
    return clips * num_sample / (time.perf_counter() - start)


def loader_rate(
    path: Path,
    backend: str,
    clip_len: int,
    workers: int,
    num_sample: int,
    batches: int,
    device_augment: bool = False,
    decode_threads: int = 1,
) -> float:
    """Clips/s out of a ``build_loader`` DataLoader with ``workers`` processes (the training setup)."""
    from ivtools.data import build_loader

    videos_per_batch = max(1, 32 // num_sample)  # 32 clips per step, as the B14 recipe
    videos = videos_per_batch * (batches + 2 * workers + 1)
    dataset = train_dataset(path, backend, clip_len, videos, num_sample, device_augment, decode_threads)
    loader = build_loader(dataset, videos_per_batch, train=True, num_workers=workers, pin_memory=False)
    batches_iter = iter(loader)
    for _ in range(2 * workers):  # let every worker start and fill its queue once
        next(batches_iter)
    start, clips = time.perf_counter(), 0
    for _ in range(batches):
        clips += len(next(batches_iter)["video"])
    return clips / (time.perf_counter() - start)


def device_augment_ms(device: torch.device, batch: int, repeats: int) -> float:
    """Milliseconds per ``DeviceAugment`` call on ``batch`` 8x224x224 uint8 clips on ``device``."""
    from ivtools.data import DeviceAugment

    augment = DeviceAugment(augment_config())
    videos = torch.randint(0, 256, (batch, 8, 3, 224, 224), dtype=torch.uint8, device=device)
    augment(videos)  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        augment(videos)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - start) / repeats * 1e3


def device_augment_section(batch: int) -> str:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 1 thread"
    ms = device_augment_ms(device, batch, repeats=10 if device.type == "cuda" else 1)
    return markdown_section(
        "DeviceAugment (RandAugment rand-m7-n4-mstd0.5-inc1, normalise, erasing 0.25), 8x224x224 clips",
        ["device", "clips per batch", "ms per batch", "clips/s"],
        [f"| {name} | {batch} | {ms:.2f} | {batch / ms * 1e3:.1f} |"],
    )


def keyint_section(source: Path, keyints: list[int], clips: int, rng: np.random.Generator) -> str:
    """240p 8-frame sparse decoding after ``ivtools-reencode`` with each keyframe interval."""
    from ivtools.video.reencode import ReencodeOptions, reencode_video

    rows = []
    for keyint in keyints:
        out = source.with_name(f"keyint{keyint}.mp4")
        reencode_video(source, out, ReencodeOptions(keyint=keyint))
        rate = max(decode_rate(out, "pyav", 8, clips, rng) for _ in range(3))
        rows.append(f"| {keyint} | {out.stat().st_size / 1e3:.0f} | {rate:.1f} |")
    return markdown_section(
        "Keyframe interval (`ivtools-reencode --keyint N`, crf 23), 240p, pyav, 8 frames, best of 3",
        ["keyframe every N frames", "file kB", "decode clips/s"],
        rows,
    )


def markdown_table(columns: list[str], rows: list[str]) -> str:
    return "\n".join(["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *rows])


def markdown_section(title: str, columns: list[str], rows: list[str]) -> str:
    """A report section: blank line, ``## title``, blank line, the table, newline."""
    return f"\n## {title}\n\n{markdown_table(columns, rows)}\n"


def environment() -> str:
    import av
    import torch

    versions = [f"torch {torch.__version__}", f"PyAV {av.__version__}"]
    try:
        import decord

        versions.append(f"decord {decord.__version__}")
    except ImportError:
        pass
    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}, " + ", ".join(versions)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for the test suite")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the source videos")
    parser.add_argument(
        "--gop",
        type=int,
        default=60,
        help="keyframe interval of the source videos, in frames (60: every 2 s)",
    )
    parser.add_argument("--clips", type=int, default=20, help="clips per measurement")
    parser.add_argument(
        "--workers", type=int, nargs="*", default=[], help="also time a DataLoader with N workers"
    )
    parser.add_argument("--num_sample", type=int, default=2, help="repeated augmentation of the loader runs")
    parser.add_argument("--loader_batches", type=int, default=20)
    parser.add_argument(
        "--device_augment",
        action="store_true",
        help="also time the loader with workers doing only decode+crop+flip, and DeviceAugment",
    )
    parser.add_argument(
        "--decode_threads",
        type=int,
        nargs="*",
        default=[],
        help="also time 240p decoding with N decoder threads",
    )
    parser.add_argument(
        "--loader_threads",
        type=int,
        nargs="+",
        default=[1],
        help="FFmpeg threads per decoder in the DataLoader rows (one set of rows per value)",
    )
    parser.add_argument(
        "--keyints",
        type=int,
        nargs="*",
        default=[],
        help="also time 240p decoding after re-encoding with these keyframe intervals",
    )
    parser.add_argument("--augment_batch", type=int, default=32, help="clips per DeviceAugment batch")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.clips = 1.0, 2
        args.loader_batches, args.augment_batch = min(args.loader_batches, 2), min(args.augment_batch, 2)
    torch.set_num_threads(1)  # what a DataLoader worker runs with
    backends = [b for b in available_backends() if b != "frames"]
    loader_backend = "pyav" if "pyav" in backends else backends[0]
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sources = write_sources(Path(tmp), args.seconds, args.gop)
        for source, path in sources.items():
            for backend in backends:
                for clip_len in (8, 16):
                    decode = decode_rate(path, backend, clip_len, args.clips, rng)
                    pipe = pipeline_rate(path, backend, clip_len, args.clips)
                    repeated = pipeline_rate(path, backend, clip_len, args.clips, args.num_sample)
                    rows.append(
                        f"| {source} | {backend} | {clip_len} | {decode:.1f} | {pipe:.1f} | {repeated:.1f} |"
                    )
        modes = (False, True) if args.device_augment else (False,)
        loader_rows = [
            f"| 240p | {workers} | {threads} | {args.num_sample} | "
            f"{'decode+crop+flip' if on_device else 'all'} | "
            f"{loader_rate(sources['240p'], loader_backend, 8, workers, args.num_sample, args.loader_batches, on_device, threads):.1f} |"
            for workers in args.workers
            for threads in args.loader_threads
            for on_device in modes
        ]
        thread_rows = [
            f"| 240p | {loader_backend} | {threads} | "
            f"{decode_rate(sources['240p'], loader_backend, 8, args.clips, rng, threads):.1f} |"
            for threads in args.decode_threads
        ]
        keyints = keyint_section(sources["240p"], args.keyints, args.clips, rng) if args.keyints else ""
    table = markdown_table(
        [
            "source",
            "backend",
            "frames",
            "decode clips/s",
            "pipeline clips/s per worker",
            f"same, num_sample {args.num_sample}",
        ],
        rows,
    )
    report = (
        f"# Video decoding benchmark\n\n"
        f"- date: {datetime.date.today().isoformat()}\n- machine: {environment()}\n"
        f"- command: `python {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}`\n"
        f"- sources: H.264 {args.seconds:g} s at 30 fps, keyframe every {args.gop} frames; {args.clips} clips each\n\n"
        f"{table}\n"
    )
    if loader_rows:
        report += markdown_section(
            f"DataLoader, 8-frame clips, backend {loader_backend}, 32 clips per batch",
            ["source", "workers", "decoder threads", "num_sample", "workers do", "clips/s"],
            loader_rows,
        )
    if thread_rows:
        report += markdown_section(
            "Decoder threads, 8-frame clips, decode only",
            ["source", "backend", "threads", "decode clips/s"],
            thread_rows,
        )
    report += keyints
    if args.device_augment:
        report += device_augment_section(args.augment_batch)
    print(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    return report


if __name__ == "__main__":
    main()
