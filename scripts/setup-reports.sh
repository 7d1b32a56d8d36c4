#!/usr/bin/env bash
# Install what the reports need: prometheus-pushgateway, promtool (prometheus), chromium, Java (the Allure
# CLI runs on it: Debian's default-jre-headless when no `java` is on PATH), and Allure via npm.
# Idempotent: installs only missing Debian packages, only as root; never leaves a Debian service running.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(prometheus-pushgateway prometheus chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Any Java will do (a JDK from elsewhere too); only when there is none, Debian's default JRE.
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup-reports: not root; install these yourself: sudo apt-get install -y ${missing[*]}" >&2
  else
    # Keep package scripts from starting the Debian services (invoke-rc.d asks policy-rc.d first).
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e $policy ]]; then
      printf '#!/bin/sh\nexit 101\n' >"$policy"
      chmod 755 "$policy"
      own_policy=1
    fi
    trap '[[ $own_policy == 1 ]] && rm -f "$policy"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
  fi
fi

# If a service got started anyway (a system with systemd), stop and disable it: the harness runs its own.
for svc in prometheus prometheus-pushgateway; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
    systemctl disable "$svc" || true
  fi
done

if [[ -f package.json ]] && command -v npm >/dev/null 2>&1; then
  if [[ -f package-lock.json ]]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
fi
echo "setup-reports: done ($(command -v prometheus-pushgateway || echo 'no pushgateway'), $(command -v promtool || echo 'no promtool'), $(command -v chromium || echo 'no chromium'), $(command -v java || echo 'no java'))"
