"""streamdrift's settings: one frozen object from defaults, a TOML file and the environment.

Precedence: command-line flags > environment (``STREAMDRIFT_*``) > the TOML file > defaults.
Every field names its environment variable (where it has one) and its TOML key; a wrong value
stops start-up with a ``ConfigError`` that names the setting and what is allowed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import orjson

from .detectors import MonitorSettings, MultivariateSettings


def available_cpus() -> int:
    """CPU cores this process may run on.

    >>> available_cpus() >= 1
    True
    """
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class ConfigError(ValueError):
    """A setting that cannot be used; the message names it and says what is allowed."""


@dataclass(frozen=True)
class Topics:
    """Kafka topic names (TOML table ``[topics]``)."""

    #: Input: feature events, keyed by model.
    features: str = "features"
    #: Input: late labels {"model", "id", "label"}, joined to predictions by id.
    labels: str = "labels"
    #: Output: drift alerts.
    alerts: str = "drift-alerts"
    #: Output: retrain requests.
    retrain_requests: str = "retrain-requests"
    #: Output: rejected events, with reason and source in headers.
    dead_letter: str = "features-dlq"
    #: Output: rollback and promote decisions of new model versions.
    model_decisions: str = "model-decisions"
    #: Compacted topic of detector state checkpoints.
    state: str = "streamdrift-state"
    #: Partitions of topics created on start (existing topics are left as they are).
    partitions: int = 4


@dataclass(frozen=True)
class RetrainPolicy:
    """When drift alerts become a retrain request (TOML ``[retrain]``, per model ``[retrain.models."glob"]``)."""

    #: Distinct drifted features within ``window_seconds`` that make an incident.
    min_features: int = 2
    #: Event-time span within which drifted features are counted together.
    window_seconds: float = 3600.0
    #: After a request, no other request for the same model (and segment) for this long.
    cooldown_seconds: float = 6 * 3600.0
    #: Only alerts of this severity or above count ("warning" or "critical").
    min_severity: str = "warning"
    #: A concept-drift alert alone triggers a request.
    on_concept: bool = True


@dataclass(frozen=True)
class VersionPolicy:
    """When a new model version is rolled back or promoted (TOML ``[versions]``, per model ``[versions.models."glob"]``)."""

    #: Tolerated degradation of the mean loss (0/1 error: a rate, 0.02 = 2 points; absolute
    #: error: the label's unit): rollback when the new version is worse by more, promote when by less.
    margin: float = 0.0
    #: Chance of a wrong decision (a rollback of a version no worse than ``margin``, or a
    #: promotion of one worse), for all labels at once.
    error_rate: float = 0.01
    #: Labelled predictions of each version (shadow: labels met by both) before any decision.
    min_labels: int = 200
    #: The version a new one is compared with; empty: the version seen before it (per model).
    baseline: str = ""
    #: ``auto`` (shadow when the first label of the new version meets the baseline's prediction of
    #: the same id too, else split), ``shadow`` or ``split``.
    traffic: str = "auto"
    #: What a new version's numeric features are compared with when ``--reference`` has no rows of
    #: that version: ``baseline``, the baseline version's reference (its live data, from the new
    #: version's first event on: training-serving skew shows before any label), or ``warm_up``,
    #: the new version's own first values.
    reference: str = "baseline"


@dataclass(frozen=True)
class Limits:
    """Hard limits that protect the worker from hostile or broken producers (TOML ``[limits]``)."""

    #: Larger messages go to the dead-letter topic. At most ``max_partition_fetch_bytes``, so
    #: that a message of this size always fits in one fetch.
    max_message_bytes: int = 1_000_000
    #: Most features one event may carry, and most distinct features one model may have.
    max_features: int = 1000
    #: Longest categorical value, feature, model or segment name (characters).
    max_string_length: int = 1024
    #: Most (model, segment) pairs per worker; events of new ones beyond go to the dead-letter topic.
    max_models: int = 10_000
    #: Predictions (events with an ``id`` and a ``prediction`` but no ``label``) kept per model
    #: waiting for a late label; the oldest beyond this are dropped and counted as expired.
    max_pending_predictions: int = 10_000
    #: A prediction waits this long (event time) for its label, then counts as expired.
    label_ttl_seconds: float = 24 * 3600.0
    #: Monitors of a (model, segment) not seen for this long (event time) are dropped; 0 = never.
    #: The clock is the latest event time at least 3 models have reached (a stray far-future
    #: timestamp cannot evict everyone).
    idle_seconds: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class FeatureRule:
    """Detector settings for features whose name matches ``pattern`` (a glob, e.g. ``"amount*"``)."""

    pattern: str
    settings: dict


@dataclass(frozen=True)
class Config:
    """Everything ``streamdrift run`` needs. See the README's configuration reference."""

    #: Kafka bootstrap servers. Env ``STREAMDRIFT_BROKER``, flag ``--broker``.
    broker: str = "localhost:9092"
    #: Consumer group of the workers. Env ``STREAMDRIFT_GROUP_ID``.
    group_id: str = "streamdrift"
    #: Port of the web server (``/health``, ``/metrics``). Env ``STREAMDRIFT_WEB_PORT``.
    web_port: int = 6066
    #: ``text`` or ``json`` log lines. Env ``STREAMDRIFT_LOG_FORMAT``.
    log_format: str = "text"
    #: Most events decoded and monitored per batch in the hot path.
    batch_size: int = 20000
    #: How long a batch may wait to fill up, in milliseconds (bounds the latency it adds). A busy
    #: worker's batches fill from its backlog anyway; near full load a longer wait only adds latency.
    linger_ms: int = 10
    #: Most bytes one fetch takes from one partition (Kafka's ``max.partition.fetch.bytes``). The
    #: consumer fetches a partition again only once it has handed out what it holds, so this caps
    #: a batch however long the backlog: Kafka's default of 1 MiB is ~2,000 events of 500 bytes a
    #: partition, and small batches cost more per event. Each partition may hold this much in memory
    #: (a worker process with P partitions of ``features`` and ``labels``: up to P times this).
    max_partition_fetch_bytes: int = 8 << 20
    #: Seconds between state checkpoints (and offset commits). Env ``STREAMDRIFT_CHECKPOINT_SECONDS``.
    checkpoint_seconds: float = 5.0
    #: Worker processes of one ``streamdrift run``, each a consumer-group member with its share of
    #: the partitions (one core each); 0 = one per CPU core this process may use, 1 = the worker
    #: runs in the ``streamdrift run`` process itself. Env ``STREAMDRIFT_PROCESSES``.
    processes: int = 0
    topics: Topics = field(default_factory=Topics)
    #: Detector settings for every feature (TOML ``[detectors]``).
    detectors: MonitorSettings = field(default_factory=MonitorSettings)
    #: Overrides by feature-name pattern (TOML ``[[features]]``), first match wins.
    features: tuple[FeatureRule, ...] = ()
    retrain: RetrainPolicy = field(default_factory=RetrainPolicy)
    #: Per-model retrain policies by model-name glob (TOML ``[retrain.models."glob"]``).
    retrain_models: tuple[tuple[str, RetrainPolicy], ...] = ()
    limits: Limits = field(default_factory=Limits)
    #: Models (name globs) whose features are also watched together (TOML ``[multivariate]``
    #: ``models``); none by default.
    multivariate_models: tuple[str, ...] = ()
    #: How they are watched (the rest of ``[multivariate]``).
    multivariate: MultivariateSettings = field(default_factory=MultivariateSettings)
    #: When a new model version is rolled back or promoted (TOML ``[versions]``).
    versions: VersionPolicy = field(default_factory=VersionPolicy)
    #: Per-model version policies by model-name glob (TOML ``[versions.models."glob"]``).
    versions_models: tuple[tuple[str, VersionPolicy], ...] = ()
    #: Passed to every Kafka client (TOML ``[security]``): security_protocol, sasl_mechanism,
    #: sasl_plain_username, sasl_plain_password, ssl_cafile, ssl_certfile, ssl_keyfile.
    security: tuple[tuple[str, str], ...] = ()

    @property
    def version(self) -> str:
        """A short hash of the settings that change detections: goes into every alert."""
        relevant = {"detectors": self.detectors.to_dict(),
                    "features": [(r.pattern, r.settings) for r in self.features],
                    "retrain": [self.retrain.__dict__] + [(g, p.__dict__) for g, p in self.retrain_models]}
        if self.multivariate_models:  # absent when off: the versions of earlier configs stay
            relevant["multivariate"] = {"models": list(self.multivariate_models), **self.multivariate.to_dict()}
        if self.versions != VersionPolicy() or self.versions_models:  # absent at the defaults, as above
            relevant["versions"] = [self.versions.__dict__] + [(g, p.__dict__) for g, p in self.versions_models]
        return hashlib.sha256(orjson.dumps(relevant, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]

    def settings_for(self, feature: str) -> MonitorSettings:
        """The detector settings of one feature (first matching ``[[features]]`` rule wins)."""
        for rule in self.features:
            if fnmatch.fnmatchcase(feature, rule.pattern):
                return replace(self.detectors, **rule.settings)
        return self.detectors

    def has_rule(self, name: str) -> bool:
        """Whether a ``[[features]]`` rule matches ``name``."""
        return any(fnmatch.fnmatchcase(name, rule.pattern) for rule in self.features)

    def watches_jointly(self, model: str) -> bool:
        """Whether the features of ``model`` are watched together (``[multivariate] models``)."""
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in self.multivariate_models)

    def policy_for(self, model: str) -> RetrainPolicy:
        for pattern, policy in self.retrain_models:
            if fnmatch.fnmatchcase(model, pattern):
                return policy
        return self.retrain

    def version_policy_for(self, model: str) -> VersionPolicy:
        """The version policy of one model (first matching ``[versions.models."glob"]`` wins)."""
        for pattern, policy in self.versions_models:
            if fnmatch.fnmatchcase(model, pattern):
                return policy
        return self.versions

    def security_options(self) -> dict:
        """The ``[security]`` table as aiokafka client options (certificate files become an SSL
        context, which is what aiokafka takes)."""
        options = dict(self.security)
        files = {k: options.pop(k) for k in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")
                 if k in options}
        if files or options.get("security_protocol") in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=files.get("ssl_cafile"),
                                                        certfile=files.get("ssl_certfile"),
                                                        keyfile=files.get("ssl_keyfile"),
                                                        password=files.get("ssl_password"))
        return options


SECURITY_KEYS = ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password",
                 "ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI", "OAUTHBEARER")
ENVIRONMENT = {
    "broker": "STREAMDRIFT_BROKER",
    "group_id": "STREAMDRIFT_GROUP_ID",
    "web_port": "STREAMDRIFT_WEB_PORT",
    "log_format": "STREAMDRIFT_LOG_FORMAT",
    "checkpoint_seconds": "STREAMDRIFT_CHECKPOINT_SECONDS",
    "processes": "STREAMDRIFT_PROCESSES",
}


#: Integer settings where 0 has a meaning (see their comments).
_ZERO_MEANS_AUTO = frozenset({"processes"})


def _build(cls, data: dict, where: str):
    """Build a settings dataclass from a TOML table, naming the table in every error."""
    if not isinstance(data, dict):
        raise ConfigError(f"[{where}] must be a table")
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"[{where}] has unknown key(s) {unknown}; allowed: {sorted(names)}")
    typed = {}
    for key, value in data.items():
        default = getattr(cls(), key) if cls is not FeatureRule else None
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}.{key} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key in _ZERO_MEANS_AUTO else 1):
                raise ConfigError(f"{where}.{key} must be a positive integer{' or 0' if key in _ZERO_MEANS_AUTO else ''}, "
                                  f"got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"{where}.{key} must be a number >= 0, got {value!r}")
            value = float(value)
        elif isinstance(default, str):
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}.{key} must be a non-empty string, got {value!r}")
        typed[key] = value
    return cls(**typed)


def _policy(data: dict, where: str) -> RetrainPolicy:
    policy = _build(RetrainPolicy, data, where)
    if policy.min_severity not in ("warning", "critical"):
        raise ConfigError(f"{where}.min_severity must be \"warning\" or \"critical\", got {policy.min_severity!r}")
    return policy


def _version_policy(data: dict, where: str) -> VersionPolicy:
    """``[versions]`` (or one model's table): the ``VersionPolicy``, each value checked.

    >>> _version_policy({"error_rate": 0.6}, "versions")
    Traceback (most recent call last):
    ...
    streamdrift.config.ConfigError: versions.error_rate must be > 0 and < 0.5, got 0.6
    """
    # A baseline of "" (the default: the version seen before) is allowed back in a model's table.
    baseline = data.get("baseline")
    policy = _build(VersionPolicy, {k: v for k, v in data.items() if not (k == "baseline" and v == "")}, where)
    if baseline == "":
        policy = replace(policy, baseline="")
    if not 0 < policy.error_rate < 0.5:
        raise ConfigError(f"{where}.error_rate must be > 0 and < 0.5, got {policy.error_rate:g}")
    if policy.min_labels < 2:
        raise ConfigError(f"{where}.min_labels must be an integer >= 2, got {policy.min_labels}")
    if policy.reference not in ("baseline", "warm_up"):
        raise ConfigError(f"{where}.reference must be \"baseline\" or \"warm_up\", got {policy.reference!r}")
    if policy.traffic not in ("auto", "shadow", "split"):
        raise ConfigError(f"{where}.traffic must be \"auto\", \"shadow\" or \"split\", got {policy.traffic!r}")
    return policy


def _monitor_settings(data: dict, where: str, base: MonitorSettings | None = None) -> MonitorSettings:
    try:
        if base is None:
            return MonitorSettings.from_dict(data)
        MonitorSettings.from_dict({**base.to_dict(), **data})
        return base
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{where}] {exc}") from None


#: The scalar ``Config`` keys a TOML file sets outside any table.
TOP_LEVEL_KEYS = ("broker", "group_id", "web_port", "log_format", "batch_size", "linger_ms",
                  "max_partition_fetch_bytes", "checkpoint_seconds", "processes")


def from_mapping(data: dict) -> Config:
    """Build a ``Config`` from the parsed TOML document (no environment applied).

    >>> from_mapping({"detectors": {"window": 5}})
    Traceback (most recent call last):
    ...
    streamdrift.config.ConfigError: [detectors] window must be an integer >= 20 and <= 1e+06, got 5
    """
    data = dict(data)
    top = {}
    for key in TOP_LEVEL_KEYS:
        if key in data:
            top[key] = data.pop(key)
    kwargs = {}
    if top:
        base = _build(Config, top, "top level")  # only the top-level keys: the tables keep defaults
        kwargs.update({k: getattr(base, k) for k in top})
    if "topics" in data:
        kwargs["topics"] = _build(Topics, data.pop("topics"), "topics")
    if "detectors" in data:
        kwargs["detectors"] = _monitor_settings(data.pop("detectors"), "detectors")
    detectors = kwargs.get("detectors", MonitorSettings())
    if "features" in data:
        rules = []
        entries = data.pop("features")
        if not isinstance(entries, list):
            raise ConfigError("[[features]] must be an array of tables, each with a `pattern`")
        for i, entry in enumerate(entries):
            entry = dict(entry)
            pattern = entry.pop("pattern", None)
            if not isinstance(pattern, str) or not pattern:
                raise ConfigError(f"features[{i}].pattern must be a glob string such as \"amount*\"")
            _monitor_settings(entry, f"features[{i}] ({pattern})", base=detectors)
            if "detectors" in entry:
                entry["detectors"] = tuple(entry["detectors"])
            rules.append(FeatureRule(pattern, entry))
        kwargs["features"] = tuple(rules)
    if "retrain" in data:
        retrain = dict(data.pop("retrain"))
        models = retrain.pop("models", {})
        kwargs["retrain"] = _policy(retrain, "retrain")
        kwargs["retrain_models"] = tuple(
            (pattern, _policy({**kwargs["retrain"].__dict__, **table}, f"retrain.models.{pattern}"))
            for pattern, table in models.items())
    if "limits" in data:
        kwargs["limits"] = _build(Limits, data.pop("limits"), "limits")
    if "versions" in data:
        versions = data.pop("versions")
        if not isinstance(versions, dict):
            raise ConfigError("[versions] must be a table")
        versions = dict(versions)
        models = versions.pop("models", {})
        if not isinstance(models, dict) or not all(isinstance(t, dict) for t in models.values()):
            raise ConfigError("versions.models must be tables by model-name glob, e.g. [versions.models.\"fraud-*\"]")
        kwargs["versions"] = _version_policy(versions, "versions")
        kwargs["versions_models"] = tuple(
            (pattern, _version_policy({**kwargs["versions"].__dict__, **table}, f"versions.models.{pattern}"))
            for pattern, table in models.items())
    if "multivariate" in data:
        kwargs["multivariate_models"], kwargs["multivariate"] = _multivariate(data.pop("multivariate"))
    if "security" in data:
        security = data.pop("security")
        unknown = sorted(set(security) - set(SECURITY_KEYS))
        if unknown:
            raise ConfigError(f"[security] has unknown key(s) {unknown}; allowed: {list(SECURITY_KEYS)}")
        protocol = security.get("security_protocol", "PLAINTEXT")
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(f"security.security_protocol must be one of {list(SECURITY_PROTOCOLS)}, got {protocol!r}")
        mechanism = security.get("sasl_mechanism")
        if mechanism is not None and mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"security.sasl_mechanism must be one of {list(SASL_MECHANISMS)}, got {mechanism!r}")
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if key in security and not Path(security[key]).is_file():
                raise ConfigError(f"security.{key}: no such file {security[key]!r}")
        kwargs["security"] = tuple(sorted((k, str(v)) for k, v in security.items()))
    if data:
        raise ConfigError(f"unknown setting(s) {sorted(data)}; allowed top-level keys: {', '.join(TOP_LEVEL_KEYS)} "
                          "and tables topics, detectors, features, retrain, limits, multivariate, versions, security")
    config = Config(**kwargs)
    _check(config)
    return config


def _multivariate(data) -> tuple[tuple[str, ...], MultivariateSettings]:
    """``[multivariate]``: ``models`` (a list of model-name globs) and the detector's settings."""
    if not isinstance(data, dict):
        raise ConfigError("[multivariate] must be a table")
    data = dict(data)
    models = data.pop("models", [])
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise ConfigError(f"multivariate.models must be a list of model-name globs such as [\"fraud-*\"], "
                          f"got {models!r}")
    try:
        settings = MultivariateSettings.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[multivariate] {exc}") from None
    return tuple(models), settings


def _check(config: Config) -> None:
    if config.log_format not in ("text", "json"):
        raise ConfigError(f"log_format must be \"text\" or \"json\", got {config.log_format!r}")
    if not 0 <= config.processes <= 64:
        raise ConfigError(f"processes must be 0 (one per CPU core) to 64, got {config.processes}")
    if not 0 < config.web_port < 65536:
        raise ConfigError(f"web_port must be a TCP port 1-65535, got {config.web_port}")
    if not config.limits.max_message_bytes <= config.max_partition_fetch_bytes <= 1 << 30:
        raise ConfigError(f"max_partition_fetch_bytes must be at least limits.max_message_bytes "
                          f"({config.limits.max_message_bytes}: raise the two together) and at most 1 GiB "
                          f"({1 << 30}), got {config.max_partition_fetch_bytes}")
    for part in config.broker.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"broker must be HOST:PORT[,HOST:PORT...], got {config.broker!r}")


def load(path: str | os.PathLike | None = None, environ: dict | None = None, **flags) -> Config:
    """Defaults, then the TOML file, then the environment, then explicit flags (``None`` = unset)."""
    environ = os.environ if environ is None else environ
    path = path or environ.get("STREAMDRIFT_CONFIG")
    data: dict = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist (--config / STREAMDRIFT_CONFIG)") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    for key, env in ENVIRONMENT.items():
        if env in environ:
            raw = environ[env]
            default = getattr(Config(), key)
            try:
                data[key] = type(default)(raw)
            except ValueError:
                raise ConfigError(f"{env}={raw!r} is not a valid {type(default).__name__} for {key}") from None
    for key, value in flags.items():
        if value is not None:
            data[key] = value
    return from_mapping(data)
