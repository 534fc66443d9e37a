#!/usr/bin/env python3
"""What the load generator of ``bench_stream.py`` (c) costs on these cores, without any worker.

``bench_stream.py`` runs its producer, its alert listener and the broker on the same machine as
the worker it measures; every CPU-second they take is one the worker does not get. This prints,
on the embedded Tansu broker:

1. the latency phase's producer (librdkafka, ``LiveModels._send``) at a given rate for each
   ``--lingers`` value: CPU of this process and of the broker per produced event;
2. the alert listener (kafka-python, ``AlertListener``) for each ``--waits`` value of its
   ``fetch_max_wait_ms``: its idle CPU and the broker's, in cores, and how late it sees a message
   produced at a random moment (p50, p90, max over 60).

    python scripts/bench_load_generator.py [--rate 50000] [--seconds 10] [--lingers 5 20 50]
                                           [--waits 20 50 100]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_stream import (  # noqa: E402
    LIVE_PREFIX, PARTITIONS, AlertListener, LiveModels, cpu_seconds, percentile, producer)

from streamdrift.stream.broker import EmbeddedBroker  # noqa: E402
from streamdrift.stream.topics import ensure_topics_sync  # noqa: E402

MODELS = 64  # as bench_stream's default


def producer_cost(bootstrap: str, broker_pid: int, linger_ms: int, rate: float, seconds: float) -> str:
    topic = f"load-linger{linger_ms}-{time.time_ns()}"
    ensure_topics_sync(bootstrap, {topic: PARTITIONS})
    per_model = int(rate * seconds / MODELS)
    live = LiveModels(MODELS, per_model)
    p = producer(bootstrap, linger_ms=linger_ms)
    before = cpu_seconds(), cpu_seconds(broker_pid)
    wall = time.monotonic()
    sent = live.send_measured(p, topic, per_model, rate)
    wall = time.monotonic() - wall
    mine, broker = cpu_seconds() - before[0], cpu_seconds(broker_pid) - before[1]
    del p
    return (f"   linger {linger_ms:>4} ms: {sent:,} events in {wall:.1f} s ({sent / wall:,.0f}/s); CPU per event: "
            f"producer {mine / sent * 1e6:.1f} us, broker {broker / sent * 1e6:.1f} us")


def listener_cost(bootstrap: str, broker_pid: int, wait_ms: int, idle_s: float = 10.0) -> str:
    topic = f"load-wait{wait_ms}-{time.time_ns()}"
    ensure_topics_sync(bootstrap, {topic: PARTITIONS})
    listener = AlertListener(bootstrap, topic, LIVE_PREFIX, wait_ms=wait_ms)
    listener.start()
    time.sleep(2.0)  # connected and fetching
    before = cpu_seconds(), cpu_seconds(broker_pid)
    time.sleep(idle_s)
    mine, broker = (cpu_seconds() - before[0]) / idle_s, (cpu_seconds(broker_pid) - before[1]) / idle_s
    p = producer(bootstrap, linger_ms=0)
    rng = random.Random(1)
    for i in range(60):
        time.sleep(rng.random() * 0.2)
        p.produce(topic, orjson.dumps({"model": f"{LIVE_PREFIX}00", "sent": time.time()}), key=b"k%d" % i)
        p.flush()
    time.sleep(1.0)
    listener.stopping.set()
    listener.join(10)
    late = [arrived - message["sent"] for arrived, _, message in listener.arrivals]
    del p
    if not late:
        return f"   wait {wait_ms:>4} ms: no message arrived"
    return (f"   wait {wait_ms:>4} ms: idle CPU listener {mine:.3f} cores, broker {broker:.3f} cores; "
            f"{len(late)} messages seen late by p50 {percentile(late, 50) * 1000:.0f} ms, "
            f"p90 {percentile(late, 90) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=50_000, help="events/s the producer sends (default 50,000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each producer run lasts (default 10)")
    parser.add_argument("--lingers", type=int, nargs="+", default=[5, 20, 50],
                        help="the producer's linger.ms values to measure, in milliseconds")
    parser.add_argument("--waits", type=int, nargs="+", default=[20, 50, 100],
                        help="the listener's fetch_max_wait_ms values to measure, in milliseconds")
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        print(f"producer of bench_stream (c): {args.rate:,.0f} events/s for {args.seconds:.0f} s, "
              f"{MODELS} models, {PARTITIONS} partitions")
        for linger in args.lingers:
            print(producer_cost(broker.bootstrap, broker.pid, linger, args.rate, args.seconds), flush=True)
        print("alert listener of bench_stream (c), by fetch_max_wait_ms")
        for wait in args.waits:
            print(listener_cost(broker.bootstrap, broker.pid, wait), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
