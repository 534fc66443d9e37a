"""Print the configuration reference (Markdown) generated from the settings dataclasses.

The README's reference is this script's output, pasted between the markers
``<!-- config-reference:start -->`` and ``<!-- config-reference:end -->``; a test compares the
two, so the README cannot drift from the code. Keys, defaults and environment variables come
from ``dataclasses.fields`` and ``streamdrift.config.ENVIRONMENT``; descriptions are the ``#:``
comments directly above each field (the Sphinx autodoc convention), tables are introduced by the
``#:`` comment of their ``Config`` field or else by their class docstring.

    .venv/bin/python scripts/config_reference.py            # print the reference
    .venv/bin/python scripts/config_reference.py --check    # also fail on undocumented keys
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import textwrap

from streamdrift import config as config_module
from streamdrift.config import ENVIRONMENT, SECURITY_KEYS, SECURITY_PROTOCOLS, Config, FeatureRule

_FIELD_LINE = re.compile(r"^(\w+)\s*:")


def field_comments(cls: type) -> dict[str, str]:
    """``#:`` comments of a dataclass's fields, from its source, keyed by field name.

    >>> from streamdrift.config import RetrainPolicy
    >>> field_comments(RetrainPolicy)["on_concept"]
    'A concept-drift alert alone triggers a request.'
    """
    source = textwrap.dedent(inspect.getsource(cls))
    names = {f.name for f in dataclasses.fields(cls)}
    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines()[1:]:  # skip the "class ..." line
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD_LINE.match(stripped)
        # Fields sit one level in (4 spaces); deeper lines with a colon are method bodies.
        if match and match.group(1) in names and re.match(r" {4}\w", line) and pending:
            comments[match.group(1)] = " ".join(pending)
        pending = []
    return comments


def markdown(text: str) -> str:
    """reST inline literals (``x``) as Markdown code, and pipes escaped for table cells."""
    return re.sub(r"``(.+?)``", r"`\1`", text).replace("|", "\\|")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def _doc(cls: type) -> str:
    return markdown(inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0].replace("\n", " "))


def _rows_table(rows: list[tuple[str, str, str, str]]) -> list[str]:
    lines = ["| key | default | env var | description |", "| --- | --- | --- | --- |"]
    for key, default, env, description in rows:
        key = key if key.startswith("*") else f"`{key}`"  # "*any [detectors] key*" is prose
        lines.append(f"| {key} | {default} | {env} | {description} |")
    return lines


def _dataclass_rows(cls: type) -> list[tuple[str, str, str, str]]:
    comments = field_comments(cls)
    instance = cls()
    return [(f.name, f"`{toml_value(getattr(instance, f.name))}`", "", markdown(comments.get(f.name, "")))
            for f in dataclasses.fields(cls)]


def sections() -> list[tuple[str, str, list[tuple[str, str, str, str]]]]:
    """(heading, intro, rows) of every TOML table, in the order a config file is usually written."""
    config_comments = field_comments(Config)
    # The scalar keys that from_mapping accepts outside any table.
    top_level = config_module.TOP_LEVEL_KEYS
    defaults = Config()
    out = []
    rows = []
    for name in top_level:
        env = ENVIRONMENT.get(name)
        rows.append((name, f"`{toml_value(getattr(defaults, name))}`", f"`{env}`" if env else "",
                     markdown(config_comments.get(name, ""))))
    out.append(("Top level", "Keys before the first table.", rows))
    for f in dataclasses.fields(Config):
        if f.name in top_level:
            continue
        default = getattr(defaults, f.name)
        if f.name == "multivariate_models":
            continue  # the `models` key of [multivariate], below
        if f.name == "multivariate":
            models = ("models", "`[]`", "", markdown(config_comments["multivariate_models"]))
            out.append(("[multivariate]", _doc(type(default)), [models] + _dataclass_rows(type(default))))
        elif dataclasses.is_dataclass(default):
            intro = markdown(config_comments[f.name]) if f.name in config_comments else _doc(type(default))
            out.append((f"[{f.name}]", intro, _dataclass_rows(type(default))))
        elif f.name == "features":
            rule_rows = [("pattern", "(required)", "", _doc(FeatureRule)),
                         ("*any `[detectors]` key*", "the `[detectors]` value", "",
                          "Overrides that setting for the matching features.")]
            out.append(("[[features]]", markdown(config_comments.get(f.name, "")), rule_rows))
        elif f.name == "retrain_models":
            policy_rows = [("*any `[retrain]` key*", "the `[retrain]` value", "",
                            "Overrides that setting for the matching models.")]
            out.append(('[retrain.models."glob"]', markdown(config_comments.get(f.name, "")), policy_rows))
        elif f.name == "versions_models":
            policy_rows = [("*any `[versions]` key*", "the `[versions]` value", "",
                            "Overrides that setting for the matching models.")]
            out.append(('[versions.models."glob"]', markdown(config_comments.get(f.name, "")), policy_rows))
        elif f.name == "security":
            security_rows = []
            for key in SECURITY_KEYS:
                if key == "security_protocol":
                    security_rows.append((key, '`"PLAINTEXT"`', "", "One of " + ", ".join(
                        f"`{p}`" for p in SECURITY_PROTOCOLS) + "."))
                else:
                    security_rows.append((key, "", "", f"The Kafka client option `{key}`."))
            out.append(("[security]", markdown(config_comments.get(f.name, "")), security_rows))
        else:
            raise SystemExit(f"config_reference.py does not know how to document Config.{f.name}; teach it")
    return out


def render() -> str:
    lines = ["Generated by `scripts/config_reference.py` from the settings dataclasses; do not edit by hand.",
             "",
             "Precedence: command-line flags > environment variables > the TOML file (`--config` or "
             "`STREAMDRIFT_CONFIG`) > defaults."]
    for heading, intro, rows in sections():
        lines += ["", f"### {heading}", ""]
        if intro:
            lines += [intro, ""]
        lines += _rows_table(rows)
    return "\n".join(lines) + "\n"


def undocumented() -> list[str]:
    return [f"{heading} {key}" for heading, _, rows in sections() for key, _, _, description in rows
            if not description]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a key has no #: comment")
    args = parser.parse_args(argv)
    sys.stdout.write(render())
    missing = undocumented()
    if missing:
        print(f"config_reference.py: {len(missing)} key(s) without a #: comment: {', '.join(missing)}",
              file=sys.stderr)
        if args.check:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
