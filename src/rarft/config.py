"""Load params.yaml (plus override files) and validate it against the workflow's JSON schema.

Snakemake validates the same dict with the same schema (Snakefile), so a config that one tool
accepts the other accepts too. Errors name the file and the dotted key, never a jsonschema trace.
"""

from __future__ import annotations

import copy
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


def validate_config(config: dict, source: str = "config") -> dict:
    """Raise ConfigError listing every schema violation as 'source: key.path: message'."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
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


def get(config: dict, dotted: str, default: Any = None) -> Any:
    """config['a']['b'] as get(config, 'a.b'); default where any part is missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


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
