#!/bin/bash
# Single-node KRaft broker, configured like the apache/kafka image (the part the harness uses):
# - every KAFKA_<NAME> variable is the property <name>: lower case, '_' -> '.', '__' -> '-',
#   '___' -> '_' (KAFKA_NODE_ID, KAFKA_PROCESS_ROLES, KAFKA_LISTENERS, KAFKA_ADVERTISED_LISTENERS,
#   KAFKA_CONTROLLER_QUORUM_VOTERS, KAFKA_LOG_DIRS, ...); with none given, a default single node
#   on 9092 (controller 9093) advertised as localhost:9092;
# - KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS (JVM flags; not properties);
# - CLUSTER_ID: the storage is formatted with it on first start (kept on a restart of the container).
set -euo pipefail
conf=/opt/kafka/config/server.properties
jvm_vars=" KAFKA_HEAP_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_OPTS KAFKA_LOG4J_OPTS KAFKA_JMX_OPTS KAFKA_GC_LOG_OPTS "
: >"$conf"
while IFS='=' read -r name value; do
  [[ $name == KAFKA_* && $jvm_vars != *" $name "* ]] || continue
  key=${name#KAFKA_}; key=${key,,}; key=${key//___/$'\x01'}; key=${key//__/-}; key=${key//_/.}; key=${key//$'\x01'/_}
  printf '%s=%s\n' "$key" "$value" >>"$conf"
done < <(env)
if [[ ! -s $conf ]]; then
  cat >"$conf" <<'PROPS'
node.id=1
process.roles=broker,controller
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.quorum.voters=1@localhost:9093
log.dirs=/tmp/kraft-combined-logs
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
PROPS
fi
java=(java ${KAFKA_HEAP_OPTS:--Xmx1g -Xms1g} ${KAFKA_JVM_PERFORMANCE_OPTS:-} ${KAFKA_OPTS:-}
      -Djava.awt.headless=true -Dcdc.log=/dev/stdout
      -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties -cp '/opt/kafka/libs/*')
logs=$(sed -n 's/^log\.dirs=//p' "$conf" | cut -d, -f1)
if [[ ! -e ${logs:-/tmp/kraft-combined-logs}/meta.properties ]]; then  # first start (a restart skips a JVM)
  standalone=()
  grep -q '^controller.quorum.voters=' "$conf" || standalone=(--standalone)
  "${java[@]}" kafka.tools.StorageTool format --ignore-formatted -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" \
    -c "$conf" "${standalone[@]}" >/dev/null
fi
exec "${java[@]}" kafka.Kafka "$conf"
