"""A small orders file: two customers, each status the actions answer differently."""

from __future__ import annotations

MINE = "ada@example.com"
THEIRS = "bob@example.org"


def order(number: str, email: str, status: str, **extra: object) -> dict:
    return {
        "number": number,
        "email": email,
        "status": status,
        "placed": "2026-02-27",
        "items": ["desk lamp"],
        "total_usd": 40.0,
        "shipping": "Standard",
        "carrier": None,
        "tracking": None,
        "shipped": None,
        "estimated_delivery": None,
        "delivered": None,
        **extra,
    }


ORDERS = {
    "accounts": [{"email": MINE, "name": "Ada"}, {"email": THEIRS, "name": "Bob"}],
    "orders": [
        order(
            "40318275",
            MINE,
            "shipped",
            carrier="ParcelCo",
            tracking="PA1234567890",
            shipped="2026-03-02",
            estimated_delivery="2026-03-06",
        ),
        order("11111111", MINE, "processing"),
        order("22222222", MINE, "delivered", carrier="Swiftline", delivered="2026-03-01", items=["kettle", "toaster"]),
        order("33333333", MINE, "returned"),
        # someone else's: nothing of it may ever reach Ada
        order(
            "55555555",
            THEIRS,
            "shipped",
            carrier="Atlas Post",
            tracking="AT9999999999",
            estimated_delivery="2026-04-01",
            items=["yoga mat"],
            total_usd=77.77,
        ),
    ],
    "refunds": [
        {"order": "33333333", "status": "issued", "amount_usd": 40.0, "date": "2026-03-10", "card": "Visa ending 4242"},
        {
            "order": "55555555",
            "status": "issued",
            "amount_usd": 77.77,
            "date": "2026-04-02",
            "card": "Visa ending 9999",
        },
    ],
}

# what Bob's order would give away
THEIR_FACTS = ("Atlas Post", "AT9999999999", "yoga mat", "2026-04-01", "77.77", "9999")
