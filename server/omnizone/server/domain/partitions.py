"""Which worker holds which stores: pure functions over store ids and members.

A store's messages travel in one partition of the chain's stream, chosen by
nats-server's own subject mapping ``{{partition(P,1)}}`` over the store
token. ``partition_of`` is that function (FNV-1a, 32 bits, modulo P), so the
server knows which stores a partition holds without asking the cluster.
Workers split the partitions with ``assign``: every live worker computes the
same answer from the same member list, so no coordinator is needed; a
partition lease (docs/scaling.md) makes sure only one of them consumes it.
"""

from collections.abc import Iterable, Mapping, Sequence

_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193


def fnv1a_32(text: str) -> int:
    """FNV-1a over the UTF-8 bytes, 32 bits: nats-server's partition hash."""
    h = _FNV_OFFSET
    for byte in text.encode():
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFF
    return h


def partition_of(store: str, partitions: int) -> int:
    """The partition nats-server maps ``store``'s subjects to."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    return fnv1a_32(store) % partitions


def stores_by_partition(stores: Iterable[str], partitions: int) -> dict[int, list[str]]:
    """Partition -> its stores (sorted); partitions without a store are left out."""
    out: dict[int, list[str]] = {}
    for store in sorted(set(stores)):
        out.setdefault(partition_of(store, partitions), []).append(store)
    return out


def partition_weights(store_weights: Mapping[str, float], partitions: int) -> dict[int, float]:
    """Partition -> the load of its stores (e.g. their gateway counts)."""
    weights: dict[int, float] = {}
    for store, weight in store_weights.items():
        k = partition_of(store, partitions)
        weights[k] = weights.get(k, 0.0) + weight
    return weights


def assign(weights: Mapping[int, float], members: Sequence[str]) -> dict[str, list[int]]:
    """Partitions to members, heaviest partition first to the least loaded
    member (ties: the member first in sorted order). Deterministic: the same
    weights and members give the same answer in every worker. Every member
    gets an entry, maybe empty; no members: nobody gets anything."""
    names = sorted(set(members))
    if not names:
        return {}
    load = {name: 0.0 for name in names}
    out: dict[str, list[int]] = {name: [] for name in names}
    for k in sorted(weights, key=lambda p: (-weights[p], p)):
        name = min(names, key=lambda n: (load[n], n))
        out[name].append(k)
        load[name] += weights[k]
    for held in out.values():
        held.sort()
    return out


def balance(loads: Iterable[float]) -> float | None:
    """Most loaded over least loaded (1.0 is perfect); None when a load is 0."""
    values = list(loads)
    if not values or min(values) <= 0:
        return None
    return max(values) / min(values)
