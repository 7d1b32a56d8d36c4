#!/usr/bin/env bash
# Install the MariaDB server binaries the harness's local `mysql` engine needs (mariadb-install-db,
# mariadbd). Idempotent: does nothing when both are present. Never starts the distribution's own
# service: the harness starts private servers in temp dirs for each test session.
set -euo pipefail

have_all() { command -v mariadb-install-db >/dev/null 2>&1 && { command -v mariadbd >/dev/null 2>&1 || [[ -x /usr/sbin/mariadbd ]]; }; }

if have_all; then
    echo "mariadb-server is installed ($(command -v mariadb-install-db))"
    exit 0
fi

if [[ "$(id -u)" -ne 0 ]]; then
    echo "missing the MariaDB server binaries; run as root:" >&2
    echo "  apt-get update && apt-get install -y mariadb-server" >&2
    exit 1
fi

# Keep the package's post-install from starting the system server: policy-rc.d forbids service
# starts while the packages install (removed again afterwards if we created it).
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
apt-get install -y --no-install-recommends mariadb-server

if have_all; then
    echo "installed mariadb-server ($(command -v mariadb-install-db))"
else
    echo "installation finished but mariadb-install-db or mariadbd is still missing" >&2
    exit 1
fi
