"""The root of csbot's typed errors, and those of the retrieval layer.

`CsbotError` is defined here, on the ground floor, so that every floor raises one family:
the edges (the CLI and the HTTP service in `bot/`) catch it and turn it into a message or
a status code; nothing below them prints or exits. Each message names the bad value and
the fix.
"""


class CsbotError(Exception):
    """Base class for csbot's own errors, whichever floor raises them."""


class ArtifactMismatchError(CsbotError):
    """A saved artifact (model, classifier, index) does not match the config or embedder
    it is loaded with."""


class RetrievalError(CsbotError):
    """Base class for every error raised by `retrieval`."""


class IndexMismatchError(RetrievalError):
    """The index on disk was built with another embedding model or dimension."""


class IndexCorruptedError(RetrievalError):
    """An index file is missing, truncated or does not match its manifest."""


class IndexNotFoundError(RetrievalError):
    """No index has been built in the given directory yet."""


class ImportFormatError(RetrievalError):
    """An import file is malformed. `row` is 1-based (a line or CSV row), `reason` says what."""

    def __init__(self, path: str, row: int | None, reason: str):
        self.path, self.row, self.reason = path, row, reason
        where = f"{path}, row {row}" if row is not None else path
        super().__init__(f"{where}: {reason}. Nothing was imported from this file.")


class ImportLimitError(ImportFormatError):
    """An import file is over one of `retrieval.config.ImportConfig`'s limits.

    `limit` names the setting (`max_file_bytes`, `max_json_depth`), `value` is its value.
    """

    def __init__(self, path: str, row: int | None, reason: str, *, limit: str, value: int):
        self.limit, self.value = limit, value
        super().__init__(path, row, f"{reason} (ImportConfig.{limit} = {value:,}; split the file or raise the limit)")


class EmbedderLoadError(RetrievalError):
    """The embedding model could not be loaded from the configured local path."""


class EmbedderNotLoadedError(RetrievalError):
    """The embedder was used before its model was loaded with `load()`."""
