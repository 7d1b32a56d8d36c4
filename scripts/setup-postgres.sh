#!/usr/bin/env bash
# Install the PostgreSQL 15 server binaries and wal2json the harness's local engine needs.
# Idempotent: does nothing when both are present. Never starts the distribution's own cluster
# service: the harness starts private clusters in temp dirs for each test session.
set -euo pipefail

PG_BIN=/usr/lib/postgresql/15/bin
WAL2JSON=/usr/lib/postgresql/15/lib/wal2json.so

have_all() { [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/postgres" && -f "$WAL2JSON" ]]; }

if have_all; then
    echo "postgresql-15 and wal2json are installed ($PG_BIN)"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "missing PostgreSQL 15 binaries or wal2json; run as root:" >&2
    echo "  apt-get update && apt-get install -y postgresql-15 postgresql-15-wal2json" >&2
    exit 1
fi

# Keep the package's post-install from starting the system cluster: policy-rc.d forbids
# service starts while the packages install (removed again afterwards if we created it).
policy=/usr/sbin/policy-rc.d
created_policy=0
if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"
    chmod 0755 "$policy"
    created_policy=1
fi
cleanup() { if [[ "$created_policy" -eq 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends postgresql-15 postgresql-15-wal2json

if have_all; then
    echo "installed postgresql-15 and wal2json ($PG_BIN)"
else
    echo "installation finished but $PG_BIN/initdb or $WAL2JSON is still missing" >&2
    exit 1
fi
