"""The dialogue manager's policy, decision by decision: fake models (tests/fakes.py) that
say exactly what the test needs, and a real SQLite store, so each test pins one outcome."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from bot.contracts import ComposedReply, Composer, Embedder, IntentClassifier, Retriever, TurnResult
from bot.dialogue import DialogueManager
from bot.domain import Domain
from bot.errors import InvalidMessageError, MessageTooLongError, UnknownConversationError
from bot.settings import DialogueConfig
from bot.store import ConversationStore
from tests.fakes import FakeComposer, FixedRetriever, HashingEmbedder, ScriptedClassifier, Search, hit, prediction

DOMAIN = Domain(required_slots={"order_status": ["order_id"]})
DEFAULTS = DialogueConfig()

PAYPAL_REPLY = "Yes, we accept PayPal, Visa, Mastercard and gift cards."
RETURN_REPLY = "You can return items within 30 days from My Orders; the return label is free."
HITS = (
    hit("c3#t0", 0.82, intent="payment_methods", reply=PAYPAL_REPLY),
    hit("kb-payments#c0", 0.61, intent="payment_methods", kind="kb", text="Payments. We accept PayPal and cards."),
    hit("c1#t2", 0.77, intent="order_status", reply="The tracking link for order {{Order Number}} is in your email."),
    hit("c4#t0", 0.55, intent="return_item", reply=RETURN_REPLY),
)

# keyed by the text the classifier sees: personal values masked
PREDICTIONS = {
    "hello!": prediction("greeting", 0.97),
    "can I pay with paypal?": prediction("payment_methods", 0.92),
    "I want to speak to a human": prediction("human_agent", 0.95),
    "human?": prediction("human_agent", 0.3, ranking=(("human_agent", 0.3), ("greeting", 0.25))),
    "what will the weather be in Paris?": prediction(
        "payment_methods", 0.3, out_of_scope=True, nearest_similarity=0.21
    ),
    "who won the football?": prediction("greeting", 0.4, out_of_scope=True, nearest_similarity=0.18),
    "hey there, you lovely bot": prediction("greeting", 0.95, out_of_scope=True, nearest_similarity=0.3),
    "change it please": prediction(
        "order_status", 0.41, ranking=(("order_status", 0.41), ("return_item", 0.38), ("payment_methods", 0.1))
    ),
    "return item": prediction("payment_methods", 0.2),  # the button's label: the pick, not the classifier, decides
    "2": prediction("payment_methods", 0.2),  # a numbered pick: the number, not the classifier, decides
    "where is my order?": prediction("order_status", 0.9),
    "it is {{Order Number}}": prediction("payment_methods", 0.3),
    "my card {{Card Number}} was charged twice for order {{Order Number}}": prediction("payment_methods", 0.9),
}


@dataclass
class Assistant:
    """A dialogue manager and the fakes it was built from, to ask what they were asked."""

    manager: DialogueManager
    embedder: HashingEmbedder
    classifier: ScriptedClassifier
    retriever: FixedRetriever
    composer: FakeComposer

    @property
    def store(self) -> ConversationStore:
        return self.manager.store

    def turn(self, text: str, conversation_id: str | None = None) -> TurnResult:
        return self.manager.handle(text, conversation_id)


def assistant(
    store: ConversationStore, composer: FakeComposer | None = None, config: DialogueConfig = DEFAULTS
) -> Assistant:
    embedder, classifier = HashingEmbedder(), ScriptedClassifier(PREDICTIONS)
    retriever, composer = FixedRetriever(HITS), composer or FakeComposer()
    manager = DialogueManager(
        embedder=embedder,
        classifier=classifier,
        retriever=retriever,
        composer=composer,
        store=store,
        domain=DOMAIN,
        config=config,
    )
    return Assistant(manager, embedder, classifier, retriever, composer)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
def store(store_path: Path) -> Iterator[ConversationStore]:
    with ConversationStore(store_path).open() as s:
        yield s


@pytest.fixture
def bot(store: ConversationStore) -> Assistant:
    return assistant(store)


# -- the fakes ----------------------------------------------------------------------------


def test_the_fakes_fulfil_the_contracts_the_dialogue_is_written_against():
    embedder = HashingEmbedder()
    assert isinstance(embedder, Embedder) and isinstance(FixedRetriever(), Retriever)
    assert isinstance(ScriptedClassifier(PREDICTIONS), IntentClassifier) and isinstance(FakeComposer(), Composer)
    a, same, near, far = embedder.encode(["pay with paypal", "pay with paypal", "paypal please", "where is it"])
    assert np.array_equal(a, same) and np.linalg.norm(a) == pytest.approx(1.0)
    assert float(a @ near) > float(a @ far)


# -- small talk, answers ------------------------------------------------------------------


def test_small_talk_is_answered_by_the_policy_without_retrieval_or_composer(bot):
    result = bot.turn("hello!")
    assert (result.action, result.intent, result.composer) == ("smalltalk", "greeting", "policy")
    assert result.reply == DOMAIN.smalltalk["greeting"][0] and result.sources == ()
    assert bot.retriever.searches == [] and bot.composer.requests == []


def test_a_task_turn_is_encoded_once_retrieved_for_its_intent_and_composed(bot):
    result = bot.turn("can I pay with paypal?")
    assert (result.action, result.intent, result.composer) == ("answer", "payment_methods", "fake")
    assert result.reply == f"fake answer for payment_methods: {PAYPAL_REPLY}"
    # one encode serves the classifier and every search
    assert bot.embedder.encoded == ["can I pay with paypal?"]
    assert bot.retriever.searches == [
        Search(5, "payment_methods", None),
        Search(1, "payment_methods", "kb"),
        Search(5, None, None),
    ]
    [request] = bot.composer.requests
    assert [h.unit.id for h in request.hits] == ["c3#t0", "kb-payments#c0", "c1#t2", "c4#t0"]
    assert request.history == () and request.slots.values == {}
    # the source the reply used comes first, then the other hits
    assert [(s.id, s.score) for s in result.sources] == [
        ("c3#t0", 0.82),
        ("kb-payments#c0", 0.61),
        ("c1#t2", 0.77),
        ("c4#t0", 0.55),
    ]


def test_every_turn_is_stored_with_its_decision(bot):
    result = bot.turn("can I pay with paypal?")
    customer, reply = bot.store.messages(result.conversation_id)
    assert (customer["role"], customer["text"], customer["intent"]) == (
        "customer",
        "can I pay with paypal?",
        "payment_methods",
    )
    assert reply["id"] == result.message_id and reply["text"] == result.reply
    assert (reply["action"], reply["composer"], reply["confidence"]) == ("answer", "fake", 0.92)
    assert reply["sources"][0] == {"id": "c3#t0", "score": 0.82}
    assert reply["latency_ms"] == result.latency_ms


def test_a_composer_that_cannot_ground_a_reply_is_a_fallback_and_a_failure(store):
    cannot = FakeComposer(reply=ComposedReply("Sorry, I can't say.", "fallback", "fake", note="nothing close enough"))
    bot = assistant(store, composer=cannot)
    result = bot.turn("can I pay with paypal?")
    assert (result.action, result.intent, result.composer, result.note) == (
        "fallback",
        "payment_methods",
        "fake",
        "nothing close enough",
    )
    assert result.reply == "Sorry, I can't say." and result.sources[0].id == "c3#t0"
    assert store.load_state(result.conversation_id).failures == 1


def test_a_composer_that_reads_more_hits_than_retrieval_k_gets_them_but_the_sources_stay_capped(store):
    # the GPT-2 composer compares its candidates with the top consensus_k retrieved answers
    wide = FakeComposer(hits_wanted=3)
    bot = assistant(store, composer=wide, config=DialogueConfig(retrieval_k=1))
    result = bot.turn("can I pay with paypal?")
    assert [s.k for s in bot.retriever.searches] == [3, 1, 3]  # the intent's units, its article, any intent's
    assert [h.unit.id for h in wide.requests[0].hits] == ["c3#t0", "kb-payments#c0", "c1#t2"]
    assert [s.id for s in result.sources] == ["c3#t0"]  # still retrieval_k of them

    narrow = FakeComposer()
    bot = assistant(store, composer=narrow, config=DialogueConfig(retrieval_k=1))
    bot.turn("can I pay with paypal?")
    assert [s.k for s in bot.retriever.searches] == [1, 1, 1]


# -- clarifying -----------------------------------------------------------------------------


def test_low_confidence_asks_which_of_the_two_likeliest_intents_and_the_pick_is_answered(bot):
    first = bot.turn("change it please")
    assert (first.action, first.intent, first.composer) == ("clarify", "order_status", "policy")
    assert first.reply == DOMAIN.clarify_message.format(options="order status or return item")
    assert first.buttons == ("order status", "return item") and first.note == "confidence 0.41 < 0.50"
    assert bot.composer.requests == [] and bot.retriever.searches == []
    state = bot.store.load_state(first.conversation_id)
    assert state.clarify_options == ["order_status", "return_item"] and state.failures == 1

    picked = bot.turn("return item", first.conversation_id)
    assert (picked.action, picked.intent) == ("answer", "return_item")
    assert picked.reply == f"fake answer for return_item: {RETURN_REPLY}"
    state = bot.store.load_state(first.conversation_id)
    assert state.clarify_options == [] and state.failures == 0


def test_a_channel_that_numbers_the_options_gets_the_numbered_pick_answered(bot):
    first = bot.turn("change it please")
    assert first.buttons == ("order status", "return item")
    picked = bot.turn("2", first.conversation_id)  # the option's number, as a platform without buttons shows it
    assert (picked.action, picked.intent) == ("answer", "return_item")


@pytest.mark.parametrize(("confidence", "action"), [(0.6, "answer"), (0.59, "clarify")])
def test_the_configured_clarify_below_is_where_acting_stops(store, confidence, action):
    bot = assistant(store, config=DialogueConfig(clarify_below=0.6))
    bot.classifier.predictions["can I pay with paypal?"] = prediction("payment_methods", confidence)
    assert bot.turn("can I pay with paypal?").action == action


# -- fallback, out of scope, handoff ----------------------------------------------------------


def test_out_of_scope_falls_back_without_acting_on_the_closest_intent(bot):
    result = bot.turn("what will the weather be in Paris?")
    assert (result.action, result.intent, result.composer, result.out_of_scope) == ("fallback", None, "policy", True)
    assert result.reply == DOMAIN.fallback_message
    assert result.note == "out of scope (closest intent payment_methods, similarity 0.21)"
    assert bot.retriever.searches == [] and bot.store.handoffs(result.conversation_id) == []


def test_out_of_scope_wins_over_a_confident_small_talk_intent(bot):
    result = bot.turn("hey there, you lovely bot")
    assert (result.action, result.intent) == ("fallback", None)


def test_two_failures_in_a_row_hand_over_and_later_turns_wait_for_the_agent(bot):
    first = bot.turn("what will the weather be in Paris?")
    cid = first.conversation_id
    second = bot.turn("who won the football?", cid)
    assert first.action == "fallback"
    assert (second.action, second.reply, second.composer) == ("handoff", DOMAIN.handoff_message, "policy")
    [handoff] = bot.store.handoffs(cid)
    assert handoff["message_id"] == second.message_id and handoff["status"] == "waiting"
    assert handoff["reason"] == (
        "2 turns in a row the bot could not help (out of scope (closest intent greeting, similarity 0.18))"
    )
    assert bot.store.conversation(cid)["status"] == "handoff"

    later = bot.turn("hello!", cid)
    assert (later.action, later.reply) == ("handoff", DOMAIN.waiting_for_agent_message)
    assert later.note == "conversation is waiting for a human agent"
    assert len(bot.store.handoffs(cid)) == 1


def test_max_failures_before_handoff_is_the_configured_count(store):
    bot = assistant(store, config=DialogueConfig(max_failures_before_handoff=3))
    cid = bot.turn("what will the weather be in Paris?").conversation_id
    assert bot.turn("who won the football?", cid).action == "fallback"
    assert bot.turn("who won the football?", cid).action == "handoff"
    assert bot.store.handoffs(cid)[0]["reason"].startswith("3 turns in a row")


def test_a_helped_turn_resets_the_failure_count(bot):
    cid = bot.turn("what will the weather be in Paris?").conversation_id
    assert bot.turn("can I pay with paypal?", cid).action == "answer"
    assert bot.turn("who won the football?", cid).action == "fallback"
    assert bot.store.load_state(cid).failures == 1 and bot.store.handoffs(cid) == []


def test_asking_for_a_human_hands_over_at_once(bot):
    result = bot.turn("I want to speak to a human")
    assert (result.action, result.intent, result.reply) == ("handoff", "human_agent", DOMAIN.handoff_message)
    [handoff] = bot.store.handoffs(result.conversation_id)
    assert handoff["reason"] == "customer asked for a human" and handoff["message_id"] == result.message_id


def test_an_unsure_request_for_a_human_is_clarified_not_handed_over(bot):
    result = bot.turn("human?")
    assert (result.action, result.buttons) == ("clarify", ("human agent", "greeting"))
    assert bot.store.handoffs(result.conversation_id) == []


# -- slots ------------------------------------------------------------------------------------


def test_a_task_missing_its_slot_asks_for_it_and_the_next_turn_completes_the_task(bot):
    first = bot.turn("where is my order?")
    assert (first.action, first.intent, first.composer) == ("clarify", "order_status", "policy")
    assert first.reply == DOMAIN.slot_questions["order_id"] and first.note == "order_status needs order_id"
    state = bot.store.load_state(first.conversation_id)
    assert state.awaiting_slot == "order_id" and state.failures == 0  # asking for a slot is no failure

    # the classifier reads the bare number as something else; the task it answers goes on
    second = bot.turn("it is #55556666", first.conversation_id)
    assert bot.classifier.asked[-1] == "it is {{Order Number}}" and bot.embedder.encoded[-1] == "it is {{Order Number}}"
    assert (second.action, second.intent, second.slots) == ("answer", "order_status", {"order_id": "#55556666"})
    [request] = bot.composer.requests
    assert request.intent == "order_status" and request.slots.values == {"order_id": "#55556666"}
    assert request.history == (("customer", "where is my order?"), ("bot", DOMAIN.slot_questions["order_id"]))
    assert bot.store.load_state(first.conversation_id).awaiting_slot is None


def test_a_card_number_is_kept_only_by_its_last_four_digits(bot):
    result = bot.turn("my card 4111 1111 1111 4242 was charged twice for order #11112222")
    cid = result.conversation_id
    assert bot.store.messages(cid)[0]["text"] == "my card **** **** **** 4242 was charged twice for order #11112222"
    assert result.slots == {"card_number": "**** **** **** 4242", "order_id": "#11112222"}
    assert bot.composer.requests[0].text == "my card **** **** **** 4242 was charged twice for order #11112222"


def test_state_lives_in_the_store_so_another_manager_takes_the_next_turn(store, store_path):
    first = assistant(store).turn("where is my order?")
    with ConversationStore(store_path).open() as other_connection:
        second = assistant(other_connection).turn("it is #55556666", first.conversation_id)
    assert (second.action, second.intent) == ("answer", "order_status")


# -- message validation -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "error"), [("   ", InvalidMessageError), ("x" * 21, MessageTooLongError)])
def test_an_invalid_message_is_refused_before_any_model_runs_and_stores_nothing(store, text, error):
    bot = assistant(store, config=DialogueConfig(max_message_chars=20))
    cid = bot.manager.start_conversation()
    with pytest.raises(error):
        bot.turn(text, cid)
    assert bot.embedder.encoded == [] and bot.classifier.asked == []
    assert store.messages(cid) == [] and store.db.sqlite["conversations"].count == 1


def test_an_unknown_conversation_is_refused_and_nothing_is_created(bot):
    with pytest.raises(UnknownConversationError, match="not-a-conversation"):
        bot.turn("hello!", "not-a-conversation")
    assert bot.embedder.encoded == [] and bot.store.db.sqlite["conversations"].count == 0


def test_control_characters_are_dropped_before_the_turn_is_classified_and_stored(bot):
    result = bot.turn("hel\x00lo!\x07")
    assert bot.classifier.asked == ["hello!"]
    assert bot.store.messages(result.conversation_id)[0]["text"] == "hello!"


# -- streaming ----------------------------------------------------------------------------------


def test_a_streamed_turn_yields_the_reply_in_pieces_then_the_stored_result(bot):
    *pieces, result = bot.manager.handle_stream("can I pay with paypal?")
    assert isinstance(result, TurnResult)
    assert "".join(pieces) == result.reply and len(pieces) == len(result.reply.split())
    assert bot.store.messages(result.conversation_id)[-1]["text"] == result.reply


def test_a_streamed_turn_with_a_bad_message_raises_at_the_first_piece_and_stores_nothing(bot):
    cid = bot.manager.start_conversation()
    stream = bot.manager.handle_stream("  ", cid)
    with pytest.raises(InvalidMessageError):
        next(stream)
    assert bot.store.messages(cid) == []
