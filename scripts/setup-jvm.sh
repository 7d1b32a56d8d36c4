#!/usr/bin/env bash
# Resolve the JVM engines' jars (Kafka broker, Kafka Connect, Debezium connectors, Delta and
# Iceberg for Spark, Spark's Kafka source) from Maven
# Central into .cache/jars, once: containers/jvm/pom.xml lists them, one profile per folder.
# Installs a Java runtime and Maven from Debian when missing. Idempotent: a stamp holding the pom's
# hash skips the resolution when nothing changed. Nothing is downloaded at run time.
set -euo pipefail
cd "$(dirname "$0")/.."

JARS="${CDC_JARS:-$PWD/.cache/jars}"
POM=containers/jvm/pom.xml
STAMP="$JARS/.stamp"
# profile -> folder under $JARS (Connect plugins together in one folder: the worker's plugin.path)
PROFILES=(kafka:kafka debezium-postgres:connect-plugins/debezium-postgres
          debezium-mysql:connect-plugins/debezium-mysql debezium-mariadb:connect-plugins/debezium-mariadb
          spark:spark)
# what pyspark's own jars folder already holds (Spark loads those first; a second copy conflicts)
SPARK_SHIPS=org.scala-lang,org.apache.hadoop,org.apache.parquet,com.fasterxml.jackson.core,org.roaringbitmap,org.slf4j
SPARK_SHIPS+=,org.apache.logging.log4j,com.google.code.findbugs,commons-logging,org.xerial.snappy,com.github.luben
SPARK_SHIPS+=,io.airlift,org.locationtech.jts,commons-pool,org.lz4
# Spark's Kafka source (spark-sql-kafka-0-10) brings kafka-clients, commons-pool2 and the token
# provider, none of which pyspark ships; its spark-tags pyspark does ship
SPARK_SHIPS_ARTIFACTS=spark-tags_2.13

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ((${#need[@]})); then
    if [[ "$(id -u)" -ne 0 ]]; then
        echo "missing ${need[*]}; run as root: apt-get update && apt-get install -y ${need[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${need[@]}"
fi

want="$(sha256sum "$POM" scripts/setup-jvm.sh | sha256sum | cut -c1-16)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "JVM jars are in $JARS"
    exit 0
fi

for entry in "${PROFILES[@]}"; do
    profile="${entry%%:*}"
    folder="$JARS/${entry#*:}"
    rm -rf "$folder"
    mkdir -p "$folder"
    exclude=()
    # a Connect plugin brings only its own jars: the worker provides Kafka's
    [[ "$profile" == debezium-* ]] && exclude=(-DexcludeGroupIds=org.apache.kafka)
    [[ "$profile" == spark ]] && exclude=(-DexcludeGroupIds="$SPARK_SHIPS"
                                            -DexcludeArtifactIds="$SPARK_SHIPS_ARTIFACTS")
    echo "resolving $profile into $folder"
    mvn -B -q -Dstyle.color=never -f "$POM" -P "$profile" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="$folder" "${exclude[@]}"
done
echo "$want" >"$STAMP"
echo "JVM jars resolved into $JARS ($(du -sh "$JARS" | cut -f1))"
