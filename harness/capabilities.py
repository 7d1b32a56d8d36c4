"""What an approach claims it can do; scenarios needing more are reported `unsupported`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DDL_KINDS = ("add", "drop", "rename", "type")


@dataclass(frozen=True)
class Capabilities:
    """An approach's claims, shown in the matrix and used by the checker.

    ``before_image``: ``full`` (whole old row), ``key`` (key columns only) or ``none``.
    ``updates``: ``update`` (one event) or ``delete+insert`` (two events per update).
    ``key_updates``: how an update that changes the key arrives: ``update`` (one event with the
    new key and the old one, ``ChangeEvent.old_key``) or ``delete+insert`` (delete of the old key,
    insert of the new one); ``updates=delete+insert`` implies it.
    ``transactions``: all changes of one commit arrive together, not interleaved.
    ``delivery``: ``exactly-once``, or ``at-least-once`` (exact repeats at the same position
    allowed, e.g. after a crash between receipt and ack).
    ``ddl``: the DDL kinds (``add|drop|rename|type``) after which events carry the new shape.
    ``truncate``: emits a truncate event. ``resume``: restarts after an acknowledged position.
    ``net_per_commit``: one net change per key per commit of a sink (several source changes to
    a key inside one sink commit arrive as one); the approach records each commit's source
    boundaries (``commit_log``) and the checker compares at them (``harness.netcommit``).
    ``dropped``: columns the approach declares it leaves out (a projection, part of its
    settings); the net-per-commit checker leaves them out of the committed images and the final
    state too, so a dropped column still delivered, or another one missing, is a ``schema``.
    ``keyless``: a table without a primary key arrives keyed by the row's identity (all columns,
    or the replica identity index) and its updates as ``key_updates`` says; False for an approach
    that keys such tables its own way (a scenario requiring ``keyless`` is then unsupported).
    ``settings``: case settings the approach applies to its own reader session (e.g.
    ``logical_decoding_work_mem``); a scenario requiring ``setting:<name>`` needs it.
    ``partition``: after a network partition the harness can still tell this approach's late
    changes from lost ones (its caught-up signal is not satisfied by the server-side sender a
    partition leaves behind); False makes a scenario requiring ``partition`` unsupported.
    """

    before_image: Literal["full", "key", "none"] = "full"
    updates: Literal["update", "delete+insert"] = "update"
    key_updates: Literal["update", "delete+insert"] = "update"
    transactions: bool = True
    delivery: Literal["exactly-once", "at-least-once"] = "exactly-once"
    ddl: frozenset[str] = field(default_factory=frozenset)
    truncate: bool = False
    resume: bool = True
    net_per_commit: bool = False
    keyless: bool = True
    dropped: frozenset[str] = field(default_factory=frozenset)
    notes: tuple[str, ...] = ()
    settings: frozenset[str] = field(default_factory=frozenset)
    partition: bool = True

    def __post_init__(self) -> None:
        if self.updates == "delete+insert" and self.key_updates != "delete+insert":
            object.__setattr__(self, "key_updates", "delete+insert")  # every update is split

    @property
    def splits_updates(self) -> bool:
        """True when some committed update arrives as delete + insert (all, or key changes)."""
        return self.key_updates == "delete+insert"

    def lacks(self, requirement: str) -> str | None:
        """Return why ``requirement`` (e.g. ``ddl:rename``, ``truncate``, ``resume``) is not met."""
        kind, _, arg = requirement.partition(":")
        if kind == "ddl" and arg not in self.ddl:
            return f"does not follow DDL '{arg}' (claims: {sorted(self.ddl) or 'none'})"
        if kind == "truncate" and not self.truncate:
            return "emits no truncate event"
        if kind == "resume" and not self.resume:
            return "cannot resume from an acknowledged position"
        if kind == "setting" and arg not in self.settings:
            return f"does not apply the setting '{arg}' to its reader"
        if kind == "keyless" and not self.keyless:
            return "keys a table without a primary key its own way (see its notes), which no claim states yet"
        if kind == "partition" and not self.partition:
            return "cannot yet be judged after a network partition (its caught-up signal is not exact)"
        if kind == "before" and self.before_image != "full":
            return f"gives before images '{self.before_image}', not full"
        return None

    def as_dict(self) -> dict:
        """Plain-JSON form for the results file."""
        return {
            "before_image": self.before_image,
            "updates": self.updates,
            "key_updates": self.key_updates,
            "transactions": self.transactions,
            "delivery": self.delivery,
            "ddl": sorted(self.ddl),
            "truncate": self.truncate,
            "resume": self.resume,
            "net_per_commit": self.net_per_commit,
            "keyless": self.keyless,
            "partition": self.partition,
            "dropped": sorted(self.dropped),
            "notes": list(self.notes),
            "settings": sorted(self.settings),
        }
