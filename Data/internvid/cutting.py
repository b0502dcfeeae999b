"""Cut InternVid clips out of their source videos with PyAV: exact re-encode or keyframe copy.

Modes
-----
``reencode`` (exact)
    Decodes from the keyframe before the start and keeps exactly the frames whose presentation
    time ``t`` satisfies ``start <= t < end``; they are encoded with libx264 at the source's
    frame timestamps (shifted so the first kept frame is at 0), so frame count and duration
    match the request to within one frame. Audio is trimmed to the same window sample by sample
    (so it stays in sync with the video) and re-encoded to AAC.
``copy`` (fast, not frame-accurate)
    Copies compressed packets without decoding. A copied clip must start on a keyframe, so it
    starts at the last keyframe at or before ``start`` (up to one GOP early). It ends after the
    last frame shown before ``end`` plus any frames those depend on (with B-frames, a reference
    frame just after ``end`` is decoded earlier and must be kept), extended until the frames form
    a gap-free run. The real window is recorded (``clip_start``/``clip_end``/``clip_frames``).

Each clip is written to a ``.part`` file and renamed when complete, and then a done-marker
(``<clip>.done.json``) records what the clip holds. A second run skips a clip whose marker
matches the mode and whose file has the recorded size (and, with ``verify``, the recorded frame
count when probed), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import shlex
import string
import subprocess
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from tqdm import tqdm

from ivtools.video.reencode import fit_frame, h264_stream

from .manifest import CLIP_PATH, Clip
from .probe import probe_video
from .timestamps import format_timestamp, seconds_to_millis, to_seconds

MODES = ("reencode", "copy")
SOURCE_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".flv")
DOWNLOAD_FIELDS = {"youtube_id", "out"}


@dataclass(frozen=True)
class CutOptions:
    """How to cut. ``download_cmd`` is a template with ``{youtube_id}`` and ``{out}``, run
    without a shell when a source is missing from ``source_dir``."""

    out_dir: str
    source_dir: str
    mode: str = "copy"
    download_cmd: str | None = None
    download_timeout: float | None = None
    delete_downloaded: bool = False
    crf: int = 18
    preset: str = "veryfast"
    audio: bool = True
    verify: bool = True

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.download_cmd is not None:
            check_download_template(self.download_cmd)


@dataclass
class CutResult:
    """What happened to one clip (``status``: done, skipped (already cut) or failed)."""

    key: str
    line: int
    status: str
    reason: str = ""
    clip_path: str = ""
    clip_start_ms: int = 0
    clip_end_ms: int = 0
    clip_frames: int = 0
    mode: str = ""


@dataclass
class CutSummary:
    results: list[CutResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[CutResult]:
        return [r for r in self.results if r.status == "failed"]

    def describe(self) -> str:
        text = f"cut {self.count('done')}, skipped {self.count('skipped')} already done, failed {self.count('failed')}"
        reasons = Counter(r.reason.split(":")[0] for r in self.failed)
        if reasons:
            text += "\nfailure reasons: " + "; ".join(f"{n}x {why}" for why, n in reasons.most_common(10))
        return text


class SourceError(RuntimeError):
    """The source video could not be found, downloaded or opened."""


def check_download_template(template: str) -> None:
    """Reject a template naming anything but ``{youtube_id}`` and ``{out}``, or missing either."""
    names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    unknown = names - DOWNLOAD_FIELDS
    if unknown:
        raise ValueError(
            f"download command {template!r} uses unknown field(s) {sorted(unknown)}; use {{youtube_id}} and {{out}}"
        )
    missing = DOWNLOAD_FIELDS - names
    if missing:
        raise ValueError(
            f"download command {template!r} must contain {', '.join('{' + m + '}' for m in sorted(missing))}"
        )


# ----------------------------------------------------------------------------- sources


def find_source(source_dir: str | os.PathLike, youtube_id: str) -> Path | None:
    for suffix in SOURCE_SUFFIXES:
        path = Path(source_dir) / f"{youtube_id}{suffix}"
        if path.is_file():
            return path
    return None


def download_source(youtube_id: str, options: CutOptions) -> Path:
    """Run the user's download command into ``<source_dir>/<id>.mp4`` (via a temporary name)."""
    folder = Path(options.source_dir)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{youtube_id}.download.mp4"
    argv = [token.format(youtube_id=youtube_id, out=str(tmp)) for token in shlex.split(options.download_cmd)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=options.download_timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SourceError(f"download failed: {type(exc).__name__}: {exc}") from exc
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-300:]
        raise SourceError(f"download failed: exit status {proc.returncode}: {tail}")
    if not tmp.is_file() or tmp.stat().st_size == 0:
        raise SourceError(f"download failed: the command exited 0 but wrote nothing to {tmp}")
    target = folder / f"{youtube_id}.mp4"
    os.replace(tmp, target)
    return target


# ----------------------------------------------------------------------------- markers


def marker_path(clip_file: Path) -> Path:
    return clip_file.with_name(clip_file.name + ".done.json")


def _already_done(clip_file: Path, mode: str, verify: bool) -> dict | None:
    marker = marker_path(clip_file)
    try:
        info = json.loads(marker.read_text())
        if info["mode"] != mode or clip_file.stat().st_size != info["bytes"]:
            return None
        if verify and probe_video(clip_file).num_frames != info["clip_frames"]:
            return None
        return info
    except Exception:  # a missing, partial or stale marker/clip means "cut it again"
        return None


def _write_marker(clip_file: Path, result: CutResult, source: Path) -> None:
    info = {
        "mode": result.mode,
        "source": source.name,
        "clip_start_ms": result.clip_start_ms,
        "clip_end_ms": result.clip_end_ms,
        "clip_frames": result.clip_frames,
        "bytes": clip_file.stat().st_size,
    }
    tmp = marker_path(clip_file).with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, marker_path(clip_file))


# ----------------------------------------------------------------------------- cutting


def _open_source(path: Path):
    import av

    try:
        container = av.open(str(path))
    except Exception as exc:
        raise SourceError(f"cannot open source: {type(exc).__name__}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise SourceError("cannot open source: no video stream")
    return container


@dataclass(frozen=True)
class _Packet:
    pts: int
    dts: int
    key: bool
    duration: int


def _index_packets(container) -> list[_Packet]:
    """Video packets in decode order (demux only, no decoding)."""
    stream = container.streams.video[0]
    container.seek(0)
    packets = []
    for p in container.demux(stream):
        if p.size == 0 or p.pts is None:
            continue
        packets.append(_Packet(p.pts, p.dts if p.dts is not None else p.pts, p.is_keyframe, p.duration or 0))
    if not packets:
        raise SourceError("cannot open source: no video packets")
    return packets


def _first_pts_at_or_after(time: Fraction, time_base: Fraction) -> int:
    # pts * time_base >= time  <=>  pts >= time / time_base (pts is an integer)
    value = time / time_base
    return value.numerator // value.denominator + (value.numerator % value.denominator != 0)


@dataclass(frozen=True)
class _CopyPlan:
    pts: frozenset[int]
    start_pts: int
    end_pts: int  # exclusive: the pts just after the last kept frame


def plan_copy(packets: Sequence[_Packet], start_pts: int, end_pts: int) -> _CopyPlan:
    """Which packets a keyframe-aligned copy of ``[start_pts, end_pts)`` must keep (see module doc)."""
    shown = sorted(p.pts for p in packets)
    wanted = [t for t in shown if start_pts <= t < end_pts]
    if not wanted:
        raise ValueError("no frames between start and end")
    keys = [i for i, p in enumerate(packets) if p.key and p.pts <= wanted[0]]
    first = keys[-1] if keys else 0
    key_pts = packets[first].pts
    kept: set[int] = set()
    position = first
    # Everything shown before `end` is decoded before its own dts; dts never exceeds pts.
    while position < len(packets) and packets[position].dts < end_pts:
        if packets[position].pts >= key_pts:  # leading frames of an open GOP belong to the previous one
            kept.add(packets[position].pts)
        position += 1
    # Extend until the kept frames form a gap-free run from the keyframe.
    while position < len(packets) and _has_gap(shown, kept, key_pts):
        if packets[position].pts >= key_pts:
            kept.add(packets[position].pts)
        position += 1
    last = max(kept)
    after = bisect.bisect_right(shown, last)
    end = shown[after] if after < len(shown) else last + max(1, packets[-1].duration)
    return _CopyPlan(frozenset(kept), key_pts, end)


def _has_gap(shown_sorted: list[int], kept: set[int], key_pts: int) -> bool:
    lo = bisect.bisect_left(shown_sorted, key_pts)
    hi = bisect.bisect_right(shown_sorted, max(kept))
    return hi - lo != len(kept)


def _cut_copy(
    container, packets: Sequence[_Packet], clip: Clip, out_file: Path, audio: bool
) -> tuple[int, int, int]:
    import av

    video = container.streams.video[0]
    vtb = video.time_base
    start_pts = _first_pts_at_or_after(to_seconds(clip.start_ms), vtb)
    end_pts = _first_pts_at_or_after(to_seconds(clip.end_ms), vtb)
    plan = plan_copy(packets, start_pts, end_pts)
    real_start, real_end = plan.start_pts * vtb, plan.end_pts * vtb
    sound = container.streams.audio[0] if audio and container.streams.audio else None
    with av.open(str(out_file), "w", format="mp4") as out:
        ovideo = out.add_stream_from_template(video)
        oaudio = out.add_stream_from_template(sound) if sound is not None else None
        container.seek(plan.start_pts, stream=video, backward=True, any_frame=False)
        remaining = set(plan.pts)
        audio_done = sound is None
        for packet in container.demux(*(s for s in (video, sound) if s is not None)):
            if packet.size == 0 or packet.pts is None:
                continue
            if packet.stream.type == "video":
                if packet.pts not in remaining:
                    continue
                remaining.discard(packet.pts)
                _shift(packet, plan.start_pts, ovideo)
            else:
                time = packet.pts * packet.time_base
                if time >= real_end:
                    audio_done = True
                if not real_start <= time < real_end:
                    continue
                _shift(packet, _first_pts_at_or_after(real_start, packet.time_base), oaudio)
            out.mux(packet)
            if not remaining and audio_done:
                break
    if remaining:
        raise RuntimeError(f"{len(remaining)} planned packets were not found after seeking")
    return seconds_to_millis(real_start), seconds_to_millis(real_end), len(plan.pts)


def _shift(packet, offset: int, stream) -> None:
    packet.pts -= offset
    if packet.dts is not None:
        packet.dts -= offset
    packet.stream = stream


def _frame_window(packets: Sequence[_Packet], start_pts: int, end_pts: int) -> tuple[int, int, int]:
    """``(first pts, pts just after the last frame, frame count)`` of the frames in ``[start, end)``."""
    shown = sorted(p.pts for p in packets)
    lo, hi = bisect.bisect_left(shown, start_pts), bisect.bisect_left(shown, end_pts)
    if hi <= lo:
        raise ValueError("no frames between start and end")
    after = shown[hi] if hi < len(shown) else shown[-1] + max(1, packets[-1].duration)
    return shown[lo], after, hi - lo


def _cut_reencode(
    container, packets: Sequence[_Packet], clip: Clip, out_file: Path, options: CutOptions
) -> tuple[int, int, int]:
    import av

    video = container.streams.video[0]
    vtb = video.time_base
    first_pts, after_pts, count = _frame_window(
        packets,
        _first_pts_at_or_after(to_seconds(clip.start_ms), vtb),
        _first_pts_at_or_after(to_seconds(clip.end_ms), vtb),
    )
    # The clip's time 0 is its first frame; audio is trimmed to the same window sample by sample.
    origin, stop = first_pts * vtb, after_pts * vtb
    sound = container.streams.audio[0] if options.audio and container.streams.audio else None
    with av.open(str(out_file), "w", format="mp4") as out:
        ovideo = h264_stream(out, video, crf=options.crf, preset=options.preset)
        oaudio = out.add_stream("aac", rate=sound.rate) if sound is not None else None
        planar = (
            av.AudioResampler(format="fltp", layout=sound.layout, rate=sound.rate)
            if sound is not None
            else None
        )
        container.seek(first_pts, stream=video, backward=True, any_frame=False)
        frames = 0
        video_done, audio_done = False, sound is None
        for packet in container.demux(*(s for s in (video, sound) if s is not None)):
            for frame in packet.decode():
                if frame.pts is None:
                    raise RuntimeError("decoded a frame without a timestamp")
                if packet.stream.type == "video":
                    video_done = video_done or frame.pts >= after_pts
                    if video_done or frame.pts < first_pts:
                        continue
                    frames += 1
                    frame.pts -= first_pts
                    frame.time_base = vtb
                    out.mux(ovideo.encode(fit_frame(frame, ovideo)))
                else:
                    audio_done = audio_done or frame.pts * frame.time_base >= stop
                    if not audio_done:
                        begin = frame.pts * frame.time_base
                        for piece in planar.resample(frame):  # same rate: no samples held back
                            trimmed = _trim_audio(piece, begin, origin, stop)
                            begin += Fraction(piece.samples, piece.sample_rate)
                            if trimmed is not None:
                                out.mux(oaudio.encode(trimmed))
            if video_done and audio_done:
                break
        if frames != count:
            raise RuntimeError(f"decoded {frames} of the {count} frames in the window")
        out.mux(ovideo.encode(None))
        if oaudio is not None:
            out.mux(oaudio.encode(None))
    return seconds_to_millis(origin), seconds_to_millis(stop), frames


def _trim_audio(frame, start: Fraction, origin: Fraction, stop: Fraction):
    """The samples of a planar ``frame`` (starting at ``start`` s) inside ``[origin, stop)``, with
    their time measured from ``origin``; ``None`` if none are."""
    import av

    rate = frame.sample_rate
    offset = start - origin  # seconds from the clip's origin to the frame's first sample
    first = max(0, math.ceil(-offset * rate))
    last = min(frame.samples, math.ceil((stop - start) * rate))
    if last <= first:
        return None
    samples = frame.to_ndarray()[:, first:last]
    trimmed = av.AudioFrame.from_ndarray(samples, format=frame.format.name, layout=frame.layout.name)
    trimmed.sample_rate = rate
    trimmed.time_base = Fraction(1, rate)
    trimmed.pts = round(offset * rate) + first
    return trimmed


def cut_one(
    container, packets: Sequence[_Packet], clip: Clip, out_file: Path, options: CutOptions
) -> tuple[int, int, int]:
    """Cut one clip into ``out_file``; returns (real start ms, real end ms, frame count)."""
    if options.mode == "copy":
        return _cut_copy(container, packets, clip, out_file, options.audio)
    return _cut_reencode(container, packets, clip, out_file, options)


# ----------------------------------------------------------------------------- one source


def cut_source(youtube_id: str, clips: list[Clip], options: CutOptions) -> list[CutResult]:
    """Cut every clip of one source video (downloading it first if needed); never raises."""
    out_dir = Path(options.out_dir)
    results, pending = [], []
    for clip in clips:
        info = _already_done(out_dir / clip.default_clip_path, options.mode, options.verify)
        if info is None:
            pending.append(clip)
        else:
            results.append(
                _result(
                    clip,
                    "skipped",
                    info["clip_start_ms"],
                    info["clip_end_ms"],
                    info["clip_frames"],
                    options.mode,
                )
            )
    if not pending:
        return results
    downloaded = False
    try:
        source = find_source(options.source_dir, youtube_id)
        if source is None:
            if options.download_cmd is None:
                raise SourceError(
                    f"source missing: no {youtube_id}.* in {options.source_dir} and no download command"
                )
            source = download_source(youtube_id, options)
            downloaded = True
        container = _open_source(source)
    except SourceError as exc:
        return results + [CutResult(c.key, c.line, "failed", str(exc)) for c in pending]
    try:
        packets = _index_packets(container)
        for clip in pending:
            results.append(_cut_and_record(container, packets, clip, source, options))
    except SourceError as exc:
        done = {r.key for r in results}
        results += [CutResult(c.key, c.line, "failed", str(exc)) for c in pending if c.key not in done]
    finally:
        container.close()
        if downloaded and options.delete_downloaded:
            source.unlink(missing_ok=True)
    return results


def _cut_and_record(container, packets, clip: Clip, source: Path, options: CutOptions) -> CutResult:
    out_file = Path(options.out_dir) / clip.default_clip_path
    out_file.parent.mkdir(parents=True, exist_ok=True)
    part = out_file.with_name(out_file.name + ".part")
    try:
        start, end, frames = cut_one(container, packets, clip, part, options)
        os.replace(part, out_file)
    except Exception as exc:  # one bad clip must not stop the others; the reason is reported
        part.unlink(missing_ok=True)
        return CutResult(clip.key, clip.line, "failed", f"cut failed: {type(exc).__name__}: {exc}")
    result = _result(clip, "done", start, end, frames, options.mode)
    _write_marker(out_file, result, source)
    return result


def _result(clip: Clip, status: str, start: int, end: int, frames: int, mode: str) -> CutResult:
    return CutResult(clip.key, clip.line, status, "", clip.default_clip_path, start, end, frames, mode)


# ----------------------------------------------------------------------------- many sources


def cut_clips(
    clips: Sequence[Clip], options: CutOptions, workers: int = 1, progress: bool = True
) -> CutSummary:
    """Cut all clips, one task per source video, over ``workers`` processes, with a progress bar."""
    groups: dict[str, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(clip.youtube_id, []).append(clip)
    summary = CutSummary()
    with tqdm(total=len(clips), unit="clip", desc=f"cut ({options.mode})", disable=not progress) as bar:
        if workers <= 1:
            for video_id, group in groups.items():
                summary.results += cut_source(video_id, group, options)
                bar.update(len(group))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {
                    pool.submit(cut_source, vid, group, options): group for vid, group in groups.items()
                }
                for future in as_completed(futures):
                    group = futures[future]
                    try:
                        summary.results += future.result()
                    except Exception as exc:  # a worker that died (e.g. killed) fails its clips, not the run
                        summary.results += [
                            CutResult(c.key, c.line, "failed", f"worker failed: {exc!r}") for c in group
                        ]
                    bar.update(len(group))
    order = {clip.key: i for i, clip in enumerate(clips)}
    summary.results.sort(key=lambda r: order.get(r.key, len(order)))
    return summary


def annotate(clip: Clip, result: CutResult) -> Clip:
    """The clip's manifest row plus where its file is and what it really holds."""
    fields = dict(clip.fields)
    fields.update(
        {
            CLIP_PATH: result.clip_path,
            "clip_start": format_timestamp(result.clip_start_ms),
            "clip_end": format_timestamp(result.clip_end_ms),
            "clip_frames": result.clip_frames,
            "cut_mode": result.mode,
        }
    )
    return replace(clip, fields=fields)


def annotated_clips(clips: Sequence[Clip], summary: CutSummary) -> list[Clip]:
    """The clips that are cut (now or before), annotated, in manifest order; failed ones left out."""
    results = {r.key: r for r in summary.results if r.status != "failed"}
    return [annotate(clip, results[clip.key]) for clip in clips if clip.key in results]


def result_to_json(result: CutResult) -> dict:
    return asdict(result)
