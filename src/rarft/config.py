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
    """Read and deep-merge the given YAML files in order, then validate the result (the schema, then the
    trainer blocks' keys against their library classes: check_trainer_fields)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    config = validate_config(merge_files(paths), source=" + ".join(str(p) for p in paths))
    check_trainer_fields(config, paths)
    return config


# The pass-through trainer blocks -> the config classes their keys go to verbatim ("module:Class"), per trainer
# kind (rarft.arms.trainer_of) where it depends on the arm: RLOO arms take rl.trainer into RLOOConfig, the
# GRPO and DAPO arms into GRPOConfig.
TRAINER_CLASSES = {
    "rl.trainer": {"grpo": "trl.trainer.grpo_config:GRPOConfig", "dapo": "trl.trainer.grpo_config:GRPOConfig",
                   "rloo": "trl.trainer.rloo_config:RLOOConfig"},
    "rl.grpo_trainer": {"grpo": "trl.trainer.grpo_config:GRPOConfig", "dapo": "trl.trainer.grpo_config:GRPOConfig"},
    "rl.sft.trainer": {"sft": "trl.trainer.sft_config:SFTConfig"},
    "retriever.train.trainer": {None: "sentence_transformers.sentence_transformer.training_args:"
                                      "SentenceTransformerTrainingArguments"},
}


def _module_file(module: str) -> Path | None:
    """The source file of ``module``, found without importing it (or its package: trl and sentence-transformers
    import torch, 7-14 s here, and the check must answer in the first second)."""
    import importlib.util

    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is None or not spec.submodule_search_locations:
        return None
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=None)
def dataclass_fields(target: str) -> frozenset[str] | None:
    """Field names of the dataclass ``"module:Class"``, its bases' included, read from the sources (`ast`) rather
    than by importing the library; None when the library is not installed (the trainer checks at start then)."""
    import ast

    module, _, name = target.partition(":")
    path = _module_file(module)
    if path is None:
        return None
    tree = ast.parse(path.read_text(encoding="utf-8"))
    cls = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)
    if cls is None:
        return None
    fields = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    imported = {}  # local name -> "module:Name"
    package = module.rsplit(".", 1)[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            source = node.module or ""
            if node.level:
                source = ".".join(parts[: len(parts) - node.level + 1] + ([source] if source else []))
            for alias in node.names:
                imported[alias.asname or alias.name] = f"{source}:{alias.name}"
    for base in cls.bases:
        if isinstance(base, ast.Name):
            ref = imported.get(base.id, f"{module}:{base.id}")
            fields |= dataclass_fields(ref) or _reexported_fields(ref) or set()
    return frozenset(fields)


def _reexported_fields(ref: str) -> frozenset[str] | None:
    """Fields of a class imported from a package that re-exports it (``from transformers import
    TrainingArguments``): look in the package's modules named like it (transformers/training_args.py)."""
    module, _, name = ref.partition(":")
    path = _module_file(module)
    if path is None or path.name != "__init__.py":
        return None
    import re

    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    for candidate in sorted(path.parent.glob("*.py")):
        if candidate.stem != "__init__" and (candidate.stem == snake or
                                             f"class {name}" in candidate.read_text(encoding="utf-8")):
            found = dataclass_fields(f"{module}.{candidate.stem}:{name}")
            if found:
                return found
    return None


def _file_setting(paths: list[str | Path], dotted: str) -> str:
    """The last of ``paths`` that sets ``dotted`` (later files win), for an error message."""
    for p in reversed([str(p) for p in paths]):
        node: Any = _read_yaml(Path(p)) if Path(p).exists() else {}
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return p
    return " + ".join(str(p) for p in paths)


def check_trainer_fields(config: dict, paths: list[str | Path]) -> None:
    """Raise ConfigError for a key of a pass-through trainer block (TRAINER_CLASSES) that its class has no field
    for, naming the file that sets it, the key and the closest field: `rl: {trainer: {max_stepz: 5}}` fails here,
    at load time (rarft plan, the Snakefile), not when train-policy starts hours later."""
    import difflib

    from rarft.arms import trainer_of

    kinds = set()
    for arm in config.get("rl", {}).get("arms") or []:
        try:
            kinds.add(trainer_of(arm))
        except ValueError:
            pass  # an unknown arm is reported by the stage that reads it
    problems: dict[str, list[str]] = {}  # "file: key" -> the classes without that field (and a hint)
    for block, classes in TRAINER_CLASSES.items():
        node: Any = config
        for part in block.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        targets = sorted({target for kind, target in classes.items() if kind is None or kind in kinds})
        for target in targets:
            fields = dataclass_fields(target)
            if fields is None:
                continue
            for key in node:
                if key not in fields:
                    close = difflib.get_close_matches(key, sorted(fields), n=1)
                    where = f"{_file_setting(paths, f'{block}.{key}')}: {block}.{key}"
                    problems.setdefault(where, []).append(target.split(":")[1])
                    if close:
                        problems[where].append(f"did you mean {close[0]}?")
    if problems:
        lines = [f"  {where}: not a field of {', '.join(c for c in dict.fromkeys(what) if ' ' not in c)}"
                 + "".join(f" ({h})" for h in dict.fromkeys(what) if " " in h) for where, what in problems.items()]
        raise ConfigError("unknown trainer setting(s) (these blocks go verbatim to the library's config class):\n"
                          + "\n".join(lines))


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
