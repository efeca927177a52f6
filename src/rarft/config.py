"""Load params.yaml (plus override files) and validate it against the workflow's JSON schema.

Snakemake validates the same dict with the same schema (Snakefile), so a config that one tool
accepts the other accepts too. Errors name the file and the dotted key, never a jsonschema trace.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and key."""


def deep_merge(base: dict, override: dict) -> dict:
    """Merge like Snakemake merges --configfile files: nested dicts merge, everything else replaces.

    One addition: `key: null` in place of a mapping deletes the entry (`brumo25: null` drops a
    benchmark). A null in place of a scalar stays null, which means "the library's default" there
    (`attn_implementation: null` in config/qwen3-*.yaml). The Snakefile applies the same rule to
    Snakemake's own merge with prune_deleted().
    """
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None and isinstance(out.get(key), dict):
            del out[key]
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def merge_files(paths: list[str | Path]) -> dict:
    """The given YAML files deep-merged in order (not validated)."""
    config: dict[str, Any] = {}
    for p in paths:
        config = deep_merge(config, _read_yaml(Path(p)))
    return config


def prune_deleted(config: dict, paths: list[str | Path]) -> dict:
    """Delete, in place, the entries of Snakemake's merged `config` that deep_merge deletes.

    Snakemake merges --configfile files itself and keeps `key: null` as a value; the Snakefile calls
    this before validating, so that both tools see the same configuration. Returns `config`.
    """
    def prune(node: dict, kept: dict) -> None:
        for key in [k for k in node if k not in kept]:
            del node[key]
        for key, value in node.items():
            if isinstance(value, dict) and isinstance(kept[key], dict):
                prune(value, kept[key])

    prune(config, merge_files(paths))
    return config


def _read_yaml(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _default_filling(validator_class):
    """The validator class that also fills each missing key from its schema `default:` (the recipe of the
    jsonschema FAQ, which Snakemake's `validate(config, schema, set_default=True)` uses too). A default
    fills only where the mapping around the key exists, as in Snakemake."""
    from jsonschema import validators

    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(key, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict, source: str = "config", fill_defaults: bool = True) -> dict:
    """Raise ConfigError listing every schema violation as 'source: key.path: message'.

    With ``fill_defaults`` (load_config always), optional keys missing from ``config`` get their schema
    `default:`, in place: params.yaml and the schema are the only places a default lives."""
    import jsonschema

    schema = _schema()
    cls = _default_filling(jsonschema.Draft7Validator) if fill_defaults else jsonschema.Draft7Validator
    validator = cls(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    if errors:
        lines = []
        for err in errors:
            key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
            msg = err.message
            if err.validator == "additionalProperties":
                msg = f"unknown key(s): {msg.split('(')[-1].rstrip(')')}"
            lines.append(f"  {key}: {msg}")
        raise ConfigError(f"{source}: invalid configuration\n" + "\n".join(lines))
    return config


def load_config(paths: list[str | Path] | str | Path = "params.yaml") -> dict:
    """Read and deep-merge the given YAML files in order, then validate the result."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return validate_config(merge_files(paths), source=" + ".join(str(p) for p in paths))


def rule_resource(config: dict, rule: str, key: str) -> Any:
    """`resources.<rule>.<key>`, else `resources.default.<key>`: the one place a rule's row falls back
    to the default row (params.yaml documents the rule; workflow/rules/common.smk applies the same)."""
    table = config["resources"]
    row = table.get(rule) or {}
    return row[key] if key in row else table["default"][key]


def trainer_config(cls, block: dict, section: str, decided: dict):
    """``cls(**block, **decided)``: a trainer config from the config's `<section>` block, verbatim (open-r1's
    recipe style), plus what rarft decides (``decided``); bf16 is switched off on the CPU. A key of the block
    the class does not know, or a value it refuses, is a ConfigError naming the section."""
    clash = sorted(set(block) & set(decided))
    if clash:
        raise ConfigError(f"{section}: {', '.join(clash)} set by rarft itself; remove from the config")
    kwargs = {**block, **decided}
    if decided.get("use_cpu"):
        kwargs["bf16"] = False
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{section} -> {cls.__name__}: {e}") from None


def add_config_argument(parser) -> None:
    """The `--config` option every stage CLI shares."""
    parser.add_argument("--config", nargs="+", default=["params.yaml"], metavar="FILE",
                        help="params.yaml, then override files (later ones win); default: params.yaml")


def cli_validate(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="rarft validate-config", description="Validate the merged config.")
    add_config_argument(p)
    args = p.parse_args(argv)
    load_config(args.config)
    print(f"ok: {' + '.join(args.config)} is a valid rarft configuration")
    return 0
