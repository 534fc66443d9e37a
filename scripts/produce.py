#!/usr/bin/env python3
"""Synthetic feature events with drift injected at known points, into Kafka or into a log file.

    python scripts/produce.py --broker 127.0.0.1:9092 --topic features --models 4 \\
        --events-per-model 10000 --features 5 --drift model-01:f02:6000:mean --rate 2000
    python scripts/produce.py --models 4 --drift model-00:country:5000:category --out log.jsonl.gz

Models are named ``model-00``, ``model-01``, ...; each event has numeric features ``f00..``,
a numeric ``amount`` and a categorical ``country`` (``streamdrift.synthetic.SyntheticStream``).
A drift ``MODEL:FEATURE:AT:KIND`` changes FEATURE of MODEL from its AT-th event on; KIND is
``mean``, ``variance``, ``category`` or ``missing``. Messages are keyed by model.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import sys
import time

from streamdrift.synthetic import Drift, SyntheticStream

DRIFT_KINDS = ("mean", "variance", "category", "missing")


def parse_drift(text: str) -> Drift:
    """``MODEL:FEATURE:AT:KIND`` as a :class:`Drift` (the model name may itself contain ``:``).

    >>> parse_drift("fraud-v3:amount:5000:mean")
    Drift(model='fraud-v3', feature='amount', at=5000, kind='mean')
    """
    parts = text.rsplit(":", 3)
    if len(parts) != 4 or not parts[0] or not parts[1]:
        raise argparse.ArgumentTypeError(f"--drift wants MODEL:FEATURE:AT:KIND, got {text!r}")
    model, feature, at, kind = parts
    if not at.isdigit():
        raise argparse.ArgumentTypeError(f"--drift {text!r}: AT must be an event number >= 0, got {at!r}")
    if kind not in DRIFT_KINDS:
        raise argparse.ArgumentTypeError(f"--drift {text!r}: KIND must be one of {', '.join(DRIFT_KINDS)}")
    return Drift(model, feature, int(at), kind)


def build_stream(args: argparse.Namespace) -> SyntheticStream:
    models = [f"model-{i:02d}" for i in range(args.models)]
    features = {f"f{j:02d}" for j in range(args.features)} | {"amount", "country"}
    for drift in args.drift:
        if drift.model not in models:
            raise SystemExit(f"--drift names model {drift.model!r}; the models are {models[0]} .. {models[-1]}")
        if drift.feature not in features:
            raise SystemExit(f"--drift names feature {drift.feature!r}; the features are {sorted(features)}")
        if drift.kind == "category" and drift.feature != "country":
            raise SystemExit("--drift: only the categorical feature 'country' can have a category drift")
        if drift.kind in ("mean", "variance") and drift.feature == "country":
            raise SystemExit(f"--drift: 'country' is categorical; a {drift.kind} drift needs a numeric feature")
    return SyntheticStream(models=models, numeric_features=args.features, events_per_model=args.events_per_model,
                           drifts=list(args.drift), seed=args.seed)


def write_log(stream: SyntheticStream, path: str) -> int:
    opener = gzip.open if path.endswith(".gz") else open
    count = 0
    with opener(path, "wb") as out:
        for _, value in stream.messages():
            out.write(value + b"\n")
            count += 1
    return count


async def produce(stream: SyntheticStream, broker: str, topic: str, partitions: int, rate: float | None) -> int:
    from aiokafka import AIOKafkaProducer

    from streamdrift.stream.topics import ensure_topics

    # Create the topic first: a broker that auto-creates would give it its default partition count.
    await ensure_topics(broker, {topic: partitions})
    producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    started = time.monotonic()
    count = 0
    pending = []
    try:
        for key, value in stream.messages():
            if rate:
                wait = started + count / rate - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            # send() only waits when the buffer is full; deliveries are checked in chunks.
            pending.append(await producer.send(topic, value=value, key=key))
            count += 1
            if len(pending) >= 10_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", default="localhost:9092", help="Kafka bootstrap HOST:PORT")
    parser.add_argument("--topic", default="features", help="topic to produce to")
    parser.add_argument("--partitions", type=int, default=4, help="partitions if the topic is created")
    parser.add_argument("--models", type=int, default=3, help="number of models (model-00, model-01, ...)")
    parser.add_argument("--events-per-model", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=5, help="numeric features f00.. per event "
                                                                 "(plus amount and country)")
    parser.add_argument("--drift", type=parse_drift, action="append", default=[], metavar="MODEL:FEATURE:AT:KIND",
                        help="inject a drift (repeatable)")
    parser.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the events to this JSONL file (.gz: gzip) instead of Kafka")
    args = parser.parse_args(argv)
    if args.models < 1 or args.events_per_model < 1 or args.features < 0:
        parser.error("--models and --events-per-model must be >= 1, --features >= 0")
    stream = build_stream(args)
    started = time.monotonic()
    if args.out:
        count = write_log(stream, args.out)
        where = args.out
    else:
        count = asyncio.run(produce(stream, args.broker, args.topic, args.partitions, args.rate))
        where = f"{args.topic} on {args.broker}"
    elapsed = time.monotonic() - started
    print(f"{count:,} events of {args.models} models -> {where} in {elapsed:.1f} s "
          f"({count / max(elapsed, 1e-9):,.0f}/s); drifts: "
          + (", ".join(f"{d.model}:{d.feature}@{d.at} {d.kind}" for d in args.drift) or "none"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
