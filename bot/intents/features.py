"""The classifier's input features: the query embedding hstacked with word and character
n-gram TF-IDF of the raw text, one sparse row per query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from bot.intents.config import IntentClassifierConfig

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer


class FeatureBuilder:
    """Embedding (+ TF-IDF word and char n-grams) -> one sparse row per query."""

    def __init__(self, config: IntentClassifierConfig):
        self.config = config
        self.word: TfidfVectorizer | None = None
        self.char: TfidfVectorizer | None = None

    def _vectorizers(
        self, n_texts: int = 0, vocabularies: dict[str, list[str]] | None = None
    ) -> tuple[TfidfVectorizer, TfidfVectorizer]:
        """The word and char TF-IDF vectorizers the config describes; with `vocabularies`
        (saved ones) they are fixed to those columns and need only their idf."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        c = self.config
        vocab = vocabularies or {}
        word = TfidfVectorizer(
            ngram_range=tuple(c.word_ngram_range),
            sublinear_tf=True,
            token_pattern=r"(?u)\b\w+\b",
            dtype=np.float32,
            vocabulary=vocab.get("word"),
        )
        char = TfidfVectorizer(
            analyzer="char",
            ngram_range=tuple(c.char_ngram_range),
            sublinear_tf=True,
            min_df=c.char_min_df if n_texts >= 50 else 1,
            dtype=np.float32,
            vocabulary=vocab.get("char"),
        )
        return word, char

    def fit_transform(self, vectors: np.ndarray, texts: Sequence[str]) -> csr_matrix:
        if self.config.use_text_features:
            self.word, self.char = self._vectorizers(len(texts))
            self.word.fit(texts)
            self.char.fit(texts)
        return self.transform(vectors, texts)

    def transform(self, vectors: np.ndarray, texts: Sequence[str]) -> csr_matrix:
        from scipy import sparse

        c = self.config
        blocks = [sparse.csr_matrix(np.asarray(vectors, dtype=np.float32) * c.embedding_weight)]
        if self.word is not None and self.char is not None:
            blocks.append(self.word.transform(texts) * c.word_weight)
            blocks.append(self.char.transform(texts) * c.char_weight)
        return sparse.hstack(blocks, format="csr", dtype=np.float32)

    @property
    def n_text_features(self) -> int:
        """Columns the TF-IDF blocks add after the embedding's."""
        if self.word is None or self.char is None:
            return 0
        return len(self.word.vocabulary_) + len(self.char.vocabulary_)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
        """(idf arrays, vocabularies in column order): what `restore` needs."""
        if self.word is None or self.char is None:
            return {}, {}
        arrays, vocab = {}, {}
        for name, vec in (("word", self.word), ("char", self.char)):
            terms = [""] * len(vec.vocabulary_)
            for term, column in vec.vocabulary_.items():
                terms[column] = term
            vocab[name] = terms
            arrays[f"{name}_idf"] = np.asarray(vec.idf_)
        return arrays, vocab

    @classmethod
    def restore(
        cls, config: IntentClassifierConfig, arrays: dict[str, np.ndarray], vocab: dict[str, list[str]]
    ) -> FeatureBuilder:
        """The builder `state` describes, with the TF-IDF columns and idf fixed to the saved ones."""
        builder = cls(config)
        if config.use_text_features:
            builder.word, builder.char = builder._vectorizers(vocabularies=vocab)
            for name, vec in (("word", builder.word), ("char", builder.char)):
                vec.idf_ = arrays[f"{name}_idf"]  # also checks it against the vocabulary
        return builder
