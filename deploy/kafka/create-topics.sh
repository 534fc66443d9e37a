#!/usr/bin/env bash
# Creates streamdrift's topics before the processors start (docker-compose service `kafka-init`).
#
# The processors would create missing topics themselves, but only with the partition count and
# the broker's default retention; here every topic gets a retention that fits what it holds, and
# the state topic is compacted. Idempotent: existing topics are left as they are (changing the
# partitions of a keyed topic moves models to other partitions, so that stays a deliberate act).
#
# Topic names and the partition count come from the environment; docker-compose.yml sets them to
# match deploy/streamdrift/streamdrift.toml ([topics]), and tests/integration/test_deploy.py
# checks that they do.
set -euo pipefail

KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP_SERVER=${BOOTSTRAP_SERVER:-kafka:9092}
PARTITIONS=${TOPIC_PARTITIONS:?set TOPIC_PARTITIONS to [topics] partitions of the streamdrift config}
REPLICATION=${TOPIC_REPLICATION_FACTOR:-1}

DAY_MS=86400000

topics() {
  "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP_SERVER" "$@"
}

create() {
  local name=$1
  shift
  topics --create --if-not-exists --topic "$name" --partitions "$PARTITIONS" \
    --replication-factor "$REPLICATION" "$@"
}

# The broker's healthcheck passes before its listeners accept admin requests reliably.
for attempt in $(seq 1 30); do
  if topics --list >/dev/null 2>&1; then
    break
  fi
  if [ "$attempt" -eq 30 ]; then
    echo "create-topics: broker $BOOTSTRAP_SERVER did not answer" >&2
    exit 1
  fi
  sleep 2
done

# Inputs keyed by model: a week, enough to replay after a long outage or reprocess a bad deploy.
create "$TOPIC_FEATURES" --config retention.ms=$((7 * DAY_MS))
create "$TOPIC_LABELS" --config retention.ms=$((7 * DAY_MS))
# Outputs other systems act on (retraining jobs, on-call): a month of history.
create "$TOPIC_ALERTS" --config retention.ms=$((30 * DAY_MS))
create "$TOPIC_RETRAIN_REQUESTS" --config retention.ms=$((30 * DAY_MS))
create "$TOPIC_MODEL_DECISIONS" --config retention.ms=$((30 * DAY_MS))
# Rejected events: two weeks to find and fix the producer that sent them.
create "$TOPIC_DEAD_LETTER" --config retention.ms=$((14 * DAY_MS))
# Detector state checkpoints: only the latest record per key matters, so compact; hourly
# segments let the cleaner run, and tombstones (dropped models) are kept a day.
create "$TOPIC_STATE" --config cleanup.policy=compact --config segment.ms=3600000 \
  --config min.cleanable.dirty.ratio=0.1 --config delete.retention.ms=$DAY_MS

topics --describe --topic "$TOPIC_FEATURES"
echo "create-topics: done"
