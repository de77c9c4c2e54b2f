"""The live stream over a real uvicorn server and a real WebSocket client: resume
after a reconnect delivers every unacked offer exactly once, in order."""

import json
import threading
import time

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.connection import Connection

from tests.server.delivery.conftest import (
    WAIT_S,
    Stack,
    StackFactory,
    draft,
    recv_json,
    wait_for_sessions,
)


def offer_seqs(ws: Connection, count: int) -> list[int]:
    seqs = []
    for _ in range(count):
        message = recv_json(ws)
        assert message["type"] == "offer"
        assert message["seq"] == message["offer"]["seq"]
        seqs.append(message["seq"])
    return seqs


def ack(ws: Connection, seq: int) -> None:
    ws.send(json.dumps({"type": "ack", "seq": seq}))


def test_offers_published_before_connecting_arrive_on_connect(make_stack: StackFactory) -> None:
    stack = make_stack()
    published = [stack.delivery.publish("alice", draft(n)) for n in range(3)]
    stack.delivery.publish("bob", draft(99))
    with stack.ws("tok-alice", after=0) as ws:
        messages = [recv_json(ws) for _ in range(3)]
    assert [m["offer"]["offer_id"] for m in messages] == [o.offer_id for o in published]
    first = messages[0]["offer"]
    assert first["title"] == "Offer 0" and first["campaign_id"] == "denim-10"
    assert first["coupon_code"].startswith("DENIM10-")
    assert first["trigger"] == {"type": "zone_entered", "zone": "denim", "n": 0}
    assert {"expires_ms", "created_ms", "store"} <= set(first)


def test_reconnecting_after_the_last_ack_resends_exactly_the_unacked_offers(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()
    for n in range(1, 6):
        stack.delivery.publish("alice", draft(n))
    ws = stack.ws("tok-alice", after=0)
    assert offer_seqs(ws, 3) == [1, 2, 3]
    ack(ws, 3)
    # The server has sent 4 and 5 too; the phone drops off before showing them.
    ws.close_socket()
    for n in range(6, 9):  # published while the phone is away, from another thread
        worker = threading.Thread(target=stack.delivery.publish, args=("alice", draft(n)))
        worker.start()
        worker.join()

    with stack.ws("tok-alice", after=3) as again:
        assert offer_seqs(again, 5) == [4, 5, 6, 7, 8]
        stack.delivery.publish("alice", draft(9))
        assert offer_seqs(again, 1) == [9]  # nothing was sent twice in between
        ack(again, 9)
    assert _wait_for_ack(stack, "alice", 9)


def test_without_after_the_stream_resumes_from_the_servers_ack(make_stack: StackFactory) -> None:
    stack = make_stack()
    for n in range(1, 5):
        stack.delivery.publish("alice", draft(n))
    with stack.ws("tok-alice") as ws:
        assert offer_seqs(ws, 4) == [1, 2, 3, 4]
        ack(ws, 2)
        assert _wait_for_ack(stack, "alice", 2)
    with stack.ws("tok-alice") as ws:
        assert offer_seqs(ws, 2) == [3, 4]
        stack.delivery.publish("alice", draft(5))
        assert offer_seqs(ws, 1) == [5]


def test_offers_published_concurrently_from_many_threads_arrive_once_in_order(
    make_stack: StackFactory,
) -> None:
    stack = make_stack()
    with stack.ws("tok-alice", after=0) as ws, stack.ws("tok-bob", after=0) as bob:
        start = threading.Barrier(4)

        def publisher() -> None:
            start.wait()
            for n in range(15):
                stack.delivery.publish("alice", draft(n))

        threads = [threading.Thread(target=publisher) for _ in range(4)]
        for t in threads:
            t.start()
        seqs = offer_seqs(ws, 60)
        for t in threads:
            t.join()
        assert seqs == list(range(1, 61))
        stack.delivery.publish("alice", draft(61))
        assert offer_seqs(ws, 1) == [61]
        stack.delivery.publish("bob", draft(1))
        assert offer_seqs(bob, 1) == [1]  # bob saw none of alice's


def test_a_publisher_overtaken_by_another_leaves_no_gap(make_stack: StackFactory) -> None:
    """Thread A stores seq 1 but hands it over late; thread B's seq 2 arrives first."""
    stack = make_stack()
    with stack.ws("tok-alice", after=0) as ws:
        wait_for_sessions(stack, "alice", 1)
        stack.repo.add_offer(  # A: committed, not yet handed to the hub
            "alice", draft(1), created_ms=0, trigger_published_ms=None, new_code=lambda: "A-1"
        )
        stack.delivery.publish("alice", draft(2))  # B
        assert offer_seqs(ws, 2) == [1, 2]
        stack.delivery.publish("alice", draft(3))
        assert offer_seqs(ws, 1) == [3]


def test_two_phones_of_one_shopper_both_get_live_offers(make_stack: StackFactory) -> None:
    stack = make_stack()
    with stack.ws("tok-alice", after=0) as phone, stack.ws("tok-alice", after=0) as tablet:
        wait_for_sessions(stack, "alice", 2)
        stack.delivery.publish("alice", draft(1))
        assert offer_seqs(phone, 1) == [1]
        assert offer_seqs(tablet, 1) == [1]


@pytest.mark.parametrize(
    ("token", "reason"),
    [(None, "unauthenticated: pass ?token=<shopper token>"), ("tok-nobody", "unknown token")],
)
def test_an_unauthenticated_socket_is_closed_with_4401(
    make_stack: StackFactory, token: str | None, reason: str
) -> None:
    stack = make_stack()
    with stack.ws(token) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4401, reason)


def test_a_bad_after_or_ack_gets_a_clear_answer(make_stack: StackFactory) -> None:
    stack = make_stack()
    with stack.ws("tok-alice", after=-1) as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4400
    assert "after" in closed.value.rcvd.reason
    with stack.ws("tok-alice") as ws:
        ws.send('{"type": "ack", "seq": "x"}')
        error = recv_json(ws)
        assert error["type"] == "error" and "seq" in error["detail"]
        ws.send("not json")
        assert recv_json(ws)["type"] == "error"
        stack.delivery.publish("alice", draft(1))  # the stream goes on
        assert offer_seqs(ws, 1) == [1]


def test_erasing_the_shopper_closes_the_live_socket(make_stack: StackFactory) -> None:
    stack = make_stack()
    with stack.ws("tok-alice") as ws:
        wait_for_sessions(stack, "alice", 1)
        stack.delivery.erase_shopper("alice")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


def _wait_for_ack(stack: Stack, shopper: str, seq: int) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if stack.delivery.acked_seq(shopper) == seq:
            return True
        time.sleep(0.01)
    return False
