#!/usr/bin/env bash
# Start a local Spark Connect server with the harness's Delta and Iceberg jars and settings, in the
# foreground, bound to 127.0.0.1 (default port 15002), to try the external Spark backend:
#   bash scripts/spark-connect.sh 15002 &
#   pytest suites/test_conformance.py -k spark --cdc-engine-url spark=sc://127.0.0.1:15002
# Needs `make setup` (pyspark in .venv, the jars in .cache/jars/spark). Stop it with Ctrl-C / kill.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT="${1:-15002}"
PYSPARK="$(.venv/bin/python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
JARS="$(ls "${CDC_JARS:-$PWD/.cache/jars}"/spark/*.jar | paste -sd, -)"
CONF=()
while IFS='=' read -r key value; do CONF+=(--conf "$key=$value"); done < <(
    .venv/bin/python -c 'from containers.spark import LOCAL_CONF
for k, v in LOCAL_CONF.items(): print(f"{k}={v}")')
export SPARK_HOME="$PYSPARK" SPARK_LOCAL_IP=127.0.0.1
exec "$PYSPARK/bin/spark-submit" --master 'local[2]' --class org.apache.spark.sql.connect.service.SparkConnectServer \
    --jars "$JARS" "${CONF[@]}" --conf spark.connect.grpc.binding.address=127.0.0.1 \
    --conf "spark.connect.grpc.binding.port=$PORT" --name cdc-harness-connect
