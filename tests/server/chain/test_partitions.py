"""The chain's partition function and the split of partitions between workers (pure)."""

from hypothesis import given
from hypothesis import strategies as st

from omnizone.server.domain.partitions import (
    assign,
    balance,
    fnv1a_32,
    partition_of,
    partition_weights,
    stores_by_partition,
)

store_ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)


def test_fnv1a_32_known_vectors() -> None:
    # The published FNV-1a 32-bit test vectors.
    assert fnv1a_32("") == 0x811C9DC5
    assert fnv1a_32("a") == 0xE40C292C
    assert fnv1a_32("foobar") == 0xBF9CF968


@given(store_ids, st.integers(1, 1024))
def test_a_store_has_one_partition_in_range(store: str, partitions: int) -> None:
    k = partition_of(store, partitions)
    assert 0 <= k < partitions
    assert partition_of(store, partitions) == k


def test_stores_by_partition_holds_every_store_once() -> None:
    stores = [f"s{i:03d}" for i in range(50)]
    grouped = stores_by_partition(stores, 16)
    assert sorted(s for group in grouped.values() for s in group) == stores
    assert all(partition_of(s, 16) == k for k, group in grouped.items() for s in group)


@given(
    st.dictionaries(st.integers(0, 63), st.floats(0.001, 100), min_size=1, max_size=64),
    st.lists(st.from_regex(r"w[0-9]{1,2}", fullmatch=True), min_size=1, max_size=8, unique=True),
)
def test_assign_gives_every_partition_to_exactly_one_member(
    weights: dict[int, float], members: list[str]
) -> None:
    out = assign(weights, members)
    assert set(out) == set(members)
    held = [k for parts in out.values() for k in parts]
    assert sorted(held) == sorted(weights)
    # Same answer whatever order the members were listed in: no coordinator needed.
    assert assign(weights, list(reversed(members))) == out


def test_assign_balances_the_example_chain_within_the_target() -> None:
    stores = {f"s{i:03d}": 10.0 for i in range(50)}
    weights = partition_weights(stores, 16)
    loads = [sum(weights[k] for k in parts) for parts in assign(weights, ["a", "b"]).values()]
    assert sum(loads) == 500
    ratio = balance(loads)
    assert ratio is not None and ratio <= 1.2


def test_no_members_no_assignment_and_balance_of_an_idle_worker_is_none() -> None:
    assert assign({0: 1.0}, []) == {}
    assert balance([3.0, 0.0]) is None
    assert balance([2.0, 2.0]) == 1.0
