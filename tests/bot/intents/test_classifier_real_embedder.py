"""The classifier on real sentence embeddings: MiniLM on a small hand-written set, and a
BANKING77 subset from the shared datasets (slow: they load the model)."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest

from bot.intents import EmbeddingIntentClassifier

SMALL_SET = {
    "order_status": [
        "where is my order",
        "has my package shipped yet",
        "when will my parcel arrive",
        "track my delivery",
        "my order hasn't come",
        "what's the status of my order",
        "is my order on its way",
        "how long until my package gets here",
    ],
    "refund": [
        "I want my money back",
        "how do I get a refund",
        "refund my purchase please",
        "can I be reimbursed",
        "when will my refund arrive",
        "I was charged but want a refund",
        "return the money to my card",
        "I'd like to request a refund",
    ],
    "cancel_order": [
        "cancel my order",
        "I don't want this order anymore",
        "please stop my order",
        "can I cancel before it ships",
        "how to cancel an order",
        "call off my purchase",
        "I need to cancel what I bought",
        "undo my order",
    ],
    "change_password": [
        "I forgot my password",
        "reset my password",
        "how do I change my password",
        "can't log in, need a new password",
        "password reset link",
        "update my login password",
        "my password doesn't work",
        "help me change my account password",
    ],
    "payment_methods": [
        "can I pay with paypal",
        "which cards do you accept",
        "do you take apple pay",
        "what payment options are there",
        "can I pay by credit card",
        "do you accept mastercard",
        "is bank transfer possible",
        "can I pay with a gift card",
    ],
}


@pytest.mark.slow
def test_real_minilm_flags_off_topic_questions_but_not_in_domain_paraphrases():
    from retrieval.config import EmbedderConfig
    from retrieval.embedder import SentenceEmbedder
    from retrieval.threads import configure_threads

    configure_threads(1, 1)
    embedder = SentenceEmbedder(EmbedderConfig(torch_threads=1)).load()
    texts = [t for examples in SMALL_SET.values() for t in examples]
    labels = [label for label, examples in SMALL_SET.items() for _ in examples]
    clf = EmbeddingIntentClassifier.train(embedder.encode(texts), texts, labels, embedder_id=embedder.model_id)

    off_topic = [
        "what's the weather tomorrow",
        "should I buy Tesla stock",
        "give me a lasagna recipe",
        "who won the football game last night",
    ]
    for p in clf.predict(embedder.encode(off_topic), off_topic):
        assert p.out_of_scope, p
    paraphrases = {
        "has my parcel been sent out yet?": "order_status",
        "I'd like a refund for my purchase": "refund",
        "please cancel the order I placed": "cancel_order",
    }
    queries = list(paraphrases)
    for q, p in zip(queries, clf.predict(embedder.encode(queries), queries), strict=True):
        assert p.intent == paraphrases[q] and not p.out_of_scope, (q, p)


@pytest.mark.shared
@pytest.mark.slow
def test_banking77_subset_of_ten_intents_is_classified_accurately(shared_datasets):
    path = shared_datasets / "banking77" / "train.csv"
    if not path.is_file():
        pytest.skip("../shared/datasets/banking77 is absent")
    from retrieval.config import EmbedderConfig
    from retrieval.embedder import SentenceEmbedder
    from retrieval.threads import configure_threads

    by: dict[str, list[str]] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by[row["category"]].append(row["text"])
    chosen = sorted(by)[:10]
    rng = np.random.default_rng(0)
    train, test = [], []
    for label in chosen:
        texts = [by[label][i] for i in rng.permutation(len(by[label]))[:60]]
        train += [(t, label) for t in texts[:45]]
        test += [(t, label) for t in texts[45:]]
    configure_threads(1, 1)
    embedder = SentenceEmbedder(EmbedderConfig(torch_threads=1)).load()
    clf = EmbeddingIntentClassifier.train(
        embedder.encode([t for t, _ in train]),
        [t for t, _ in train],
        [y for _, y in train],
        embedder_id=embedder.model_id,
    )
    preds = clf.predict(embedder.encode([t for t, _ in test]), [t for t, _ in test])
    accuracy = np.mean([p.intent == y for p, (_, y) in zip(preds, test, strict=True)])
    assert accuracy >= 0.85, accuracy
