"""The first-name gazetteer of the PII scrubber: which words are first names, and which of
those are also common words, places or brands ("Will", "May", "Georgia")."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

# package data (pyproject's [tool.setuptools.package-data]); its header says where the names come from
GAZETTEER_PATH = Path(__file__).with_name("first_names.txt")


@dataclass(frozen=True)
class Gazetteer:
    """First names; `words` are those that are also a common word, place or brand."""

    names: frozenset[str]
    words: frozenset[str]

    @classmethod
    def read(cls, path: str | Path) -> Gazetteer:
        """A file of one name per line ("<name><TAB>word" for a word-name; # comments)."""
        names: set[str] = set()
        words: set[str] = set()
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            name, _, flag = line.partition("\t")
            names.add(name.strip())
            if flag.strip() == "word":
                words.add(name.strip())
        return cls(frozenset(names), frozenset(words))

    def kind(self, word: str) -> str | None:
        """ "name" (a first name), "word" (a first name that is also a word), or None."""
        w = word[:1].upper() + word[1:].lower()
        if w in self.words:
            return "word"
        return "name" if w in self.names else None


@cache
def default_gazetteer() -> Gazetteer:
    """The shipped first-name list, read once per process (it is immutable package data)."""
    return Gazetteer.read(GAZETTEER_PATH)
