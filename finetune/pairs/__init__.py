"""Supervised pairs for the GPT-2 composer: (context, evidence) -> the reply to learn.

Sources: every conversation in the store, plus transcript files (our JSONL or ABCD,
read by `retrieval.importers.load_import` and passed in as `extra_conversations`).

Who is trusted. The store's customers are anonymous website visitors: they choose what they
write and they may rate replies, so anything they alone decide can be crafted to steer the
model. A reply becomes a target only on the word of someone we trust:
- a human agent's reply, always: typed by the agent (`target_kind: "agent"`); a reply
  suggestion the agent sent as it was (`messages.suggestion_id` set, `"suggested"`); a
  suggestion the agent edited before sending it (`messages.edited_from` set: the edited
  text, `"edited"`). A suggestion the agent discarded never became a message, so it is never
  a target (the manifest counts them from the store's `suggestions` table);
- a bot reply composed from evidence (action "answer", composer not "policy") (`"bot"`): only
  when a human agent rated it 👍, or when the operator passes `include_bot_replies` (their
  visitors are trusted, e.g. signed-in customers). A customer's 👍 alone is not enough.
- transcript files: their agent turns (the operator chose the file).

Votes. A single customer's 👎 does not remove a reply: anyone can vote, and a good reply
pattern must not vanish from training on one visitor's word. A bot reply is excluded for
its votes when a human agent rated it 👎, or when customers 👎'd replies built on the same
retrieved source (the top unit it was composed from; its text when it had none) in at
least `down_vote_conversations` distinct conversations; then every bot reply of that
pattern is left out (unless an agent 👍'd that very reply).

Excluded, each counted in the manifest under `excluded` (a reply is counted under the first
reason that applies, in this order):
- `negative_feedback`: bot replies an agent 👎'd, or of a pattern 👎'd in enough conversations;
  human agents' replies anyone 👎'd (leaving out one human reply is the safe side);
- `failed_before_handoff`: in a conversation that was handed to a human, bot turns with
  action fallback/clarify/handoff, and every bot turn after the last answer before a handoff;
- `policy`: fixed replies (composer "policy": small talk, slot questions, notices);
- `not_an_answer`: other bot turns that are not answers (a composer's clarify or fallback);
- `untrusted_bot_reply`: bot answers nobody trusted vouched for (see above);
- `after_lookup`: replies to a customer message during which an order was looked up (a
  transcript's `system` turn after the customer's last turn; an ABCD agent action imports
  as one; the store's system turns are notices such as "handed back", never lookups): they
  may state that customer's record (status, dates, amounts), which the context leaves out,
  so a model trained on them learns to state an order's status it cannot see; left out of
  training and of the held-out set unless `keep_after_lookup` (the live bot answers such
  turns with business actions, and the retrieval composer never replays them either);
- `heldout_bot_reply`: trusted bot answers in a held-out conversation (held-out targets are
  human replies; the rest of a held-out conversation is never trained on);
- `no_customer_turn`: replies with no customer turn before them (an agent's opening line);
- `empty`: replies with no text;
- `duplicate`: the same scrubbed context and target as an earlier pair (held-out pairs come
  first, so a training copy of a held-out pair is the one dropped);
- `discarded_suggestion`: reply suggestions agents discarded (not messages: counted from the
  store, never read as replies).

Held-out pairs (`heldout.jsonl`, what the learning loop scores models on, never trained on):
the conversations of `heldout_conversations` (a curated file, e.g. data/heldout.jsonl) and,
from the store, conversations a human agent answered whose id falls in the `heldout_share`
by a fixed hash (`is_heldout_conversation`), so a conversation held out once is held out in
every round. An anonymous conversation (no agent reply) is never held out: its customer
alone would decide what the models are judged on. Their targets are human agents' replies
(agent, suggested and edited).

Context: the last `context_turns` customer/agent turns before the target (bot turns appear
as "agent", system turns are left out). Evidence: the top `evidence_k` units of the
workspace index for the last customer turn (scrubbed, so masked like the dialogue manager
masks a query), never from the pair's own conversation: its units leave the search before
near-duplicate replies fold, so another conversation's copy of the same reply keeps its
rank, as it would for a new conversation. Everything written (context,
evidence, target) is scrubbed by `finetune.scrub.scrub`. The split is by conversation:
a conversation's pairs all go to train or all to valid.

Privacy: `find_pairs_dirs` finds every pairs directory in a workspace and `erase_from_pairs`
rewrites one without the pairs of given conversations (what `csbot forget` calls).

The package's modules: `conversations` (reading and marking replies), `build` (`build_pairs`),
`layout` (file names, counts, hashes), `storage` (`write_pairs`, `erase_from_pairs`,
`find_pairs_dirs`), `errors`.
"""

from finetune.pairs.build import (
    EXCLUSION_REASONS,
    FILTERS,
    HELDOUT_KINDS,
    SUGGESTION_OUTCOMES,
    PairsResult,
    QueryEncoder,
    build_pairs,
)
from finetune.pairs.conversations import (
    DOWN_VOTE_CONVERSATIONS,
    FAILED_ACTIONS,
    HELDOUT_SALT,
    STORE_SOURCE,
    ConversationSource,
    answers_after_lookup,
    file_conversations,
    is_heldout_conversation,
)
from finetune.pairs.errors import OutputDirError, PairsError, TooFewHeldOutPairsError, TooFewPairsError
from finetune.pairs.layout import (
    HELDOUT_FILE,
    MANIFEST_FILE,
    PAIR_FILES,
    PAIRS_FORMAT,
    TARGET_KINDS,
    TRAIN_FILE,
    VALID_FILE,
)
from finetune.pairs.storage import erase_from_pairs, find_pairs_dirs, write_pairs

__all__ = [
    "DOWN_VOTE_CONVERSATIONS",
    "EXCLUSION_REASONS",
    "FAILED_ACTIONS",
    "FILTERS",
    "HELDOUT_FILE",
    "HELDOUT_KINDS",
    "HELDOUT_SALT",
    "MANIFEST_FILE",
    "PAIRS_FORMAT",
    "PAIR_FILES",
    "STORE_SOURCE",
    "SUGGESTION_OUTCOMES",
    "TARGET_KINDS",
    "TRAIN_FILE",
    "VALID_FILE",
    "ConversationSource",
    "OutputDirError",
    "PairsError",
    "PairsResult",
    "QueryEncoder",
    "TooFewHeldOutPairsError",
    "TooFewPairsError",
    "answers_after_lookup",
    "build_pairs",
    "erase_from_pairs",
    "file_conversations",
    "find_pairs_dirs",
    "is_heldout_conversation",
    "write_pairs",
]
