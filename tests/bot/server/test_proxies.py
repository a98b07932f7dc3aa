"""Who a request comes from: the peer address, X-Forwarded-For only from trusted proxies,
IPv6 clients keyed by their /64; in the real app, a rotated header from an untrusted
peer does not buy a fresh rate-limit budget."""

from __future__ import annotations

import pytest

from bot.server import serve as serve_module
from bot.server.limits import ClientAddresses, client_key
from tests.bot.server.conftest import quiet_settings, unloaded_server


def scope(peer: str | None, *forwarded: str) -> dict:
    return {
        "type": "http",
        "client": (peer, 50000) if peer is not None else None,
        "headers": [(b"x-forwarded-for", value.encode()) for value in forwarded],
    }


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says():
    clients = ClientAddresses()
    assert clients.address(scope("127.0.0.1", "203.0.113.9")) == "127.0.0.1"
    assert clients.address(scope("198.51.100.7", "203.0.113.9")) == "198.51.100.7"
    assert clients.address(scope(None)) == "unknown"


def test_from_a_trusted_proxy_the_rightmost_untrusted_forwarded_address_is_the_client():
    clients = ClientAddresses(["127.0.0.1", "10.0.0.0/8"])
    # the client wrote the first entry itself; the proxies appended the rest
    assert clients.address(scope("127.0.0.1", "1.1.1.1, 203.0.113.9, 10.0.0.5")) == "203.0.113.9"
    assert clients.address(scope("127.0.0.1", "1.1.1.1", "203.0.113.9")) == "203.0.113.9"  # two headers, one list
    assert clients.address(scope("10.1.2.3", "203.0.113.9:4711")) == "203.0.113.9"  # a port is not part of it
    assert clients.address(scope("127.0.0.1", "[2001:db8::1]:443")) == "2001:db8::1"
    # an untrusted peer's header is ignored, even if it names a trusted proxy
    assert clients.address(scope("198.51.100.7", "203.0.113.9, 10.0.0.5")) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_or_junk_ends_at_the_last_address_known_good():
    clients = ClientAddresses(["127.0.0.1", "10.0.0.0/8"])
    assert clients.address(scope("127.0.0.1", "10.0.0.9, 10.0.0.5")) == "10.0.0.9"  # all proxies: the first
    assert clients.address(scope("127.0.0.1", "not-an-address, 10.0.0.5")) == "10.0.0.5"
    assert clients.address(scope("127.0.0.1", "")) == "127.0.0.1"
    assert clients.address(scope("127.0.0.1")) == "127.0.0.1"


def test_an_ipv4_mapped_ipv6_peer_is_the_ipv4_address_it_carries():
    clients = ClientAddresses(["127.0.0.1"])
    assert clients.address(scope("::ffff:127.0.0.1", "203.0.113.9")) == "203.0.113.9"
    assert clients.address(scope("::ffff:198.51.100.7")) == "198.51.100.7"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("unknown", "unknown"),
    ],
)
def test_an_ipv6_client_is_keyed_by_its_64_and_an_ipv4_one_by_its_address(address, key):
    assert client_key(address) == key


def test_one_ipv6_host_rotating_through_its_64_is_one_client():
    clients = ClientAddresses()
    keys = {clients.key(scope(f"2001:db8:1:2::{i:x}")) for i in range(1, 200)}
    assert keys == {"2001:db8:1:2::/64"}


def test_a_rotated_forwarded_for_from_an_untrusted_peer_does_not_reset_the_ip_limit(tmp_path):
    with unloaded_server(quiet_settings(tmp_path, rate_limit_per_ip=3)) as live:
        statuses = [
            live.client.post("/api/v1/conversations", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code
            for i in range(4)
        ]
    assert statuses == [503, 503, 503, 429]  # counted while loading; the fourth is over the budget


def test_from_a_trusted_proxy_the_forwarded_address_is_the_one_limited(tmp_path):
    settings = quiet_settings(tmp_path, rate_limit_per_ip=3, trusted_proxies=["127.0.0.1"])
    with unloaded_server(settings) as live:

        def post(client: str) -> int:
            return live.client.post("/api/v1/conversations", headers={"X-Forwarded-For": client}).status_code

        assert [post("203.0.113.1") for _ in range(4)] == [503, 503, 503, 429]
        assert [post("203.0.113.2") for _ in range(3)] == [503, 503, 503]  # another client, its own budget
        assert post("9.9.9.9, 203.0.113.1") == 429  # what the client prepends changes nothing


def test_csbot_serve_leaves_forwarded_headers_to_the_app(tmp_path, monkeypatch):
    # uvicorn's own handling would believe X-Forwarded-For from loopback and rewrite the peer
    configs = []
    monkeypatch.setattr(serve_module._Server, "run", lambda server, *args, **kwargs: configs.append(server.config))
    serve_module.serve(quiet_settings(tmp_path))
    assert [c.proxy_headers for c in configs] == [False]
