#!/usr/bin/env bash
# Prepare the Docker backend without any image registry: podman (a Docker-compatible API that the
# harness starts per session), runc, debootstrap; /etc/containers/containers.conf for this kind of
# host; the base image localhost/debian:bookworm from debootstrap (the Debian mirror apt uses) and the
# engine images built on it from containers/images/<name>/ (PostgreSQL 15 + wal2json, pushgateway).
# Idempotent and cached: an image is rebuilt only when its recipe (the files of its folder) changes.
# Usage: scripts/setup-docker.sh [IMAGE...]   (default: all images; names: postgres pushgateway mariadb)
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=localhost/debian:bookworm
CONF=/etc/containers/containers.conf
MARK="# written by cdc-harness scripts/setup-docker.sh"
if (($#)); then IMAGES=("$@"); else IMAGES=(postgres pushgateway mariadb); fi

log() { echo "setup-docker: $*"; }

# -- packages ---------------------------------------------------------------------------------------
missing=()
for p in podman runc debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then  # the other engines need none of it: say what to run, do not fail the set-up
    echo "setup-docker: missing ${missing[*]}; for the Docker backend run as root:" \
      "apt-get update && apt-get install -y ${missing[*]} && bash scripts/setup-docker.sh" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "installed ${missing[*]}"
fi

# -- engine configuration: runc (crun fails on cgroups v1 here), cgroupfs, bounded ulimits ------------
if [[ ! -e $CONF ]] || head -n1 "$CONF" | grep -qxF "$MARK"; then
  new=$(printf '%s\n' "$MARK" "[engine]" 'runtime = "runc"' 'cgroup_manager = "cgroupfs"' \
    'events_logger = "file"' "[containers]" 'default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]')
  if [[ ! -e $CONF ]] || [[ "$(cat "$CONF")" != "$new" ]]; then
    if [[ $(id -u) -ne 0 ]]; then
      echo "setup-docker: $CONF must be written as root (rerun this script as root); the images are built anyway" >&2
    else
      mkdir -p "$(dirname "$CONF")"
      printf '%s\n' "$new" >"$CONF"
      log "wrote $CONF"
    fi
  fi
else
  log "$CONF exists and is not ours; left as it is (it needs runtime = \"runc\" and cgroup_manager = \"cgroupfs\" on cgroups v1)"
fi

# -- base image -------------------------------------------------------------------------------------
mirror() {  # the first Debian mirror apt uses for the main suite (deb822 .sources or one-line lists)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -r $f ]] || continue
    awk 'BEGIN{RS=""} /(^|\n)Suites:[^\n]*bookworm([ \n]|$)/ && !/Enabled: *no/ {
           if (match($0, /URIs: *[^ \n]+/)) { u=substr($0, RSTART, RLENGTH); sub(/URIs: */, "", u); print u; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -r $f ]] || continue
    awk '$1 == "deb" && $0 ~ / bookworm( |$)/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f"
  done
}

if podman image exists "$BASE"; then
  log "$BASE is there"
else
  url=$(mirror | head -n1)
  if [[ -z $url ]]; then
    echo "setup-docker: no Debian bookworm mirror found in /etc/apt/sources.list{,.d}; add one, then rerun" >&2
    exit 1
  fi
  root=$(mktemp -d /var/tmp/cdc-debootstrap-XXXXXX)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase bookworm from $url (a few minutes, once)"
  start=$(date +%s)
  debootstrap --variant=minbase bookworm "$root" "$url" >"$root.log" 2>&1 || {
    echo "setup-docker: debootstrap failed; last lines of $root.log:" >&2; tail -n 5 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
  rm -rf "$root"
  trap - EXIT
  log "imported $BASE in $(( $(date +%s) - start )) s"
fi

# -- engine images ----------------------------------------------------------------------------------
for name in "${IMAGES[@]}"; do
  dir=containers/images/$name
  [[ -f $dir/Containerfile ]] || { echo "setup-docker: no recipe $dir/Containerfile" >&2; exit 1; }
  tag=$(sed -n 's/^# image: *//p' "$dir/Containerfile" | head -n1)
  recipe=$(cd "$dir" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  have=$(podman image inspect --format '{{ index .Labels "org.cdc-harness.recipe" }}' "$tag" 2>/dev/null || true)
  if [[ $have == "$recipe" ]]; then
    log "$tag is up to date (recipe $recipe)"
    continue
  fi
  old=$(podman image inspect --format '{{ .Id }}' "$tag" 2>/dev/null || true)
  log "building $tag from $dir (recipe $recipe)"
  start=$(date +%s)
  podman build --network host --pull=never --label "org.cdc-harness.recipe=$recipe" -t "$tag" "$dir" \
    >"/tmp/cdc-build-$name.log" 2>&1 || {
    echo "setup-docker: building $tag failed; last lines of /tmp/cdc-build-$name.log:" >&2
    tail -n 5 "/tmp/cdc-build-$name.log" >&2; exit 1; }
  if [[ -n $old ]]; then podman rmi "$old" >/dev/null 2>&1 || true; fi  # the layers stay as build cache
  log "built $tag in $(( $(date +%s) - start )) s"
done
