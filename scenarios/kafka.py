"""Fault scenarios of the Kafka engines: a Connect worker crash and a broker restart mid-stream.

They run for approaches whose cases include the engine they target (Debezium's ``connect`` and
``kafka`` roles). Writes come before and after the fault, which hits a running pipeline once it
has delivered what was written so far (``after-delivery``: whatever it committed of its own
offsets by then); the expected verdict is that nothing is lost, and that redeliveries stay
within what the delivery mode allows.
"""

from __future__ import annotations

from typing import Any

from harness.steps import AFTER_DELIVERY, Fault, Insert, Scenario, Txn, Update
from scenarios.sizes import size
from scenarios.tables import ITEMS, RowMaker


def _around_fault(name: str, fault: Fault, seed: int, scale: str, description: str) -> Scenario:
    """Inserts and multi-row transactions, the fault, then more of both and updates of every
    third row written so far."""
    maker = RowMaker(seed)
    n = max(size(scale, "rows") // 4, 2)
    key = 0
    steps: list[Any] = []
    for _ in range(2):
        for _ in range(n):
            key += 1
            steps.append(Insert("items", maker.item(key)))
        steps.append(Txn(tuple(Insert("items", maker.item(key + i + 1)) for i in range(4))))
        key += 4
        if not any(isinstance(s, Fault) for s in steps):
            steps.append(fault)
    steps.extend(Update("items", (k,), maker.item_change()) for k in range(1, key + 1, 3))
    return Scenario(name, (ITEMS,), steps, description=description)


def connect_crash(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """kill -9 of the Kafka Connect worker running the run's connector, then restart."""
    return _around_fault("connect-crash", Fault("connect-crash", AFTER_DELIVERY, "connect"), seed, scale,
                         "kill -9 the Connect worker once it delivered the first writes; its task resumes from "
                         "the offsets in Kafka")


def broker_restart(seed: int, scale: str, types: frozenset[str] = frozenset()) -> Scenario:
    """kill -9 of the Kafka broker, then restart on the same log dirs."""
    return _around_fault("broker-restart", Fault("broker-restart", AFTER_DELIVERY, "kafka"), seed, scale,
                         "kill -9 the Kafka broker once the first writes were delivered, restart it on the same data")


#: id -> (factory, engine roles a case needs to run it)
SCENARIOS = {
    "connect-crash": (connect_crash, frozenset({"connect"})),
    "broker-restart": (broker_restart, frozenset({"kafka"})),
}
