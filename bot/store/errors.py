"""The conversation store's typed errors (an unknown conversation is `bot.errors.UnknownConversationError`)."""

from __future__ import annotations

from bot.errors import CsbotError


class StoreError(CsbotError):
    pass


class UnknownMessageError(StoreError):
    def __init__(self, message_id: int):
        self.message_id = message_id
        super().__init__(f"unknown message id {message_id}")


class NotABotMessageError(StoreError):
    """Feedback names a customer, agent or system message; only bot replies are rated."""

    def __init__(self, message_id: int, role: str):
        self.message_id, self.role = message_id, role
        super().__init__(f"message {message_id} is a {role} message; feedback is for bot replies")


class DuplicateClientMessageError(StoreError):
    """A turn carries a client message id that the conversation already has: the channel
    re-sent a message, and the stored turn is the answer (nothing was written)."""

    def __init__(self, conversation_id: str, client_message_id: str):
        self.conversation_id, self.client_message_id = conversation_id, client_message_id
        super().__init__(
            f"conversation {conversation_id} already has a message with client_message_id {client_message_id!r}"
        )


class SchemaTooNewError(StoreError):
    """The store was migrated by a newer csbot: it has migrations this code does not know.

    Opening it anyway would let this older code write rows that miss what the newer schema
    expects (or read columns wrongly), so it is refused before anything is read or written."""

    def __init__(self, path: str, unknown: list[str]):
        self.path, self.unknown = path, unknown
        super().__init__(
            f"store {path} has schema migrations this csbot does not know ({', '.join(unknown)}): it was "
            "upgraded by a newer csbot; upgrade csbot to that version (or newer) to use it"
        )


class NotAStoreError(StoreError):
    """The file is not a csbot store: not SQLite at all, or a SQLite database of something else."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"{path} is not a csbot store: {reason}; check --workspace or the path")


class StoreUnavailableError(StoreError):
    """The store could not be opened or locked (a missing file, no permission, a write lock
    held by another process for longer than we wait, a database server that does not
    answer). Nothing was written; retrying later can succeed."""

    def __init__(self, path: str, reason: str, advice: str):
        self.path, self.reason = path, reason
        super().__init__(f"cannot use store {path}: {reason}; {advice}")


class ConstraintError(StoreError):
    """A write broke one of the schema's constraints (a unique key, a foreign key); the
    statement wrote nothing. The store's own methods turn the expected ones into precise
    errors (`DuplicateClientMessageError`, say)."""

    def __init__(self, path: str, reason: str):
        self.path, self.reason = path, reason
        super().__init__(f"store {path} refused a write: {reason}")


class ConversationImportError(StoreError):
    """`import_conversations` refused its file: nothing was written. `row` is the 1-based line."""

    def __init__(self, path: str, row: int | None, reason: str):
        self.path, self.row, self.reason = path, row, reason
        where = f"{path}, line {row}" if row is not None else path
        super().__init__(f"{where}: {reason}. Nothing was imported from this file.")


class ReplicaSettingsConflictError(StoreError):
    """A replica was started on a workspace whose running replicas have other settings
    (`bot.store.replicas`): serving beside them would answer or order turns differently.
    `differences`: setting key -> (this replica's value, the running replica's value)."""

    def __init__(self, other: str, differences: dict[str, tuple[str, str]]):
        self.other, self.differences = other, differences
        named = "; ".join(f"{key} is {mine!r} here but {theirs!r} there" for key, (mine, theirs) in differences.items())
        super().__init__(
            f"this replica's settings differ from those of running {other}: {named}. Start it with the same "
            "settings as the running replicas, or stop them all first to change these settings"
        )


class SqliteOnSeveralMachinesError(ReplicaSettingsConflictError):
    """A replica was started on another machine than the running replicas of a workspace
    whose store is SQLite. SQLite keeps the processes of one machine in step through shared
    memory and the kernel's file locks; over a network file system, replicas on two
    machines would corrupt the store or lose turns."""

    def __init__(self, other: str, differences: dict[str, tuple[str, str]]):
        self.other, self.differences = other, differences
        StoreError.__init__(
            self,
            f"the workspace's SQLite store is in use by {other}, which runs on another machine: SQLite "
            "serves the replicas of one machine only. For replicas on several machines, put the store "
            "in PostgreSQL: set CSBOT_DATABASE_URL=postgresql://... on every replica "
            "(`csbot db export` / `csbot db import` move the conversations; docs/deployment.md)",
        )
