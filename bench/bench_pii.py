"""Recall and precision of the PII scrubber (`retrieval.pii`), per kind and overall.

    python bench/bench_pii.py [--labelled data/pii_labelled.jsonl] [--shared ../shared/datasets]
                              [--show-errors]

Three measurements, each on text the patterns were not generated from:

  (a) `data/pii_labelled.jsonl`: hand-written support lines with every personal value
      labelled, scored separately on its `tune` part (the patterns were adjusted while
      looking at its errors) and its `test` part (never looked at while tuning). The
      company's own words (data/company.json) are the protect list, as in training.
  (b) the ABCD sample: labels are the values its scenario metadata says belong to the
      customer (name and each part of it, username, email, phone, order id, street
      address, zip code, account id) wherever they occur in the dialogue, any case;
      the scrubber runs on whole dialogues (`scrub_conversation`), as ingestion does.
  (c) Bitext (first --bitext-rows rows): its texts are already anonymised with
      placeholders, so whatever is found there is almost surely a false alarm; reported
      as findings per 1,000 texts, per kind.

A labelled value counts as found (recall) when the scrubber's spans cover all of it, of
any kind - masked is masked; `typed_recall` also wants the right kind. A finding counts as
right (precision) when it overlaps a labelled value. --show-errors prints the misses and
false alarms of the tune part and of ABCD on stderr (never of the test part).

Progress goes to stderr; the LAST stdout line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from finetune.guard import company_facts_from  # noqa: E402 - after sys.path has the repo
from retrieval.pii import PII_KINDS, PiiScrubber, PiiSpan  # noqa: E402 - after sys.path has the repo

Gold = tuple[int, int, str]  # start, end, kind

ABCD_FIELDS = {  # scenario field -> kind
    ("personal", "customer_name"): "name",
    ("personal", "username"): "username",
    ("personal", "email"): "email",
    ("personal", "phone"): "phone",
    ("personal", "account_id"): "account_number",
    ("order", "order_id"): "order_id",
    ("order", "street_address"): "street_address",
    ("order", "zip_code"): "zip_code",
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Tally:
    """Counts for recall and precision, per kind."""

    def __init__(self) -> None:
        self.gold: Counter[str] = Counter()
        self.found: Counter[str] = Counter()
        self.typed: Counter[str] = Counter()
        self.predicted: Counter[str] = Counter()
        self.right: Counter[str] = Counter()
        self.misses: list[tuple[str, str, str]] = []  # (kind, value, text)
        self.false_alarms: list[tuple[str, str, str]] = []

    def add(self, text: str, gold: Sequence[Gold], predicted: Sequence[PiiSpan]) -> None:
        for start, end, kind in gold:
            self.gold[kind] += 1
            if _covered(text, start, end, [(p.start, p.end) for p in predicted]):
                self.found[kind] += 1
            else:
                self.misses.append((kind, text[start:end], text))
            same = [(p.start, p.end) for p in predicted if p.kind == kind]
            if _covered(text, start, end, same):
                self.typed[kind] += 1
        for p in predicted:
            self.predicted[p.kind] += 1
            if any(p.start < e and s < p.end for s, e, _ in gold):
                self.right[p.kind] += 1
            else:
                self.false_alarms.append((p.kind, text[p.start : p.end], text))

    def report(self) -> dict:
        kinds = [k for k in PII_KINDS if self.gold[k] or self.predicted[k]]
        per_kind = {
            k: _figures(self.gold[k], self.found[k], self.typed[k], self.predicted[k], self.right[k]) for k in kinds
        }
        overall = _figures(
            sum(self.gold.values()),
            sum(self.found.values()),
            sum(self.typed.values()),
            sum(self.predicted.values()),
            sum(self.right.values()),
        )
        return {"overall": overall, "per_kind": per_kind}


def _figures(gold: int, found: int, typed: int, predicted: int, right: int) -> dict:
    return {
        "labelled": gold,
        "recall": round(found / gold, 3) if gold else None,
        "typed_recall": round(typed / gold, 3) if gold else None,
        "found": predicted,
        "precision": round(right / predicted, 3) if predicted else None,
    }


def _covered(text: str, start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    """Every non-space character of text[start:end] lies inside one of `spans`."""
    spans = list(spans)
    return all(text[i].isspace() or any(s <= i < e for s, e in spans) for i in range(start, end))


def labelled_sample(path: Path, scrubber: PiiScrubber) -> dict[str, Tally]:
    tallies = {"tune": Tally(), "test": Tally()}
    n = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            gold = [(s["start"], s["end"], s["kind"]) for s in row["spans"]]
            tallies[row["split"]].add(row["text"], gold, scrubber.find(row["text"]))
            n += 1
    log(
        f"labelled sample: {n} lines ({sum(tallies['tune'].gold.values())} tune / "
        f"{sum(tallies['test'].gold.values())} test values)"
    )
    return tallies


def _value_pattern(value: str, kind: str) -> re.Pattern[str]:
    if kind == "phone":  # any separators between the digits
        digits = re.sub(r"\D", "", value)
        return re.compile(r"(?<!\d)\(?" + r"[\s().-]{0,2}".join(digits) + r"(?!\d)")
    return re.compile(rf"(?<![\w]){re.escape(value)}(?![\w])", re.IGNORECASE)


def abcd_gold(dialogue: dict, texts: Sequence[str]) -> list[list[Gold]]:
    """The scenario's personal values wherever they occur in each text, longest first."""
    values: list[tuple[str, str]] = []
    scenario = dialogue.get("scenario") or {}
    for (section, field), kind in ABCD_FIELDS.items():
        value = str((scenario.get(section) or {}).get(field) or "").strip()
        if value:
            values.append((value, kind))
            if kind == "name":
                values += [(part, "name") for part in value.split() if len(part) >= 2]
    values.sort(key=lambda v: len(v[0]), reverse=True)
    out: list[list[Gold]] = []
    for text in texts:
        spans: list[Gold] = []
        for value, kind in values:
            for m in _value_pattern(value, kind).finditer(text):
                if not any(m.start() < e and s < m.end() for s, e, _ in spans):
                    spans.append((m.start(), m.end(), kind))
        out.append(sorted(spans))
    return out


def abcd_sample(path: Path) -> Tally:
    dialogues = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(dialogues, dict):
        dialogues = [d for split in dialogues.values() for d in split]
    scrubber = PiiScrubber()  # another company's dialogues: nothing of ours to protect
    tally = Tally()
    for d in dialogues:
        texts = [str(text) for _, text in d["original"]]
        for text, gold, spans in zip(texts, abcd_gold(d, texts), scrubber.find_conversation(texts), strict=True):
            tally.add(text, gold, spans)
    log(f"ABCD sample: {len(dialogues)} dialogues, {sum(tally.gold.values())} labelled values")
    return tally


def bitext_flags(path: Path, rows: int, scrubber: PiiScrubber) -> dict:
    texts: list[str] = []
    with path.open(newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= rows:
                break
            texts += [row["instruction"], row["response"]]
    counts: Counter[str] = Counter()
    examples: dict[str, list[str]] = defaultdict(list)
    started = time.perf_counter()
    for text in texts:
        for s in scrubber.find(text):
            counts[s.kind] += 1
            if len(examples[s.kind]) < 5:
                examples[s.kind].append(text[max(0, s.start - 30) : s.end + 30].replace("\n", " "))
    seconds = time.perf_counter() - started
    log(f"Bitext: {len(texts)} texts scrubbed in {seconds:.1f} s")
    for kind, ex in examples.items():
        log(f"  {kind}: " + " | ".join(ex))
    return {
        "texts": len(texts),
        "per_1000_texts": {k: round(1000 * v / len(texts), 2) for k, v in counts.most_common()},
        "texts_per_second": round(len(texts) / seconds),
    }


def show_errors(label: str, tally: Tally) -> None:
    for kind, value, text in tally.misses:
        log(f"  [{label}] MISS {kind}: {value!r} in {text!r}")
    for kind, value, text in tally.false_alarms:
        log(f"  [{label}] FALSE {kind}: {value!r} in {text!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labelled", type=Path, default=REPO / "data" / "pii_labelled.jsonl")
    parser.add_argument("--company", type=Path, default=REPO / "data" / "company.json")
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--bitext-rows", type=int, default=5000)
    parser.add_argument("--show-errors", action="store_true", help="misses and false alarms of tune and ABCD")
    args = parser.parse_args()

    protect = company_facts_from(json.loads(args.company.read_text(encoding="utf-8")))
    scrubber = PiiScrubber(protect=protect)
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}

    tallies = labelled_sample(args.labelled, scrubber)
    result["labelled"] = {split: t.report() for split, t in tallies.items()}
    if args.show_errors:
        show_errors("tune", tallies["tune"])

    abcd = args.shared / "abcd" / "abcd_sample.json"
    if abcd.is_file():
        tally = abcd_sample(abcd)
        result["abcd"] = tally.report()
        if args.show_errors:
            show_errors("abcd", tally)
    else:
        log(f"{abcd} is absent: ABCD skipped")
        result["abcd"] = None

    bitext = args.shared / "bitext" / "train.csv"
    result["bitext_flags"] = bitext_flags(bitext, args.bitext_rows, scrubber) if bitext.is_file() else None

    for name, report in [
        ("tune", result["labelled"]["tune"]),
        ("test", result["labelled"]["test"]),
        ("abcd", result["abcd"]),
    ]:
        if report:
            o = report["overall"]
            log(
                f"{name:5s} overall: recall {o['recall']}  precision {o['precision']}  "
                f"({o['labelled']} labelled, {o['found']} found)"
            )
            for kind, f in report["per_kind"].items():
                log(
                    f"        {kind:16s} recall {f['recall']!s:6s} typed {f['typed_recall']!s:6s} "
                    f"precision {f['precision']!s:6s} ({f['labelled']} labelled, {f['found']} found)"
                )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
