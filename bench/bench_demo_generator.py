"""Can the demo ship a GPT-2 composer? Learning rounds on the demo workspace, judged by the
round's own rule on the demo's held-out conversations, and a study of one more lever.

    python bench/bench_demo_generator.py [--minutes 5] [--epochs 4] [--pointer] [--workspace .csbot]

For each (--minutes, --epochs) setting, one `finetune round` (bot.learning.run_round, the
round `csbot build --generator-minutes` runs: the recipe's defaults, pairs from
data/conversations.jsonl, scored with the shipped decoding on the first 100 pairs of
data/heldout.jsonl against the retrieval composer) runs on a temporary copy of the
workspace, so the workspace itself gets no model. Reported: both ROUGE-L figures, the
fallback rate, invented values on every candidate, the training's steps and minutes.

The copy study (`--copy-bias B ...`, `--copy-span N ...`, `--copy-to-end off on`,
`--copy-from-start off on`: every combination) decodes the round's validation pairs with
each setting of `GeneratorConfig`'s `copy_bias`, `copy_span`, `copy_to_end` and
`copy_from_start`, and with `--consensus-k K ...` of `consensus_k` (how many retrieved
answers the candidates are compared with when one is chosen), keeps the one whose sent
replies score best
there, and scores the held-out pairs with it once (the floor study then runs with it too).

With `--choose-agreement` the round itself chooses the candidate's agreement floor on its
validation pairs (`GeneratorConfig.min_agreement`, `bot.evaluation.heldout.pick_min_agreement`:
the guard applies first, a floor is taken only where its gain over none has a paired 95%
interval above zero), and its own held-out figure is scored with it.

The agreement-floor study then asks whether sending the GPT-2 reply only where it agrees
with a retrieved answer (ROUGE-L of the chosen candidate against the best of the consensus
references >= a floor; the retrieval composer's reply otherwise) would win: the floor is
chosen on the round's validation pairs (first 100) and scored once on the held-out pairs,
with the share of replies GPT-2 would then write.

Progress on stderr; per-pair rows in bench/results/demo_generator/; the LAST stdout line is
one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.composers.generative import GPT2Composer  # noqa: E402 - after sys.path has the repo
from bot.composers.retrieval import RetrievalComposer  # noqa: E402
from bot.domain import Domain  # noqa: E402
from bot.evaluation.bootstrap import paired_bootstrap_ci  # noqa: E402
from bot.evaluation.fallback import fallback_reply  # noqa: E402
from bot.evaluation.heldout import request_from_pair  # noqa: E402
from bot.learning import RoundSettings, run_round  # noqa: E402
from bot.settings import CsbotSettings  # noqa: E402
from bot.workspace import company_facts  # noqa: E402
from finetune.guard import GroundingGuard, clean_generated_text  # noqa: E402

FLOORS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PAIRS_SCORED = 100
CANDIDATE_KEYS = ("rougeL_f1", "fallback_rate", "hallucinated_entity_rate", "grounded_share")


def log(message: str) -> None:
    print(f"• {message}", file=sys.stderr, flush=True)


def agreement_rows(
    config: CsbotSettings, model: Path, pairs: list[dict[str, Any]], copying: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Per pair: ROUGE-L of the chosen GPT-2 candidate and of the retrieval composer's reply
    against the target, and the candidate's agreement with the retrieved answers."""
    from rouge_score import rouge_scorer

    domain = Domain.load(config.workspace / "domain.json")
    dialogue = config.dialogue
    generator = replace(config.generator, **(copying or {}))
    composer = GPT2Composer(
        model,
        generator,
        fallback=RetrievalComposer.from_config(dialogue, domain),
        company_facts=[],
        slot_questions=domain.slot_questions,
    ).load()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    # invented values on every decoded candidate, as the round counts them (bot.evaluation.heldout)
    entity_guard = GroundingGuard(list(company_facts(config.workspace)), 0.0)
    rows = []
    for pair in pairs:
        request = request_from_pair(pair)
        turn = composer.compose_with_candidates(request)
        conversation = [t["text"] for t in pair["context"]]
        evidence = [h.unit.evidence_text for h in composer.evidence_hits(request)]
        invented = [
            clean_generated_text(g.text, g.ended)
            for g in turn.candidates
            if entity_guard.check(
                clean_generated_text(g.text, g.ended), conversation=conversation, evidence=evidence
            ).rule
            == "entity"
        ]
        retrieval = fallback_reply(request, dialogue, domain)
        generated = clean_generated_text(turn.generated.text, turn.generated.ended) if turn.generated else None
        references = composer.consensus_references(request)
        agreement = (
            max((scorer.score(ref, generated)["rougeL"].fmeasure for ref in references), default=0.0)
            if generated is not None
            else None
        )
        rows.append(
            {
                "id": pair["id"],
                "gpt2": None if generated is None else scorer.score(pair["target"], generated)["rougeL"].fmeasure,
                "retrieval": scorer.score(pair["target"], retrieval)["rougeL"].fmeasure,
                "agreement": agreement,
                "generated": generated,
                "retrieval_reply": retrieval,
                "target": pair["target"],
                "candidates": len(turn.candidates),
                "invented": invented,
            }
        )
    return rows


def with_floor(rows: list[dict[str, Any]], floor: float) -> tuple[float, float]:
    """(mean ROUGE-L, GPT-2 share) when GPT-2's reply is sent only at `floor` agreement or more."""
    sent = [r["gpt2"] is not None and r["agreement"] >= floor for r in rows]
    scores = [r["gpt2"] if s else r["retrieval"] for r, s in zip(rows, sent, strict=True)]
    return round(statistics.fmean(scores), 4), round(sum(sent) / len(rows), 4)


def train_round(
    args: argparse.Namespace, config: CsbotSettings, ws: Path, minutes: float, epochs: float | None
) -> tuple[Path, dict[str, Any]]:
    """One learning round on the workspace copy `ws`: its folder and its report."""
    settings = RoundSettings(
        transcripts=[args.data / "conversations.jsonl"],
        formats=["jsonl"],
        heldout=[args.data / "heldout.jsonl"],
        base=args.base,
        max_minutes=minutes,
        eval_limit=PAIRS_SCORED,
        train_overrides={
            **({} if epochs is None else {"epochs": epochs}),
            **({} if args.lr is None else {"lr": args.lr}),
        },
        base_overrides={"pointer": True} if args.pointer else {},
        choose_agreement=args.choose_agreement,
        keep_after_lookup=args.keep_after_lookup,
    )
    log(f"round: {minutes:g} minutes, epochs {epochs or 'the recipe'}, base {args.base}")
    report = run_round(config, settings, progress=log)
    return ws / "finetune" / "rounds" / report["round"], report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path, default=REPO / ".csbot")
    ap.add_argument("--data", type=Path, default=REPO / "data")
    ap.add_argument("--minutes", type=float, nargs="+", default=[5.0])
    ap.add_argument("--epochs", type=float, nargs="+", default=None, help="one per --minutes [default: the recipe's]")
    ap.add_argument(
        "--copy-bias",
        type=float,
        nargs="+",
        default=None,
        help="GeneratorConfig.copy_bias values to choose among on the validation pairs [default: the configured one]",
    )
    ap.add_argument(
        "--copy-span",
        type=int,
        nargs="+",
        default=None,
        help="GeneratorConfig.copy_span values to choose among (with each --copy-bias) [default: the configured one]",
    )
    ap.add_argument(
        "--consensus-k",
        type=int,
        nargs="+",
        default=None,
        help="GeneratorConfig.consensus_k values to choose among: how many retrieved answers the candidates "
        "are compared with [default: the model's]",
    )
    for field in ("copy_to_end", "copy_from_start"):
        ap.add_argument(
            "--" + field.replace("_", "-"),
            choices=["off", "on"],
            nargs="+",
            default=None,
            help=f"GeneratorConfig.{field} settings to choose among [default: the configured one]",
        )
    ap.add_argument(
        "--pointer",
        action="store_true",
        help="train the scratch GPT-2 with a pointer over earlier tokens (GeneratorBaseConfig.pointer)",
    )
    ap.add_argument(
        "--base",
        default="scratch",
        help="scratch, or a GPT-2 checkpoint directory to fine-tune from (RoundSettings.base)",
    )
    ap.add_argument(
        "--choose-agreement",
        action="store_true",
        help="the round chooses the candidate's agreement floor on its validation pairs "
        "(RoundSettings.choose_agreement)",
    )
    ap.add_argument(
        "--keep-after-lookup",
        action="store_true",
        help="keep the replies right after an order lookup in the pairs (RoundSettings.keep_after_lookup)",
    )
    ap.add_argument(
        "--lr", type=float, default=None, help="peak learning rate [default: the base's, bot.training.default_lr]"
    )
    ap.add_argument("--keep", type=Path, default=None, help="copy each round's folder (pairs, model) into this folder")
    ap.add_argument(
        "--from-round",
        type=Path,
        default=None,
        help="a kept round's folder: score its model and pairs again, no training (decoding from CSBOT_GENERATOR__*)",
    )
    ap.add_argument("--tag", default="", help="appended to the per-pair file's name")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "demo_generator")
    args = ap.parse_args()
    if args.epochs is not None and len(args.epochs) != len(args.minutes):
        sys.exit(f"error: {len(args.minutes)} --minutes but {len(args.epochs)} --epochs; give one per setting")
    if not (args.workspace / "workspace.json").is_file():
        log(f"building {args.workspace} from {args.data}")
        csbot = Path(sys.executable).with_name("csbot")
        subprocess.run([str(csbot), "build", "--data", str(args.data), "--workspace", str(args.workspace)], check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, minutes in enumerate(args.minutes):
        epochs = None if args.epochs is None else args.epochs[i]
        with tempfile.TemporaryDirectory(prefix="csbot-demo-gen-") as tmp:
            ws = Path(tmp) / "ws"
            shutil.copytree(args.workspace, ws, ignore=shutil.ignore_patterns("finetune", "models"))
            config = CsbotSettings.from_env(ws)
            if args.from_round is not None:
                root = args.from_round
                report = json.loads((root / "round.json").read_text(encoding="utf-8"))
                log(f"round {report['round']} from {root}: no training")
            else:
                root, report = train_round(args, config, ws, minutes, epochs)
                if args.keep is not None:
                    shutil.copytree(root, args.keep / report["round"], dirs_exist_ok=True)
                    log(f"kept the round in {args.keep / report['round']}")
            model = root / "run" / "final"

            def read(split: str, root: Path = root) -> list[dict[str, Any]]:
                lines = (root / "pairs" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
                return [json.loads(line) for line in lines if line.strip()][:PAIRS_SCORED]

            gen = config.generator

            def on_off(chosen: list[str] | None, configured: bool) -> list[bool]:
                return [c == "on" for c in chosen] if chosen else [configured]

            # every combination, in the order of least change to the decoding first
            settings = [
                {"copy_bias": bias, "copy_span": span, "copy_to_end": end, "copy_from_start": start}
                for bias in args.copy_bias or [gen.copy_bias]
                for span in args.copy_span or [gen.copy_span]
                for end in on_off(args.copy_to_end, gen.copy_to_end)
                for start in on_off(args.copy_from_start, gen.copy_from_start)
            ]
            if args.consensus_k:
                settings = [{**s, "consensus_k": k} for s in settings for k in args.consensus_k]

            def named(copying: dict[str, Any]) -> str:
                return ", ".join(f"{k.removeprefix('copy_')} {v:g}" for k, v in copying.items())

            dev_by_setting = {}
            for copying in settings:
                log(f"validation pairs, copying: {named(copying)}")
                dev_by_setting[named(copying)] = agreement_rows(config, model, read("valid"), copying)

            def sent_score(rows: list[dict[str, Any]]) -> float:
                return statistics.fmean(r["retrieval"] if r["gpt2"] is None else r["gpt2"] for r in rows)

            # ties: the first listed (the least change to the decoding)
            best = max(
                range(len(settings)), key=lambda i: (round(sent_score(dev_by_setting[named(settings[i])]), 4), -i)
            )
            copying = settings[best]
            dev = dev_by_setting[named(copying)]
            log(f"held-out pairs, copying: {named(copying)} (chosen on the validation pairs)")
            test = agreement_rows(config, model, read("heldout"), copying)
        dev_table = {f: with_floor(dev, f) for f in FLOORS}
        chosen = max(FLOORS, key=lambda f: (dev_table[f][0], f))  # ties: the higher floor
        tag = f"{minutes:g}min_e{epochs or 'recipe'}" + ("_pointer" if args.pointer else "")
        if args.base != "scratch":
            tag += "_base-" + Path(args.base).parent.name
        if args.lr is not None:
            tag += f"_lr{args.lr:g}"
        tag += args.tag
        (args.out / f"{tag}.json").write_text(
            json.dumps({"dev": dev, "test": test, "copying": copying}, indent=1) + "\n"
        )
        result = {
            "minutes": minutes,
            "epochs": epochs,
            "pointer": args.pointer,
            "base": args.base,
            "lr": args.lr,
            "train": report["train"],
            "candidate": {k: report["candidate"][k] for k in CANDIDATE_KEYS},
            "retrieval": report["current"]["rougeL_f1"],
            "decision": report["decision"],
            "round_agreement": report.get("agreement"),
            # the chosen candidate (before the guard) against the retrieval composer, per pair
            "test_gain_ci95": list(
                paired_bootstrap_ci(
                    [r["retrieval"] if r["gpt2"] is None else r["gpt2"] for r in test], [r["retrieval"] for r in test]
                )
            ),
            "retrieval_dev": round(statistics.fmean(r["retrieval"] for r in dev), 4),
            "copying_dev": {name: round(sent_score(rows), 4) for name, rows in dev_by_setting.items()},
            "copying_chosen": copying,
            "gpt2_test_at_chosen_bias": round(sent_score(test), 4),
            # held-out, chosen bias: candidates naming a value found in neither the
            # conversation, the prompt's evidence nor company.json, of all decoded
            "invented_candidates_test": [sum(len(r["invented"]) for r in test), sum(r["candidates"] for r in test)],
            "floor_dev": {str(f): v for f, v in dev_table.items()},
            "floor_chosen": chosen,
            "floor_test": {"rougeL_f1": with_floor(test, chosen)[0], "gpt2_share": with_floor(test, chosen)[1]},
        }
        results.append(result)
        print(
            f"{tag}: round's own: GPT-2 {result['candidate']['rougeL_f1']} vs retrieval {result['retrieval']} "
            f"({result['decision']}; gain 95% CI {result['test_gain_ci95']}); "
            f"copying {named(copying)} (dev) "
            f"-> held-out {result['gpt2_test_at_chosen_bias']}; "
            f"floor {chosen} (dev) -> held-out {result['floor_test']}",
            flush=True,
        )
    print(json.dumps({"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "settings": results}))


if __name__ == "__main__":
    main()
