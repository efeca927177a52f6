"""One source for every setting: override files, the names registries, and the schema agree."""

import shutil
import subprocess
import sys
from pathlib import Path

from rarft.config import deep_merge, load_config, prune_deleted

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
NO_BRUMO = "data:\n  source: real\n  real:\n    benchmarks:\n      brumo25: null\n"


def test_null_in_an_override_deletes_a_mapping_entry(tmp_path):
    override = tmp_path / "no-brumo.yaml"
    override.write_text(NO_BRUMO)
    cfg = load_config([ROOT / "params.yaml", override])
    assert set(cfg["data"]["real"]["benchmarks"]) == {"aime24", "aime25", "hmmt25"}


def test_null_in_place_of_a_scalar_stays_null():
    """`attn_implementation: null` means transformers' default; it must not vanish from the config."""
    cfg = load_config([ROOT / "params.yaml", ROOT / "config" / "qwen3-1.7b.yaml"])
    assert "attn_implementation" in cfg["generation"] and cfg["generation"]["attn_implementation"] is None
    assert deep_merge({"a": {"b": 1}, "c": 2}, {"a": None, "c": None}) == {"c": None}


def test_prune_deleted_makes_snakemakes_merge_equal_ours(tmp_path):
    override = tmp_path / "no-brumo.yaml"
    override.write_text(NO_BRUMO)
    snakemake_merged = deep_merge(load_config(ROOT / "params.yaml"),
                                  {"data": {"source": "real", "real": {"benchmarks": {"brumo25": None}}}})
    snakemake_merged["data"]["real"]["benchmarks"]["brumo25"] = None  # Snakemake keeps the null
    pruned = prune_deleted(snakemake_merged, [ROOT / "params.yaml", override])
    assert pruned is snakemake_merged
    assert pruned == load_config([ROOT / "params.yaml", override])


def test_snakemake_drops_a_benchmark_deleted_with_null(tmp_path):
    override = tmp_path / "no-brumo.yaml"
    override.write_text(NO_BRUMO)
    out = subprocess.run([SNAKEMAKE, "-n", "--forceall", "--configfile", str(override)], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = out.stdout.replace(str(override), "")  # the command line echoes the override's path
    assert "bench/aime24.jsonl" in jobs
    assert "brumo25" not in jobs


def test_one_text_normaliser():
    """prompts.normalise_text is the only 'same problem' normaliser; world.py's copy must agree until it imports it."""
    import ast

    from rarft import labels, prompts, train, world

    assert labels.normalise_text is prompts.normalise_text and train.normalise_text is prompts.normalise_text
    for text in ["  Two\tapples\n\nAND  three ", "x^2 + 1 = 0", "", "A\u00a0b\u2003C", "İstanbul  ROAD"]:
        assert prompts.normalise_text(text) == world.normalise_text(text), text
    copies = [f"{path.name}:{node.name}" for path in (ROOT / "src" / "rarft").glob("*.py")
              for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef)
              and node.name in {"_norm", "_normalise", "_normalize", "normalize_text", "norm_text"}]
    assert copies == []


def _schema_enum(*path: str) -> set:
    import yaml

    node = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    for key in path:
        node = node["properties"][key]
    return set((node.get("items") or node)["enum"]) - {None}


def test_schema_enums_are_the_python_registries():
    """Python is the one list of names: rarft.arms (arms, retrievers) and rarft.labels (labelers)."""
    from rarft.arms import PLAIN_ARMS, RA_ARMS, trainer_of
    from rarft.labels import LABELERS
    from rarft.retrieval import RETRIEVERS

    arms = set(PLAIN_ARMS) | set(RA_ARMS)
    assert _schema_enum("rl", "arms") == arms
    assert _schema_enum("rl", "curve_arms") == {a for a in arms if trainer_of(a) != "sft"}  # RL arms record curves
    assert _schema_enum("rl", "retriever") == set(RETRIEVERS) == _schema_enum("retriever", "compare")
    assert _schema_enum("labels", "train_on") == set(LABELERS) == _schema_enum("labels", "run")
    from rarft.world import CONTROLS, STRATEGY_BY_NAME

    assert _schema_enum("data", "world", "corpus_only") == set(STRATEGY_BY_NAME)
    assert _schema_enum("data", "world", "control") == set(CONTROLS)


def test_wildcard_constraints_are_built_from_the_registries():
    import re

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    from rarft.arms import PLAIN_ARMS, RA_ARMS
    from rarft.labels import LABELERS
    from rarft.retrieval import RETRIEVERS

    names = {"arm": set(PLAIN_ARMS) | set(RA_ARMS), "retriever": set(RETRIEVERS), "labeler": set(LABELERS)}
    names["policy"] = names["arm"] | {"base"}
    # no name list typed into a rule file: every list-valued constraint is an expression
    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        blocks = re.findall(r"^( +)wildcard_constraints:\n((?:\1 +\S.*\n)+)", smk.read_text(), re.M)
        assert blocks or "wildcard_constraints" not in smk.read_text(), smk.name
        typed = [line.strip() for _, body in blocks for line in body.splitlines()
                 if re.fullmatch(r"\s*(arm|retriever|labeler|policy)=r?[\"'][^\"']*[\"'],?\s*", line)]
        assert not typed, f"{smk.name}: wildcard_constraints typed by hand: {typed}"
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), config_settings=ConfigSettings(),
                                snakefile=ROOT / "Snakefile")._workflow
        constraints = {r.name: r.wildcard_constraints for r in workflow.rules}
    assert constraints["label_relevance"]["labeler"] == "|".join(LABELERS)
    assert constraints["retrieve"]["retriever"] == "|".join(RETRIEVERS)
    for rule, wildcard in (("train_policy", "arm"), ("evaluate", "policy")):
        assert set(constraints[rule][wildcard].split("|")) <= names[wildcard], rule


def test_no_fallback_defaults_shadow_params_yaml():
    """Modules cleaned of `get(config, "a.b", default)` / `config.get("k", default)` keep none: a default
    belongs in params.yaml, where DVC and the reader see it."""
    import ast

    cleaned = ["data.py", "decontam.py", "figures.py", "reward.py", "stats.py", "tables.py"]
    found = []
    for name in cleaned:
        for node in ast.walk(ast.parse((ROOT / "src" / "rarft" / name).read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            if isinstance(f, ast.Name) and f.id == "get" and len(node.args) >= 2:  # rarft.config.get
                found.append(f"{name}:{node.lineno}")
            if isinstance(f, ast.Attribute) and f.attr == "get":
                inner = f.value  # config.get(...) or config.get(...).get(...)
                while isinstance(inner, ast.Call) and isinstance(inner.func, ast.Attribute):
                    inner = inner.func.value
                if isinstance(inner, ast.Name) and inner.id in {"config", "cfg"}:
                    found.append(f"{name}:{node.lineno}")
    assert found == []


def test_keys_the_stages_read_are_required():
    """With the fallbacks gone, a missing key must be a ConfigError naming it, not a KeyError in a stage."""
    import copy

    from rarft.config import ConfigError, validate_config

    full = load_config(ROOT / "params.yaml")
    for path in (("data", "decontamination", "min_overlap"), ("data", "decontamination", "train_corpus_min_overlap"),
                 ("data", "real"), ("rl", "retriever"), ("policy", "base")):
        cfg = copy.deepcopy(full)
        node = cfg
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        try:
            validate_config(cfg, "x")
        except ConfigError as e:
            assert path[-1] in str(e), (path, str(e))
        else:
            raise AssertionError(f"{'.'.join(path)} missing, yet the config validates")
