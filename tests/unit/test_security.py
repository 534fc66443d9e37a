"""The ``[security]`` table reaches every Kafka client streamdrift creates, and bad security
settings stop start-up with a ``ConfigError`` that names them.

Each client is built by the very code path that builds it in production (``Worker.run``, the
partition-assignment restore, ``tail``, ``replay --to-kafka``, the faust app) and stopped where
it would first open a connection; the test then reads the security settings off the real
aiokafka client object. No broker is needed: nothing here talks to Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from pathlib import Path

import aiokafka
import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streamdrift import replay as replay_module
from streamdrift import tail as tail_module
from streamdrift.config import Config, ConfigError, from_mapping, load
from streamdrift.stream import app as app_module
from streamdrift.stream import batch_consumer, checkpoint, topics
from streamdrift.stream import worker as worker_module
from streamdrift.stream.batch_consumer import TopicPartition
from streamdrift.stream.worker import Worker

SASL_PLAIN = {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN",
              "sasl_plain_username": "streamdrift", "sasl_plain_password": "s3cret"}
# The README's example, with a CA file that exists on this machine.
SASL_SSL = {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": "streamdrift", "sasl_plain_password": "s3cret",
            "ssl_cafile": ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt"}


class Connecting(Exception):
    """Raised where a client would open its first connection."""


#: Every client built in a test, closed at its end (they never connected).
_built: list = []


async def close_built() -> None:
    while _built:
        client = _built.pop()
        await (client.stop() if hasattr(client, "stop") else client.close())


def stop_at_start(monkeypatch, owner, name: str, made: list) -> None:
    """Replace ``owner.name`` (an aiokafka client class) by a subclass that records every real
    client built and stops at ``start()``, before any connection."""
    real = getattr(owner, name)

    class Recorded(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)
            _built.append(self)

        async def start(self):
            raise Connecting(name)

    monkeypatch.setattr(owner, name, Recorded)


async def nothing_to_create(*args, **kwargs) -> list[str]:
    return []


def config_with(security: dict) -> Config:
    return from_mapping({"broker": "kafka.invalid:9093", "security": security})


def assert_carries(client, security: dict, what: str) -> None:
    # Consumers and admin clients keep their network client as ``_client``, producers as ``client``.
    inner = client._client if hasattr(client, "_client") else client.client
    assert inner._security_protocol == security["security_protocol"], what
    assert inner._sasl_mechanism == security["sasl_mechanism"], what
    assert inner._sasl_plain_username == security["sasl_plain_username"], what
    assert inner._sasl_plain_password == security["sasl_plain_password"], what
    if "SSL" in security["security_protocol"]:
        assert isinstance(inner._ssl_context, ssl.SSLContext), f"{what}: no SSL context"


def worker_clients(monkeypatch, config: Config) -> dict:
    """Every Kafka client a worker creates, built the way the worker builds it."""

    async def scenario() -> dict:
        try:
            return await build()
        finally:
            await close_built()

    async def build() -> dict:
        clients: dict = {}
        # 1. Worker.run creates its topics first, with an admin client.
        admins: list = []
        stop_at_start(monkeypatch, topics, "AIOKafkaAdminClient", admins)
        worker = Worker(config)
        with pytest.raises(Connecting):
            await worker.run()
        clients["admin (stream/topics.py)"] = admins[0]
        # 2. Then the publisher and the batch consumer.
        monkeypatch.setattr(worker_module, "ensure_topics", nothing_to_create)
        stop_at_start(monkeypatch, batch_consumer, "AIOKafkaProducer", [])
        stop_at_start(monkeypatch, batch_consumer, "AIOKafkaConsumer", [])
        worker = Worker(config)
        with pytest.raises(Connecting):
            await worker.run()
        clients["publisher (Worker.run)"] = worker.publisher._producer
        clients["batch consumer (Worker.run)"] = worker.consumer._consumer
        # 3. On partition assignment, the state reader.
        readers: list = []
        stop_at_start(monkeypatch, checkpoint, "AIOKafkaConsumer", readers)
        with pytest.raises(Connecting):
            await worker._assigned(frozenset({TopicPartition(config.topics.features, 0)}))
        clients["state reader (stream/checkpoint.py)"] = readers[0]
        return clients

    return asyncio.run(scenario())


@pytest.mark.parametrize("security", [SASL_PLAIN, SASL_SSL], ids=["SASL_PLAINTEXT", "SASL_SSL-readme-example"])
def test_every_worker_client_carries_the_security_settings(monkeypatch, security):
    clients = worker_clients(monkeypatch, config_with(security))
    assert len(clients) == 4
    for what, client in clients.items():
        assert_carries(client, security, what)


@pytest.mark.parametrize("security", [SASL_PLAIN, SASL_SSL], ids=["SASL_PLAINTEXT", "SASL_SSL-readme-example"])
def test_the_faust_app_gets_the_same_credentials(security):
    config = config_with(security)
    app = app_module.build_app(config, Worker(config))
    options = credentials_to_aiokafka_auth(app.conf.broker_credentials)
    assert options["security_protocol"] == security["security_protocol"]
    assert options["sasl_mechanism"] == security["sasl_mechanism"]
    assert options["sasl_plain_username"] == security["sasl_plain_username"]
    assert options["sasl_plain_password"] == security["sasl_plain_password"]
    if security["security_protocol"] == "SASL_SSL":
        assert isinstance(options["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize("security", [SASL_PLAIN, SASL_SSL], ids=["SASL_PLAINTEXT", "SASL_SSL-readme-example"])
def test_tail_consumer_carries_the_security_settings(monkeypatch, security):
    made: list = []
    stop_at_start(monkeypatch, tail_module, "AIOKafkaConsumer", made)

    async def scenario():
        try:
            with pytest.raises(Connecting):
                await tail_module._tail(config_with(security), False, True, 1, 0.1, None)
        finally:
            await close_built()

    asyncio.run(scenario())
    assert_carries(made[0], security, "streamdrift tail consumer")


@pytest.mark.parametrize("security", [SASL_PLAIN, SASL_SSL], ids=["SASL_PLAINTEXT", "SASL_SSL-readme-example"])
def test_replay_to_kafka_clients_carry_the_security_settings(monkeypatch, security, tmp_path: Path):
    log = tmp_path / "events.jsonl"
    log.write_text('{"model": "m", "features": {"x": 1.0}}\n')
    args = argparse.Namespace(log=[str(log)], topic=None, rate=None, speed=None, skip=0, quiet=True,
                              model_column="model", model_name=None, ts_column="ts", features=None)
    config = config_with(security)
    admins: list = []
    producers: list = []

    async def scenario():
        try:
            stop_at_start(monkeypatch, topics, "AIOKafkaAdminClient", admins)
            with pytest.raises(Connecting):
                await replay_module.to_kafka(args, config)
            monkeypatch.setattr(topics, "ensure_topics", nothing_to_create)
            stop_at_start(monkeypatch, aiokafka, "AIOKafkaProducer", producers)
            with pytest.raises(Connecting):
                await replay_module.to_kafka(args, config)
        finally:
            await close_built()

    asyncio.run(scenario())
    assert_carries(admins[0], security, "replay --to-kafka admin client")
    assert_carries(producers[0], security, "replay --to-kafka producer")


def test_security_table_from_a_toml_file(tmp_path: Path):
    path = tmp_path / "streamdrift.toml"
    path.write_text('[security]\nsecurity_protocol = "SASL_PLAINTEXT"\nsasl_mechanism = "PLAIN"\n'
                    'sasl_plain_username = "streamdrift"\nsasl_plain_password = "s3cret"\n')
    assert load(path, environ={}).security_options() == SASL_PLAIN


def test_unknown_security_key_is_a_config_error_naming_it():
    with pytest.raises(ConfigError, match="sasl_pasword"):
        from_mapping({"security": {**SASL_PLAIN, "sasl_pasword": "typo"}})
    with pytest.raises(ConfigError, match=r"\[security\]"):
        from_mapping({"security": {"username": "streamdrift"}})


@pytest.mark.parametrize("protocol", ["SASL_PLAIN", "sasl_plaintext", "TLS", ""])
def test_bad_security_protocol_is_a_config_error_naming_it(protocol):
    with pytest.raises(ConfigError, match="security_protocol") as raised:
        from_mapping({"security": {**SASL_PLAIN, "security_protocol": protocol}})
    assert repr(protocol) in str(raised.value)


def test_bad_security_settings_in_a_file_stop_start_up_with_a_config_error(tmp_path: Path):
    path = tmp_path / "streamdrift.toml"
    path.write_text('[security]\nsecurity_protocol = "SASL_PLAIN"\n')
    with pytest.raises(ConfigError, match="SASL_PLAIN"):
        load(path, environ={})


def test_unknown_sasl_mechanism_is_a_config_error_naming_it():
    """The config module promises a ConfigError for a wrong value at start-up; without it the
    worker dies later inside aiokafka with a bare AssertionError."""
    with pytest.raises(ConfigError, match="sasl_mechanism"):
        from_mapping({"security": {**SASL_PLAIN, "sasl_mechanism": "PLAN"}})
