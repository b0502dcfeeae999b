"""Video-text data: annotation JSON files, caption cleaning, training and retrieval datasets.

Annotation files are the original's: a JSON list of ``{"video" | "image": path, "caption": str |
[str, ...]}`` with optional ``video_start_frame``/``video_end_frame``; paths are relative to the
corpus' ``data_root``. Items are dictionaries that ``ivtools.data.build_loader`` collates:

* training: ``video`` (T, 3, H, W), ``input_ids``/``attention_mask`` (max_txt_l), ``idx`` (the
  annotation row: captions of one video are positives of each other), ``skipped``;
* retrieval: ``video``, ``index``, ``valid`` (False when unreadable); captions are the dataset's
  ``texts`` with ``txt2vid``/``vid2txt`` maps for the metrics.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from internvideo2.mm.audio import beats_input, load_audio
from ivtools.data.video_dataset import seeded
from ivtools.video import VideoReadError, open_video, uniform_indices

logger = logging.getLogger(__name__)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass
class MediaRecord:
    path: str
    captions: list[str]
    media_type: str  # "video", "image" or "audio_video"
    start_frame: int | None = None
    end_frame: int | None = None
    answer: int | None = None  # multiple-choice sets: index of the right caption
    audio: str | None = None  # audio_video corpora: the sound file (the video itself by default)


def pre_text(text: str, max_words: int | None = None) -> str:
    """The original's caption cleaning: lower-case, drop punctuation, split dashes/slashes, squeeze spaces."""
    if not isinstance(text, str):
        raise TypeError(f"captions must be strings, got {type(text).__name__}: {text!r}")
    text = re.sub(r"([,.'!?\"()*#:;~])", "", text.lower())
    text = text.replace("-", " ").replace("/", " ").replace("<person>", "person")
    text = re.sub(r"\s{2,}", " ", text).strip()
    if max_words:
        text = " ".join(text.split(" ")[:max_words])
    return text


def load_annotations(
    anno_path: str | Path, data_root: str | Path = "", media_type: str | None = None
) -> list[MediaRecord]:
    """Read an annotation JSON list; each entry needs ``video`` or ``image`` and ``caption``.

    ``media_type="audio_video"`` (a corpus setting) marks video entries whose sound is used too:
    the entry's ``audio`` file if given, else the video file's own audio track.
    """
    path = Path(anno_path)
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"cannot read annotation file {path}: {err}") from err
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of {{video|image, caption}} entries")
    records = []
    for row, entry in enumerate(entries):
        kind = "video" if "video" in entry else "image" if "image" in entry else None
        if kind is None or "caption" not in entry:
            raise ValueError(
                f"{path}: entry {row} needs 'video' or 'image' and 'caption', has {sorted(entry)}"
            )
        captions = entry["caption"] if isinstance(entry["caption"], list) else [entry["caption"]]
        if not captions or not all(isinstance(c, str) for c in captions):
            raise ValueError(f"{path}: entry {row} has an empty or non-string caption: {entry['caption']!r}")
        media = str(Path(data_root) / entry[kind])
        audio = None
        if media_type == "audio_video" and kind == "video":
            audio = str(Path(data_root) / entry["audio"]) if "audio" in entry else media
        records.append(
            MediaRecord(
                path=media,
                captions=captions,
                media_type="audio_video" if audio else kind,
                audio=audio,
                start_frame=entry.get("video_start_frame"),
                end_frame=entry.get("video_end_frame"),
                answer=entry.get("answer"),
            )
        )
    return records


def train_transform(image_res: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Callable:
    """The original's training pipeline on (T, 3, H, W) uint8: one random resized crop (scale 0.5-1,
    bicubic) and flip for all frames, then scaling to [0, 1] and normalisation."""
    return T.Compose(
        [
            T.RandomResizedCrop(
                image_res, scale=(0.5, 1.0), interpolation=InterpolationMode.BICUBIC, antialias=True
            ),
            T.RandomHorizontalFlip(),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
    )


def test_transform(image_res: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> Callable:
    """Evaluation: resize to ``image_res`` square (bicubic), scale, normalise (the original's)."""
    return T.Compose(
        [
            T.Resize((image_res, image_res), interpolation=InterpolationMode.BICUBIC, antialias=True),
            T.ToDtype(torch.float32, scale=True),
            T.Normalize(mean, std),
        ]
    )


def load_audio_fbank(
    record: MediaRecord, rng: np.random.Generator | None, max_seconds: float = 10.0
) -> torch.Tensor:
    """BEATs input ``(998, 64)`` of a record's sound: a random ``max_seconds`` crop in training
    (the middle one in evaluation), all zeros when the file has no audio (the original's
    ``zero_audio_padding_for_video``)."""
    try:
        wave = load_audio(record.audio)
    except ValueError as err:
        logger.warning("no usable audio, zero input: %s", err)
        return torch.zeros(998, 64)
    limit = int(max_seconds * 16000)
    if wave.numel() > limit:
        spare = wave.numel() - limit
        start = int(rng.integers(spare + 1)) if rng is not None else spare // 2
        wave = wave[start : start + limit]
    if wave.numel() < 400:
        return torch.zeros(998, 64)
    return beats_input(wave)


def load_media(
    record: MediaRecord, num_frames: int, sample: str, rng: np.random.Generator | None
) -> torch.Tensor:
    """``(T, 3, H, W)`` uint8 frames (``T = 1`` for images); raises VideoReadError."""
    if record.media_type == "image":
        try:
            with Image.open(record.path) as img:
                frame = np.array(img.convert("RGB"))  # writable: torch shares its memory
        except OSError as err:
            raise VideoReadError(record.path, f"cannot read image: {err}") from err
        return torch.from_numpy(frame).permute(2, 0, 1)[None]
    with open_video(record.path) as video:
        first = record.start_frame or 0
        last = len(video) if record.end_frame is None else min(record.end_frame, len(video))
        if last <= first:
            raise VideoReadError(record.path, f"empty frame range [{first}, {last}) of {len(video)} frames")
        indices = [first + i for i in uniform_indices(last - first, num_frames, mode=sample, rng=rng)]
        frames = video.get_frames(indices)
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)


class Tokenize:
    """Captions -> fixed-length ``input_ids``/``attention_mask`` (padding to ``max_len`` lets the
    default collation stack them). ``prompt`` is prepended to every caption (the LLaMA CLIP
    text tower's ``"summarize:"``)."""

    def __init__(self, tokenizer, max_len: int, prompt: str = ""):
        self.tokenizer, self.max_len, self.prompt = tokenizer, max_len, prompt

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        out = self.tokenizer(
            [self.prompt + t for t in texts],
            padding="max_length",
            truncation=True,
            max_length=self.max_len,
            return_tensors="pt",
        )
        return {"input_ids": out["input_ids"], "attention_mask": out["attention_mask"]}


class VideoTextTrainDataset(Dataset):
    """One (media, caption) pair per caption; ``idx`` is the media's row, shared by its captions."""

    def __init__(
        self,
        records: list[MediaRecord],
        tokenize: Tokenize,
        transform: Callable,
        num_frames: int = 4,
        sample: str = "rand",
        max_words: int | None = None,
        seed: int = 0,
        max_retries: int = 20,
    ):
        if not records:
            raise ValueError("training dataset has no annotations")
        self.records, self.tokenize, self.transform = records, tokenize, transform
        self.pairs = [(row, cap) for row, rec in enumerate(records) for cap in range(len(rec.captions))]
        self.num_frames, self.sample, self.max_words = num_frames, sample, max_words
        self.seed, self.max_retries, self.epoch = seed, max_retries, 0

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        for attempt in range(self.max_retries):
            row, cap = self.pairs[index]
            record = self.records[row]
            with seeded((self.seed, epoch, index, attempt)) as rng:
                try:
                    frames = load_media(record, self.num_frames, self.sample, rng)
                except VideoReadError as err:
                    logger.warning("skipping %s", err)
                    index = int(rng.integers(len(self.pairs)))
                    continue
                video = self.transform(frames)
                audio = load_audio_fbank(record, rng) if record.audio else None
            text = self.tokenize([pre_text(record.captions[cap], self.max_words)])
            item = {
                "video": video,
                "input_ids": text["input_ids"][0],
                "attention_mask": text["attention_mask"][0],
                "idx": row,
                "skipped": attempt,
            }
            return item if audio is None else {**item, "audio": audio}
        raise RuntimeError(f"{self.max_retries} unreadable media in a row; last tried {record.path}")


class RetrievalDataset(Dataset):
    """Videos of a retrieval test set and the flat list of their captions.

    ``is_paragraph_retrieval`` joins each video's captions into one text (DiDeMo, ActivityNet).
    ``txt2vid[t]`` is the video of caption ``t``; ``vid2txt[v]`` the captions of video ``v``;
    ``answers[v]`` the right option of a multiple-choice entry (``None`` elsewhere).
    """

    def __init__(
        self,
        records: list[MediaRecord],
        transform: Callable,
        num_frames: int = 4,
        sample: str = "middle",
        is_paragraph_retrieval: bool = False,
        max_words: int | None = None,
    ):
        if not records:
            raise ValueError("retrieval dataset has no annotations")
        self.records, self.transform = records, transform
        self.num_frames, self.sample = num_frames, sample
        self.texts: list[str] = []
        self.txt2vid: list[int] = []
        self.vid2txt: list[list[int]] = []
        for row, record in enumerate(records):
            captions = [" ".join(record.captions)] if is_paragraph_retrieval else record.captions
            self.vid2txt.append(list(range(len(self.texts), len(self.texts) + len(captions))))
            self.texts.extend(pre_text(c, max_words) for c in captions)
            self.txt2vid.extend([row] * len(captions))
        self.answers = [r.answer for r in records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        index = key[0] if isinstance(key, tuple) else key
        record = self.records[index]
        try:
            frames = load_media(record, self.num_frames, self.sample, rng=None)
            valid = True
        except VideoReadError as err:
            logger.warning("unreadable test video %s", err)
            frames, valid = torch.zeros(self.num_frames, 3, 8, 8, dtype=torch.uint8), False
        item = {"video": self.transform(frames), "index": index, "valid": valid}
        return item if record.audio is None else {**item, "audio": load_audio_fbank(record, rng=None)}


class MediaBatchDataset(Dataset):
    """Image and video corpora in one run: each item is a whole batch of one media type.

    A batch stacks equal shapes, so images (T = 1) and videos never share one, and every rank must
    see the same media type at the same step (the contrastive loss gathers across ranks). Per
    epoch, each media type's pairs are shuffled and cut into batches of its own size (the rest
    dropped); the batches are scheduled in blocks of ``world_size`` of one type, blocks in random
    order, so that the rank-strided split of an unshuffled sampler gives every rank the same type
    at each step (the original's ``MetaLoader`` does the same by sharing its random media order).
    Use with ``build_loader(dataset, 1, train=False)``: the default collation flattens the list.
    """

    def __init__(
        self,
        datasets: dict[str, VideoTextTrainDataset],
        batch_sizes: dict[str, int],
        world_size: int,
        seed: int = 0,
    ):
        self.datasets, self.batch_sizes, self.world_size, self.seed = datasets, batch_sizes, world_size, seed
        self.blocks = {m: len(ds) // batch_sizes[m] // world_size for m, ds in datasets.items()}
        if sum(self.blocks.values()) == 0:
            raise ValueError(f"too few pairs for one batch per rank: sizes {batch_sizes}, {world_size} ranks")
        self.epoch = 0
        self._plans: dict[int, list[tuple[str, np.ndarray]]] = {}

    def __len__(self) -> int:
        return sum(self.blocks.values()) * self.world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def plan(self, epoch: int) -> list[tuple[str, np.ndarray]]:
        """``(media type, pair indices)`` of every batch of ``epoch``, in step-major order."""
        if epoch not in self._plans:
            rng = np.random.default_rng([self.seed, epoch])
            batches = {}
            for media, ds in self.datasets.items():
                size, count = self.batch_sizes[media], self.blocks[media] * self.world_size
                batches[media] = iter(rng.permutation(len(ds))[: count * size].reshape(count, size))
            order = rng.permutation([m for m, n in self.blocks.items() for _ in range(n)])
            self._plans = {epoch: [(str(m), next(batches[m])) for m in order for _ in range(self.world_size)]}
        return self._plans[epoch]

    def __getitem__(self, key) -> list[dict]:
        index, epoch = key if isinstance(key, tuple) else (key, self.epoch)
        media, rows = self.plan(epoch)[index]
        return [self.datasets[media][(int(row), epoch)] for row in rows]
