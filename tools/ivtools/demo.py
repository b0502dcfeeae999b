"""``python -m ivtools.demo``: decode clips and sample frames the way the InternVideo models do.

Writes the sample clips (one per container, frame ``i`` carrying the code ``i``) to a temporary
folder, adds any real footage installed on the machine, then for every installed backend
samples a training clip (sparse and dense) and a 4-clip x 3-crop test view list, decodes the
frames, checks each decoded frame against the index asked for, and prints what it did.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ivtools.testing.media import real_video_files, write_sample_videos
from ivtools.video import (
    available_backends,
    dense_indices,
    multi_view_list,
    open_video,
    sparse_indices,
    spatial_crop_starts,
)
from ivtools.video.synthetic import read_frame_code


def _sampling_plans(num_frames: int, rng: np.random.Generator) -> dict[str, list[int]]:
    return {
        "sparse 8 (train)": sparse_indices(num_frames, 8, rng=rng),
        "dense 8x2 (train)": dense_indices(num_frames, 8, 2, rng=rng),
        "sparse 8, view 2/4 (test)": sparse_indices(num_frames, 8, clip_idx=1, num_clips=4),
    }


def _decode_coded_clips(folder: Path, rng: np.random.Generator) -> list[str]:
    rows = []
    videos = write_sample_videos(folder)
    for container, video in videos.items():
        backends = ["frames"] if container == "frames" else [b for b in available_backends() if b != "frames"]
        for backend in backends:
            with open_video(video.path, backend=backend) as reader:
                for plan, indices in _sampling_plans(len(reader), rng).items():
                    start = time.perf_counter()
                    frames = reader.get_frames(indices)
                    ms = 1000 * (time.perf_counter() - start)
                    ok = [read_frame_code(f) for f in frames] == list(indices)
                    rows.append(
                        f"| {container} ({video.codec}) | {backend} | {plan} | {indices} | "
                        f"{'yes' if ok else 'NO'} | {ms:.1f} |"
                    )
                    if not ok:
                        raise SystemExit(f"{video.path} via {backend}: decoded frames differ from {indices}")
    return rows


def _decode_real_footage(rng: np.random.Generator) -> list[str]:
    rows = []
    for path in real_video_files():
        with open_video(path) as reader:
            indices = sparse_indices(len(reader), 8, rng=rng)
            frames = reader.get_frames(indices)
            h, w = frames.shape[1:3]
            rows.append(
                f"| {path.name} | {type(reader).__name__} | {len(reader)} frames @ {reader.fps:.1f} fps, "
                f"{w}x{h} | {indices} | mean pixel {frames.mean():.1f} |"
            )
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    print(f"video backends installed here: {', '.join(available_backends())}\n")
    with tempfile.TemporaryDirectory() as tmp:
        rows = _decode_coded_clips(Path(tmp), rng)
    print("| clip | backend | sampling | frame indices | decoded frames match | ms |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    real = _decode_real_footage(rng)
    if real:
        print("\n| real footage | reader | video | sampled indices | content |")
        print("|---|---|---|---|---|")
        print("\n".join(real))
    views = multi_view_list(1, 4, 3)
    print(
        f"\nmulti-view test of one video: {len(views)} views (4 clips x 3 crops); crop starts along a "
        f"298-px side for 224-px crops: {spatial_crop_starts(298, 224, 3)}"
    )
    print(f"\nall {len(rows)} decoded clips carry exactly the frames that were asked for.")


if __name__ == "__main__":
    main()
