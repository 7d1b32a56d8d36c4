#!/usr/bin/env bash
# Prepare the Docker backend without any image registry: podman (a Docker-compatible API that the
# harness starts per session), runc, debootstrap; /etc/containers/containers.conf for this kind of
# host; the base images localhost/debian:SUITE from debootstrap (the Debian mirror apt uses; bookworm,
# and trixie for MariaDB 11, as each recipe's ARG BASE says) and the engine images built on them from
# containers/images/<name>/ (PostgreSQL 15 + wal2json, pushgateway, MariaDB 11.8, and Kafka and Kafka
# Connect from the jars scripts/setup-jvm.sh resolved into .cache/jars).
# Idempotent and cached: an image is rebuilt only when its recipe (the files of its folder, and for
# kafka/connect the jars and the JVM engines' log4j2 file staged with them) changes.
# Usage: scripts/setup-docker.sh [IMAGE...]   (default: all images; names: postgres pushgateway mariadb
# kafka connect spark; kafka and connect are skipped with a note while .cache/jars has no jars, spark
# while the project's virtualenv has no pyspark: its image takes the Spark distribution pyspark ships)
set -euo pipefail
cd "$(dirname "$0")/.."

CONF=/etc/containers/containers.conf
MARK="# written by cdc-harness scripts/setup-docker.sh"
if (($#)); then IMAGES=("$@"); else IMAGES=(postgres pushgateway mariadb kafka connect spark); fi
JARS="${CDC_JARS:-$PWD/.cache/jars}"
# what each JVM image takes from $JARS into its build context's jars/ (scripts/setup-jvm.sh's folders)
declare -A JVM_JARS=([kafka]="kafka" [connect]="kafka connect-plugins")

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

base() {  # base SUITE: localhost/debian:SUITE from debootstrap, once (a few minutes)
  local suite=$1 tag=localhost/debian:$1 url root start
  [[ -n $suite ]] || { echo "setup-docker: a recipe has no ARG BASE=localhost/debian:SUITE line" >&2; exit 1; }
  if podman image exists "$tag"; then
    log "$tag is there"
    return
  fi
  url=$(mirror | head -n1)
  if [[ -z $url ]]; then
    echo "setup-docker: no Debian bookworm mirror found in /etc/apt/sources.list{,.d}; add one, then rerun" >&2
    exit 1
  fi
  root=$(mktemp -d /var/tmp/cdc-debootstrap-XXXXXX)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase $suite from $url (a few minutes, once)"
  start=$(date +%s)
  debootstrap --variant=minbase "$suite" "$root" "$url" >"$root.log" 2>&1 || {
    echo "setup-docker: debootstrap $suite failed; last lines of $root.log:" >&2; tail -n 5 "$root.log" >&2; exit 1; }
  rm -f "$root.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | podman import --quiet --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
  rm -rf "$root"
  trap - EXIT
  log "imported $tag in $(( $(date +%s) - start )) s"
}

# -- engine images ----------------------------------------------------------------------------------
# The JVM images' build context: the recipe, the JVM engines' log4j2 file and the jars, hard-linked
# (copied across file systems) into a folder under .cache; its hash covers the jars too.
stage() {  # stage NAME -> prints the context dir, or nothing when the jars are missing
  local name=$1 ctx=.cache/docker-context/$1 folder
  for folder in ${JVM_JARS[$name]}; do
    [[ -n $(find "$JARS/$folder" -name '*.jar' -print -quit 2>/dev/null) ]] || return 0
  done
  rm -rf "$ctx" && mkdir -p "$ctx/jars"
  cp containers/images/"$name"/* containers/jvm/log4j2.properties "$ctx/"
  for folder in ${JVM_JARS[$name]}; do
    mkdir -p "$ctx/jars/$folder"
    cp -al "$JARS/$folder/." "$ctx/jars/$folder/" 2>/dev/null || cp -a "$JARS/$folder/." "$ctx/jars/$folder/"
  done
  echo "$ctx"
}

# The Spark image's build context: the recipe and the Spark distribution pyspark ships (bin, sbin,
# jars) from the project's virtualenv, hard-linked; prints nothing when pyspark is not installed.
stage_spark() {
  local ctx=.cache/docker-context/spark home part
  home=$("${VENV:-.venv}/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null) \
    || return 0
  [[ -d $home/jars ]] || return 0
  rm -rf "$ctx" && mkdir -p "$ctx/spark"
  cp containers/images/spark/* "$ctx/"
  for part in bin sbin jars; do
    cp -al "$home/$part" "$ctx/spark/$part" 2>/dev/null || cp -a "$home/$part" "$ctx/spark/$part"
  done
  echo "$ctx"
}

for name in "${IMAGES[@]}"; do
  dir=containers/images/$name
  [[ -f $dir/Containerfile ]] || { echo "setup-docker: no recipe $dir/Containerfile" >&2; exit 1; }
  tag=$(sed -n 's/^# image: *//p' "$dir/Containerfile" | head -n1)
  # the Debian suite of its base: ARG BASE=localhost/debian:SUITE (bookworm; MariaDB 11 needs trixie)
  base "$(sed -n 's|^ARG BASE=localhost/debian:||p' "$dir/Containerfile" | head -n1)"
  if [[ -n ${JVM_JARS[$name]:-} ]]; then
    dir=$(stage "$name")
    if [[ -z $dir ]]; then
      echo "setup-docker: no jars in $JARS for $tag; run bash scripts/setup-jvm.sh first (make setup does)" >&2
      continue
    fi
  elif [[ $name == spark ]]; then
    dir=$(stage_spark)
    if [[ -z $dir ]]; then
      echo "setup-docker: no pyspark in ${VENV:-.venv} for $tag; run make venv first (make setup does)" >&2
      continue
    fi
  fi
  # the recipe's own files by content; the jars (versioned names) by name and size: hashing the
  # Kafka/Connect jars' 115 MB took 12 s at every up-to-date run (and Spark's are 462 MB)
  recipe=$(cd "$dir" && { find . -type f ! -path '*/jars/*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum
    find . -type f -path '*/jars/*' -printf '%p %s\n' | LC_ALL=C sort; } | sha256sum | cut -c1-16)
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
rm -rf .cache/docker-context
