"""The messaging channels' inbox and outbox, in the conversation store.

The inbox holds every customer message a platform delivered, written before the webhook
answers; the outbox every message for a platform until the platform took it. Both are
worked by `bot.channels.worker.ChannelWorker`. Taking a row is a claim: the row's
`next_attempt_at` moves past the claim's lease in the write transaction that found it
due (BEGIN IMMEDIATE: one writer at a time), so of two workers (replicas) one gets it,
and a worker that died holding it lets it go when the lease runs out. A row is not taken
while an earlier one of its conversation waits, so that a customer reads the messages in
the order they were written. Times are Unix seconds in, ISO 8601 UTC text in the rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.store.connection import StoreConnection
from bot.store.records import DialogueState
from retrieval.entities import redact_card_numbers

# system notices of the agents' side that the customer sees on their platform
FORWARDED_NOTICES = ("handed_back", "resolved")


def iso(ts: float) -> str:
    """Unix seconds as the store's timestamp text (sorts as time does)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")


def _decoded(row: dict[str, Any], *json_columns: str) -> dict[str, Any]:
    return {**row, **{c: json.loads(row[c]) for c in json_columns}}


class ChannelsMixin(StoreConnection):
    """`channel_inbox`, `channel_outbox` and `channel_addresses`."""

    # -- inbox -----------------------------------------------------------------------
    def record_inbound(
        self,
        platform: str,
        event_id: str,
        conversation_id: str,
        address: dict[str, Any],
        text: str,
        now: float,
    ) -> bool:
        """Keep a customer message for the worker, making its conversation (channel =
        platform) on first contact and remembering where the customer is reached. False,
        and nothing written, when the platform delivered this event before (a retry)."""
        stamp, address_json = iso(now), json.dumps(address, sort_keys=True)
        with self._write_transaction():
            self.db.execute(
                "insert into conversations (id, channel, status, state, created_at, updated_at) "
                "values (?, ?, 'open', ?, ?, ?) on conflict do nothing",
                [conversation_id, platform, DialogueState().to_json(), stamp, stamp],
            )
            cursor = self.db.execute(
                "insert into channel_inbox (platform, event_id, conversation_id, address, text, status, "
                "attempts, next_attempt_at, received_at) values (?, ?, ?, ?, ?, 'pending', 0, ?, ?) "
                "on conflict do nothing",
                [platform, event_id, conversation_id, address_json, text, stamp, stamp],
            )
            if cursor.rowcount != 1:
                return False
            self.db.execute(
                "insert into channel_addresses (conversation_id, platform, address, updated_at) values (?, ?, ?, ?) "
                "on conflict (conversation_id) do update set platform = excluded.platform, "
                "address = excluded.address, updated_at = excluded.updated_at",
                [conversation_id, platform, address_json, stamp],
            )
        return True

    def claim_inbound(self, now: float, lease_s: float, limit: int = 16) -> list[dict[str, Any]]:
        """Due pending inbox rows, oldest first, each claimed for `lease_s` seconds and its
        `attempts` counted; `address` decoded."""
        return self._claim("channel_inbox", now, lease_s, limit, "address")

    def finish_inbound(self, inbox_id: int, now: float, error: str | None = None) -> None:
        """The message's turn is taken (`error` None: done) or given up (failed).

        A done row's text is dropped: the turn stored it (card numbers masked, erasable),
        and the inbox is no second copy of what customers wrote. A failed row keeps its
        text for the operators, card numbers masked as the turn would have."""
        if error is None:
            self.db.execute(
                "update channel_inbox set status = 'done', processed_at = ?, error = null, text = '' where id = ?",
                [iso(now), inbox_id],
            )
            return
        rows = list(self.db.query("select text from channel_inbox where id = ?", [inbox_id]))
        text = redact_card_numbers(rows[0]["text"]) if rows else ""
        self.db.execute(
            "update channel_inbox set status = 'failed', processed_at = ?, error = ?, text = ? where id = ?",
            [iso(now), error, text, inbox_id],
        )

    def retry_inbound(self, inbox_id: int, error: str, at: float) -> None:
        self.db.execute(
            "update channel_inbox set error = ?, next_attempt_at = ? where id = ? and status = 'pending'",
            [error, iso(at), inbox_id],
        )

    def inbound(self, platform: str | None = None) -> list[dict[str, Any]]:
        """The inbox, oldest first (for the operators and the tests)."""
        where, params = ("where platform = ?", [platform]) if platform else ("", [])
        rows = self.db.query(f"select * from channel_inbox {where} order by id", params)
        return [_decoded(r, "address") for r in rows]

    # -- outbox ----------------------------------------------------------------------
    def queue_outgoing(
        self,
        conversation_id: str,
        platform: str,
        address: dict[str, Any],
        source_message_id: int,
        kind: str,
        message: dict[str, Any],
        now: float,
    ) -> bool:
        """Queue csbot message `source_message_id` for its platform (`message`: what the
        adapter renders, {text, buttons}); False when it is queued already (by another
        worker or replica): a message is sent once."""
        stamp = iso(now)
        cursor = self.db.execute(
            "insert into channel_outbox (conversation_id, platform, address, source_message_id, kind, "
            "message, status, attempts, next_attempt_at, created_at) values (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?) "
            "on conflict do nothing",
            [
                conversation_id,
                platform,
                json.dumps(address, sort_keys=True),
                source_message_id,
                kind,
                json.dumps(message),
                stamp,
                stamp,
            ],
        )
        return cursor.rowcount == 1

    def claim_outgoing(self, now: float, lease_s: float, limit: int = 16) -> list[dict[str, Any]]:
        """Due pending outbox rows, oldest first, claimed for `lease_s` seconds (a send
        that outlives it may be repeated: make the lease longer than a send's timeout)."""
        return self._claim("channel_outbox", now, lease_s, limit, "address", "message")

    def mark_sent(self, outbox_id: int, now: float) -> None:
        self.db.execute(
            "update channel_outbox set status = 'sent', sent_at = ?, last_error = null where id = ?",
            [iso(now), outbox_id],
        )

    def mark_send_failed(self, outbox_id: int, error: str, retry_at: float | None) -> None:
        """A send that failed: tried again at `retry_at`, or failed for good (None)."""
        if retry_at is None:
            self.db.execute(
                "update channel_outbox set status = 'failed', last_error = ? where id = ?", [error, outbox_id]
            )
        else:
            self.db.execute(
                "update channel_outbox set last_error = ?, next_attempt_at = ? where id = ? and status = 'pending'",
                [error, iso(retry_at), outbox_id],
            )

    def postpone_outgoing(self, outbox_id: int, at: float) -> None:
        """Give back a claimed row untried (an earlier message of its conversation waits)."""
        self.db.execute(
            # CASE, not max(a, b): two-argument max is SQLite's alone
            "update channel_outbox set attempts = case when attempts > 0 then attempts - 1 else 0 end, "
            "next_attempt_at = ? "
            "where id = ? and status = 'pending'",
            [iso(at), outbox_id],
        )

    def mark_calls_done(self, outbox_id: int, calls_done: int) -> None:
        """How many of a message's API calls were delivered (never made again)."""
        self.db.execute("update channel_outbox set calls_done = ? where id = ?", [calls_done, outbox_id])

    def outgoing(self, platform: str | None = None) -> list[dict[str, Any]]:
        """The outbox, oldest first (for the operators and the tests)."""
        where, params = ("where platform = ?", [platform]) if platform else ("", [])
        rows = self.db.query(f"select * from channel_outbox {where} order by id", params)
        return [_decoded(r, "address", "message") for r in rows]

    # -- forwarding ------------------------------------------------------------------
    def channel_address(self, conversation_id: str) -> tuple[str, dict[str, Any]] | None:
        """(platform, address) where the conversation's customer was last reached."""
        rows = list(
            self.db.query(
                "select platform, address from channel_addresses where conversation_id = ?", [conversation_id]
            )
        )
        return (rows[0]["platform"], json.loads(rows[0]["address"])) if rows else None

    def unforwarded_messages(self, after_message_id: int, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
        """Agents' messages and their notices (handed back, resolved) in platform
        conversations, with an id above `after_message_id`, not queued for the platform
        yet; in message order, each with its platform and address. With them, the message
        id up to which every message was looked at (the caller's next `after_message_id`:
        message ids grow in commit order, the store having one writer at a time)."""
        top = next(iter(self.db.query("select coalesce(max(id), 0) as top from messages")))["top"]
        rows = list(
            self.db.query(
                "select m.id, m.conversation_id, m.role, m.action, m.text, a.platform, a.address "
                "from messages m join channel_addresses a on a.conversation_id = m.conversation_id "
                "where m.id > ? and m.id <= ? and (m.role = 'agent' or (m.role = 'system' and m.action in (?, ?))) "
                "and not exists (select 1 from channel_outbox o "
                "where o.platform = a.platform and o.source_message_id = m.id) "
                "order by m.id limit ?",
                [after_message_id, top, *FORWARDED_NOTICES, limit],
            )
        )
        return rows, (rows[-1]["id"] if len(rows) == limit else max(top, after_message_id))

    # -- shared ----------------------------------------------------------------------
    def _claim(self, table: str, now: float, lease_s: float, limit: int, *json_columns: str) -> list[dict[str, Any]]:
        stamp, until = iso(now), iso(now + lease_s)
        claimed = []
        with self._write_transaction():
            rows = list(
                self.db.query(
                    # a row waits while an earlier one of its conversation does (a retry
                    # later, or claimed by a worker): a conversation's messages keep order
                    f"select * from {table} r where r.status = 'pending' and r.next_attempt_at <= ? "
                    f"and not exists (select 1 from {table} e where e.conversation_id = r.conversation_id "
                    "and e.status = 'pending' and e.id < r.id and e.next_attempt_at > ?) "
                    "order by r.id limit ?",
                    [stamp, stamp, limit],
                )
            )
            for row in rows:
                self.db.execute(
                    f"update {table} set attempts = attempts + 1, next_attempt_at = ? where id = ?", [until, row["id"]]
                )
                claimed.append(_decoded({**row, "attempts": row["attempts"] + 1}, *json_columns))
        return claimed
