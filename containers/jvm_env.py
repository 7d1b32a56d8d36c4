"""The environment contract of the Kafka and Connect images: the local backend's properties as the
variables the official images (apache/kafka, Debezium's Connect) and the project's own read."""

from __future__ import annotations

#: Debezium's Connect image takes these worker properties from variables without the CONNECT_ prefix
CONNECT_NAMED = {"bootstrap.servers": "BOOTSTRAP_SERVERS", "group.id": "GROUP_ID",
                 "config.storage.topic": "CONFIG_STORAGE_TOPIC", "offset.storage.topic": "OFFSET_STORAGE_TOPIC",
                 "status.storage.topic": "STATUS_STORAGE_TOPIC"}


def parse_properties(text: str) -> dict[str, str]:
    """``key=value`` lines of a Java properties text (no continuation lines; comments skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def kafka_env(properties: dict[str, str]) -> dict[str, str]:
    """apache/kafka's variables for broker ``properties``: ``KAFKA_`` + the name upper-cased with
    ``_`` -> ``___``, ``-`` -> ``__``, ``.`` -> ``_``."""
    return {"KAFKA_" + key.replace("_", "___").replace("-", "__").replace(".", "_").upper(): value
            for key, value in properties.items()}


def connect_env(properties: dict[str, str]) -> dict[str, str]:
    """Debezium Connect's variables for worker ``properties``: the five it names itself
    (``CONNECT_NAMED``), every other one as ``CONNECT_`` + the name upper-cased, ``.`` -> ``_``
    (a name with ``_`` or ``-`` has no variable: ``ValueError``)."""
    env: dict[str, str] = {}
    for key, value in properties.items():
        if key in CONNECT_NAMED:
            env[CONNECT_NAMED[key]] = value
        elif "_" in key or "-" in key:
            raise ValueError(f"worker property {key!r} has no CONNECT_ variable")
        else:
            env["CONNECT_" + key.replace(".", "_").upper()] = value
    return env
