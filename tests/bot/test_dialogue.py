"""The dialogue manager's policy, on a tiny assistant made of real parts: the real MiniLM,
a real FAISS index, a real classifier and a real SQLite store."""

import pytest

from bot.composers.retrieval import RetrievalComposer
from bot.dialogue import DialogueManager
from bot.domain import Domain
from bot.errors import InvalidMessageError, UnknownConversationError
from bot.settings import DialogueConfig
from bot.store import ConversationStore

pytestmark = pytest.mark.slow

CONVERSATIONS = [
    {
        "id": "c1",
        "intent": "order_status",
        "outcome": "resolved",
        "turns": [
            {"role": "customer", "text": "where is my order?"},
            {"role": "agent", "text": "Could you tell me your order number?"},
            {"role": "customer", "text": "it's #11112222"},
            {
                "role": "agent",
                "text": "Thanks! The tracking link for order #11112222 is in your shipping email and under My Orders.",
            },
        ],
    },
    {
        "id": "c2",
        "intent": "order_status",
        "outcome": "resolved",
        "turns": [
            {"role": "customer", "text": "my package hasn't arrived, order 33334444"},
            {"role": "system", "text": "Order #33334444: shipped 2026-01-02 via ParcelCo."},
            {"role": "agent", "text": "Order #33334444 shipped on Friday, it arrives tomorrow."},
        ],
    },
    {
        "id": "c3",
        "intent": "payment_methods",
        "outcome": "resolved",
        "turns": [
            {"role": "customer", "text": "can I pay with paypal?"},
            {"role": "agent", "text": "Yes, we accept PayPal, Visa, Mastercard and gift cards."},
        ],
    },
    {
        "id": "c4",
        "intent": "return_item",
        "outcome": "resolved",
        "turns": [
            {"role": "customer", "text": "how do I send something back?"},
            {"role": "agent", "text": "You can return items within 30 days from My Orders; the return label is free."},
        ],
    },
]

INTENTS = {
    "greeting": [
        "hi",
        "hello there",
        "good morning",
        "hey",
        "hi, anyone there?",
        "hello support",
        "good evening",
        "hiya",
    ],
    "human_agent": [
        "I want to talk to a human",
        "connect me to an agent",
        "can I speak to a real person",
        "get me a human please",
        "transfer me to customer service staff",
        "I need a person not a bot",
        "let me talk to someone",
        "human please",
    ],
    "order_status": [
        "where is my order",
        "my package has not arrived",
        "track my parcel",
        "when will my order come",
        "status of my order please",
        "has my order shipped",
        "where's my stuff",
        "order not delivered yet",
    ],
    "payment_methods": [
        "can I pay with paypal",
        "which cards do you accept",
        "do you take apple pay",
        "payment options?",
        "can I pay by credit card",
        "what payment methods are there",
        "do you accept mastercard",
        "can I pay with a gift card",
    ],
    "return_item": [
        "how do I return an item",
        "I want to send this back",
        "return policy?",
        "can I return my shoes",
        "how many days do I have to return",
        "start a return",
        "return label please",
        "send back a product",
    ],
    "thanks": ["thanks", "thank you so much", "cheers", "thx", "great, thanks", "thanks a lot", "appreciate it", "ty"],
}


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    from bot.intents import EmbeddingIntentClassifier, IntentClassifierConfig
    from retrieval.config import EmbedderConfig, IndexConfig
    from retrieval.embedder import SentenceEmbedder
    from retrieval.index import VectorIndex
    from retrieval.ingest import units_from_conversations

    embedder = SentenceEmbedder(EmbedderConfig(torch_threads=1)).load()
    units = units_from_conversations(CONVERSATIONS)
    index = VectorIndex.build(
        units, embedder.encode([u.text for u in units]), embedder_id=embedder.model_id, config=IndexConfig()
    )
    texts = [t for examples in INTENTS.values() for t in examples]
    labels = [label for label, examples in INTENTS.items() for _ in examples]
    classifier = EmbeddingIntentClassifier.train(
        embedder.encode(texts), texts, labels, IntentClassifierConfig(), embedder_id=embedder.model_id
    )
    return embedder, index, classifier, tmp_path_factory.mktemp("dialogue") / "store.db"


def manager(parts, **dialogue):
    embedder, index, classifier, db = parts
    domain = Domain(required_slots={"order_status": ["order_id"]})
    config = DialogueConfig(**dialogue)
    return DialogueManager(
        embedder=embedder,
        classifier=classifier,
        retriever=index,
        composer=RetrievalComposer.from_config(config, domain),
        store=ConversationStore(db).open(),
        domain=domain,
        config=config,
    )


def test_small_talk_is_answered_directly_without_retrieval(parts):
    result = manager(parts).handle("hello!")
    assert (result.action, result.intent, result.composer) == ("smalltalk", "greeting", "policy")
    assert result.sources == ()


def test_a_task_missing_its_slot_asks_for_it_and_the_next_turn_completes_it(parts):
    dm = manager(parts)
    first = dm.handle("where is my order??")
    assert first.action == "clarify" and "order number" in first.reply
    second = dm.handle("it is #55556666", first.conversation_id)
    assert second.intent == "order_status" and second.action == "answer"
    assert "#55556666" in second.reply and "{{" not in second.reply
    # the reply written from another customer's order record (c2) is never replayed
    assert second.sources[0].id == "c1#t2"
    assert "Friday" not in second.reply


def test_another_process_can_take_the_next_turn_because_state_is_in_the_store(parts):
    first = manager(parts).handle("where is my order")
    second = manager(parts).handle("#77778888", first.conversation_id)
    assert second.action == "answer" and "#77778888" in second.reply


def test_a_policy_question_is_answered_from_the_retrieved_reply(parts):
    result = manager(parts).handle("do you take paypal?")
    assert result.action == "answer" and result.composer == "retrieval"
    assert "PayPal" in result.reply
    assert result.sources[0].id == "c3#t0" and result.sources[0].score > 0.5


def test_asking_for_a_human_hands_over_and_later_turns_wait_for_the_agent(parts):
    dm = manager(parts)
    result = dm.handle("I want to speak to a human being")
    assert result.action == "handoff"
    assert dm.store.handoffs(result.conversation_id)[0]["reason"] == "customer asked for a human"
    later = dm.handle("hello?", result.conversation_id)
    assert later.action == "handoff" and "shortly" in later.reply


def test_out_of_scope_falls_back_and_repeated_failure_hands_over(parts):
    dm = manager(parts)
    first = dm.handle("what will the weather be like in Paris tomorrow?")
    assert first.out_of_scope and first.action == "fallback"
    second = dm.handle("who won the football last night?", first.conversation_id)
    assert second.action == "handoff"
    assert "2 turns in a row" in dm.store.handoffs(first.conversation_id)[0]["reason"]


def test_every_turn_is_logged_with_its_decision(parts):
    dm = manager(parts)
    result = dm.handle("can I pay with paypal")
    customer, bot = dm.store.messages(result.conversation_id)
    assert customer["role"] == "customer" and customer["text"] == "can I pay with paypal"
    assert bot["action"] == "answer" and bot["composer"] == "retrieval" and bot["intent"] == "payment_methods"
    assert bot["sources"][0]["id"] == "c3#t0" and bot["latency_ms"] > 0
    assert bot["id"] == result.message_id


def test_bad_input_stores_nothing(parts):
    dm = manager(parts, max_message_chars=50)
    cid = dm.start_conversation()
    with pytest.raises(InvalidMessageError):
        dm.handle("   ", cid)
    with pytest.raises(InvalidMessageError, match="50"):
        dm.handle("x" * 51, cid)
    with pytest.raises(UnknownConversationError):
        dm.handle("hi", "not-a-conversation")
    assert dm.store.messages(cid) == []


def test_a_streamed_turn_yields_the_reply_in_pieces_then_the_same_result_as_handle(parts):
    dm = manager(parts)
    events = list(dm.handle_stream("can I pay with paypal?"))
    *pieces, result = events
    assert all(isinstance(p, str) for p in pieces) and len(pieces) == len(result.reply.split())
    assert "".join(pieces) == result.reply and "PayPal" in result.reply
    assert dm.store.messages(result.conversation_id)[-1]["text"] == result.reply


def test_a_streamed_turn_with_bad_input_raises_before_any_piece_and_stores_nothing(parts):
    dm = manager(parts)
    cid = dm.start_conversation()
    with pytest.raises(InvalidMessageError):
        next(dm.handle_stream("  ", cid))
    assert dm.store.messages(cid) == []


def test_a_card_number_is_stored_and_kept_as_a_slot_only_by_its_last_four_digits(parts):
    dm = manager(parts)
    result = dm.handle("my card 4111 1111 1111 4242 was charged twice for order #11112222")
    cid = result.conversation_id
    assert dm.store.messages(cid)[0]["text"] == "my card **** **** **** 4242 was charged twice for order #11112222"
    assert result.slots["card_number"] == "**** **** **** 4242"
    assert dm.store.load_state(cid).slots == {"card_number": "**** **** **** 4242", "order_id": "#11112222"}
    # nothing anywhere in the store, nor in the reply, holds the full number
    later = dm.handle("can you refund it to that card?", cid)
    stored = [str(row) for table in dm.store.db.sqlite.tables for row in table.rows]
    assert not any("4111" in row for row in stored) and "4111" not in result.reply + later.reply


class SentenceBySentence:
    """A `StreamingComposer` for the manager's side of the contract: the real retrieval
    composer's reply, released one sentence at a time (the GPT-2 composer's own streaming is
    tested with a real model in tests/bot/composers/test_generative_streaming.py). It notes,
    at each chunk, how many messages the store holds, to show chunks leave before the turn
    is written."""

    def __init__(self, inner, store):
        self.inner, self.store = inner, store
        self.name = "sentences"
        self.hits_wanted = inner.hits_wanted
        self.conversation_id = ""  # whose stored messages to count
        self.stored_at_chunks: list[int] = []

    def compose(self, request):
        return self.inner.compose(request)

    def compose_stream(self, request):
        import re

        reply = self.inner.compose(request)
        for sentence in re.findall(r"\S.*?(?:[.!?](?=\s)|$)\s*", reply.text):
            self.stored_at_chunks.append(len(self.store.messages(self.conversation_id)))
            yield sentence
        return reply


def streaming_manager(parts):
    dm = manager(parts, stream_while_composing=True)
    dm.composer = SentenceBySentence(dm.composer, dm.store)
    return dm


def test_a_streaming_composers_chunks_leave_before_the_turn_is_stored_and_join_to_its_reply(parts):
    dm = streaming_manager(parts)
    cid = dm.composer.conversation_id = dm.start_conversation()
    events = list(dm.handle_stream("how do I send something back? I bought shoes.", cid))
    *pieces, result = events
    assert "".join(pieces) == result.reply and result.action == "answer"
    assert dm.composer.stored_at_chunks and max(dm.composer.stored_at_chunks) == 0  # nothing stored yet
    assert [m["role"] for m in dm.store.messages(cid)] == ["customer", "bot"]
    assert dm.store.messages(cid)[-1]["text"] == result.reply
    # a plain turn never asks the composer to stream, nor does a streamed one by default
    before = len(dm.composer.stored_at_chunks)
    assert dm.handle("how do I send something back?", cid).reply == result.reply
    assert len(dm.composer.stored_at_chunks) == before
    whole_first = manager(parts)
    whole_first.composer = SentenceBySentence(whole_first.composer, whole_first.store)
    whole_first.composer.conversation_id = cid = whole_first.start_conversation()
    *pieces, result = list(whole_first.handle_stream("how do I send something back?", cid))
    assert "".join(pieces) == result.reply and whole_first.composer.stored_at_chunks == []


def test_a_client_that_leaves_mid_reply_still_gets_its_turn_stored_and_a_retry_gets_it_back(parts):
    from types import SimpleNamespace

    from bot.server.turns import stream_public_turn

    dm = streaming_manager(parts)
    index = parts[1]
    assistant = SimpleNamespace(manager=dm, store=dm.store, index=index, config=SimpleNamespace(dialogue=dm.config))
    cid = dm.composer.conversation_id = dm.start_conversation()
    text = "how do I send something back? I bought shoes."
    turn = stream_public_turn(assistant, cid, text, "msg-1")
    first = next(turn)
    assert isinstance(first, str) and dm.store.messages(cid) == []  # mid-reply, nothing stored yet
    turn.close()  # the client went away: the turn runs to its end unheard
    stored = dm.store.messages(cid)
    assert [m["role"] for m in stored] == ["customer", "bot"] and stored[-1]["text"].startswith(first)
    *pieces, final = list(stream_public_turn(assistant, cid, text, "msg-1"))
    assert "".join(pieces) == final["reply"] == stored[-1]["text"] and final["message_id"] == stored[-1]["id"]
    assert len(dm.store.messages(cid)) == 2  # the retry took no second turn
