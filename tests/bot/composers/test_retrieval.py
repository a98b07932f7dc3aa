"""The retrieval composer: picks a grounded reply and fills placeholders from slots."""

from bot.composers.retrieval import RetrievalComposer, fill_placeholders, prefer_intent
from bot.contracts import ComposeRequest, Slots
from retrieval.types import Hit, Unit

QUESTIONS = {"order_id": "What is your order number?", "email": "What is your email?"}


def hit(uid, reply, score, intent="order_status", kind="transcript", title=None, text="q", extra=None):
    return Hit(Unit(id=uid, kind=kind, text=text, reply=reply, intent=intent, title=title, extra=extra or {}), score)


def compose(hits, slots=None, intent="order_status"):
    composer = RetrievalComposer(
        0.5, QUESTIONS, "I'm not sure.", slot_mentions={"order_id": ["order number"]}, article_min_score=0.3
    )
    return composer.compose(ComposeRequest("where is my order", intent, (), tuple(hits), Slots(slots or {})))


def test_fills_a_known_slot_into_the_best_reply():
    reply = compose([hit("a", "Order {{Order Number}} is on its way.", 0.9)], {"order_id": "#40318275"})
    assert reply.action == "answer" and reply.composer == "retrieval"
    assert reply.text == "Order #40318275 is on its way."
    assert reply.source_ids == ("a",)


def test_asks_for_a_missing_slot_instead_of_printing_the_placeholder():
    reply = compose([hit("a", "Order {{Order Number}} is on its way.", 0.9)])
    assert reply.action == "clarify" and reply.missing_slot == "order_id"
    assert "{{" not in reply.text


def test_skips_replies_that_need_a_value_nobody_can_know():
    reply = compose([hit("a", "It ships on {{Ship Date}}.", 0.95), hit("b", "It ships within 2 days.", 0.8)])
    assert reply.text == "It ships within 2 days."


def test_below_the_score_threshold_it_says_it_is_unsure():
    reply = compose([hit("a", "Order shipped.", 0.3)])
    assert reply.action == "fallback" and reply.text == "I'm not sure."
    assert "0.30" in reply.note


def test_prefers_units_of_the_classified_intent():
    hits = [hit("x", "Refunds take 5 days.", 0.9, intent="refund_request"), hit("y", "It is on its way.", 0.8)]
    assert [h.unit.id for h in prefer_intent(hits, "order_status", 0.5)] == ["y", "x"]
    assert compose(hits).source_ids == ("y",)


def test_a_knowledge_article_answers_with_its_first_sentences():
    kb = hit(
        "kb-returns#c0",
        "",
        0.9,
        kind="kb",
        title="Returns",
        text="Returns: You can return items within 30 days. Use the returns portal. Refunds follow. Extra.",
    )
    reply = compose([kb])
    assert reply.action == "answer"
    assert "within 30 days" in reply.text and "Extra" not in reply.text


def test_fill_placeholders_reports_missing_and_unknown():
    text, missing, unknown = fill_placeholders("{{Order Number}} {{Email}} {{Refund Amount}}", {"email": "a@b.co"})
    assert text == "{{Order Number}} a@b.co {{Refund Amount}}"
    assert missing == ["order_id"] and unknown == ["{{Refund Amount}}"]


def test_never_replays_a_reply_written_from_another_customers_order_record():
    looked_up = hit("a", "Order {{Order Number}} shipped yesterday with ParcelCo.", 0.95, extra={"after_lookup": True})
    policy = hit("b", "You can follow order {{Order Number}} under My Orders.", 0.8)
    reply = compose([looked_up, policy], {"order_id": "#40318275"})
    assert reply.text == "You can follow order #40318275 under My Orders."
    only_lookup = compose([looked_up], {"order_id": "#40318275"})
    assert only_lookup.action == "fallback" and "order lookup" in only_lookup.note


def test_skips_a_reply_that_asks_for_a_detail_the_customer_already_gave():
    asks = hit("a", "Could you send me the order number?", 0.95)
    answers = hit("b", "Thanks! Order {{Order Number}} ships within 2 days.", 0.8)
    assert compose([asks, answers], {"order_id": "#40318275"}).source_ids == ("b",)
    assert compose([asks, answers]).source_ids == ("a",)


def test_a_reply_that_asks_for_a_missing_slot_is_a_clarifying_question():
    reply = compose([hit("a", "Sorry about that! Could you send me the order number?", 0.9)])
    assert reply.action == "clarify" and reply.missing_slot == "order_id"


def test_when_no_transcript_reply_fits_the_intents_article_answers():
    asks = hit("a", "Could you send me the order number?", 0.9)
    article = hit(
        "kb-returns#c0", "", 0.4, kind="kb", title="Returns", text="Returns: Items can be returned within 30 days."
    )
    reply = compose([asks, article], {"order_id": "#40318275"})
    assert reply.action == "answer" and reply.source_ids == ("kb-returns#c0",)
    assert "30 days" in reply.text and "asks for order_id" in reply.note
    off_topic_article = hit("kb-other#c0", "", 0.4, kind="kb", intent="warranty", text="Warranty is 12 months.")
    assert compose([asks, off_topic_article], {"order_id": "#1234567"}).action == "fallback"


def test_an_article_answer_keeps_the_list_its_first_sentence_introduces():
    text = (
        "How to return\n\nIt takes two steps:\n- Open Account > Orders.\n- Click Return."
        "\n\nRefunds take 5 days. More. Even more."
    )
    reply = compose([hit("kb-r#c0", "", 0.9, kind="kb", title="How to return", text=text)])
    assert "It takes two steps:\n- Open Account > Orders.\n- Click Return." in reply.text
    assert "Even more" not in reply.text
