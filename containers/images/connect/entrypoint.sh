#!/bin/bash
# Kafka Connect distributed worker, configured like the Debezium Connect image (the part the
# harness uses):
# - BOOTSTRAP_SERVERS (required), GROUP_ID (default 1), CONFIG_STORAGE_TOPIC, OFFSET_STORAGE_TOPIC,
#   STATUS_STORAGE_TOPIC (required);
# - every CONNECT_<NAME> variable is the worker property <name>: lower case, '_' -> '.'
#   (CONNECT_LISTENERS, CONNECT_KEY_CONVERTER, CONNECT_EXACTLY_ONCE_SOURCE_SUPPORT, ...); it wins
#   over the defaults below;
# - plugin.path /kafka/connect (CONNECT_PLUGIN_PATH overrides); listeners http://0.0.0.0:8083;
#   the JSON converters; replication factor 1 for the three topics;
# - HEAP_OPTS or KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS (JVM flags).
set -euo pipefail
: "${BOOTSTRAP_SERVERS:?BOOTSTRAP_SERVERS is required (host:port of the Kafka broker)}"
: "${CONFIG_STORAGE_TOPIC:?CONFIG_STORAGE_TOPIC is required}"
: "${OFFSET_STORAGE_TOPIC:?OFFSET_STORAGE_TOPIC is required}"
: "${STATUS_STORAGE_TOPIC:?STATUS_STORAGE_TOPIC is required}"
conf=/opt/kafka/config/connect-distributed.properties
declare -A props=(
  [bootstrap.servers]=$BOOTSTRAP_SERVERS [group.id]=${GROUP_ID:-1}
  [config.storage.topic]=$CONFIG_STORAGE_TOPIC [offset.storage.topic]=$OFFSET_STORAGE_TOPIC
  [status.storage.topic]=$STATUS_STORAGE_TOPIC [plugin.path]=/kafka/connect [listeners]=http://0.0.0.0:8083
  [key.converter]=org.apache.kafka.connect.json.JsonConverter
  [value.converter]=org.apache.kafka.connect.json.JsonConverter
  [config.storage.replication.factor]=1 [offset.storage.replication.factor]=1
  [status.storage.replication.factor]=1
)
while IFS='=' read -r name value; do
  [[ $name == CONNECT_* ]] || continue
  key=${name#CONNECT_}; key=${key,,}; key=${key//_/.}
  props[$key]=$value
done < <(env)
: >"$conf"
for key in "${!props[@]}"; do printf '%s=%s\n' "$key" "${props[$key]}" >>"$conf"; done
exec java ${HEAP_OPTS:-${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}} ${KAFKA_JVM_PERFORMANCE_OPTS:-} ${KAFKA_OPTS:-} \
  -Djava.awt.headless=true -Dcdc.log=/dev/stdout -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
  -cp '/opt/kafka/libs/*' org.apache.kafka.connect.cli.ConnectDistributed "$conf"
