"""Training data for the Trainer: pair files read and checked (`read_pairs`), and each pair
encoded into token ids with the loss on the reply only (`encode_pair`, `PairDataset`,
`PadCollator`)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.prompt import format_prompt, format_target
from retrieval.errors import CsbotError


class PairsError(CsbotError):
    """Pair files that are missing, malformed or too few to train on."""


class TooFewPairsError(PairsError):
    def __init__(self, need: int, have: int, path: Path):
        self.need, self.have = need, have
        super().__init__(
            f"need at least {need} pairs, have {have} in {path}; log more conversations or import "
            f"transcripts, rebuild the pairs, or lower TrainConfig.min_pairs"
        )


@dataclass
class Pairs:
    train: list[dict]
    valid: list[dict]
    data_sha256: str
    manifest: dict = field(default_factory=dict)


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise PairsError(f"{path}:{n} is not JSON ({e.msg}); rebuild the pairs") from e
        if (
            not isinstance(row, dict)
            or not isinstance(row.get("target"), str)
            or not row["target"].strip()
            or not isinstance(row.get("context"), list)
            or not row["context"]
            or not isinstance(row.get("evidence", []), list)
        ):
            raise PairsError(
                f"{path}:{n} is not a pair: it needs a non-empty 'context' list, an 'evidence' "
                "list and a non-empty 'target' string; rebuild the pairs"
            )
        rows.append(row)
    return rows


def read_pairs(pairs_dir: str | Path) -> Pairs:
    """train.jsonl, valid.jsonl and manifest.json of a pairs folder."""
    d = Path(pairs_dir)
    for name in ("train.jsonl", "valid.jsonl"):
        if not (d / name).is_file():
            raise PairsError(f"{d} has no {name}: build pairs first (`csbot finetune pairs --out {d}`)")
    manifest: dict = {}
    if (d / "manifest.json").is_file():
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
    sha = manifest.get("data_sha256")
    if not sha:  # older or hand-made pair folders: hash what we train on
        h = hashlib.sha256()
        for name in ("train.jsonl", "valid.jsonl"):
            h.update((d / name).read_bytes())
        sha = h.hexdigest()
    return Pairs(_read_jsonl(d / "train.jsonl"), _read_jsonl(d / "valid.jsonl"), sha, manifest)


def encode_pair(
    pair: dict, tokenizer, max_length: int, max_target_tokens: int = 128, max_evidence: int = 3
) -> dict[str, list[int]]:
    """input_ids and labels of one pair: prompt (labels -100) + reply (labels = ids).

    The reply is cut to `max_target_tokens`; the prompt gets the rest of `max_length`, and
    `format_prompt` decides which turns and evidence fit.
    """
    eor_target = tokenizer.encode(format_target(pair["target"]), add_special_tokens=False)
    if len(eor_target) > max_target_tokens:
        target = tokenizer.encode(format_target(pair["target"], end=False), add_special_tokens=False)
        target = target[:max_target_tokens]
    else:
        target = eor_target
    prompt = format_prompt(
        pair["context"],
        pair.get("evidence", []),
        tokenizer=tokenizer,
        max_tokens=max_length - len(target),
        max_evidence=max_evidence,
    )
    prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
    return {"input_ids": prompt_ids + target, "labels": [-100] * len(prompt_ids) + target}


class PairDataset:
    """Encoded pairs (a torch Dataset by duck typing: Trainer needs __len__ and __getitem__)."""

    def __init__(
        self, pairs: Sequence[dict], tokenizer, max_length: int, max_target_tokens: int = 128, max_evidence: int = 3
    ):
        self.examples = [encode_pair(p, tokenizer, max_length, max_target_tokens, max_evidence) for p in pairs]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.examples[i]


class PadCollator:
    """Pads a batch on the right to its longest example: pad id in input_ids, 0 in the attention
    mask and -100 in labels, so padding neither attends nor counts in the loss."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        width = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, b in enumerate(batch):
            n = len(b["input_ids"])
            ids[i, :n] = torch.tensor(b["input_ids"])
            labels[i, :n] = torch.tensor(b["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
