"""The conversation store: SQLite through sqlite-utils, in WAL mode (the default), or
PostgreSQL through psycopg 3 (`CSBOT_DATABASE_URL`), behind one interface.

- `conversations`: `ConversationStore`, conversations, turns, handoffs and their reads;
- `feedback`: ratings of bot replies and CSAT scores;
- `channels`: the messaging channels' inbox and outbox;
- `retention`: erasure and finding conversations to erase;
- `database`: the two databases behind one small interface (`SqlDatabase`), typed errors;
- `connection`: opening the store (a file owner-only in WAL, or a database URL), migrated,
  and the write transaction;
- `schema`: the migrations that build the schema, and applying them (locked, all or nothing);
- `admin`: schema status, upgrade, export and import of conversations (`csbot db`; imported
  by its users, not here);
- `records`: the dialogue state and message records written and read;
- `errors`: the store's typed errors.
"""

from bot.store.conversations import ConversationStore
from bot.store.errors import (
    ConversationImportError,
    DuplicateClientMessageError,
    NotABotMessageError,
    NotAStoreError,
    SchemaTooNewError,
    StoreError,
    StoreUnavailableError,
    UnknownMessageError,
)
from bot.store.records import DialogueState, MessageRecord
from bot.store.schema import (
    SCHEMA_NAME,
    m001_initial,
    m002_agent_edits,
    m003_web_channel,
    m004_public_access,
    m005_agent_panel,
    m006_channels,
    m007_replicas,
)

__all__ = [
    "SCHEMA_NAME",
    "ConversationImportError",
    "ConversationStore",
    "DialogueState",
    "DuplicateClientMessageError",
    "MessageRecord",
    "NotABotMessageError",
    "NotAStoreError",
    "SchemaTooNewError",
    "StoreError",
    "StoreUnavailableError",
    "UnknownMessageError",
    "m001_initial",
    "m002_agent_edits",
    "m003_web_channel",
    "m004_public_access",
    "m005_agent_panel",
    "m006_channels",
    "m007_replicas",
]
