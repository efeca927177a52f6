"""One source for every setting: override files, the names registries, and the schema agree."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rarft.config import deep_merge, load_config, merge_files, prune_deleted, validate_config

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
    snakemake_merged = deep_merge(merge_files([ROOT / "params.yaml"]),
                                  {"data": {"source": "real", "real": {"benchmarks": {"brumo25": None}}}})
    snakemake_merged["data"]["real"]["benchmarks"]["brumo25"] = None  # Snakemake keeps the null
    pruned = prune_deleted(snakemake_merged, [ROOT / "params.yaml", override])
    assert pruned is snakemake_merged
    # the Snakefile prunes, then validates with the schema's defaults filled in (set_default=True), as load_config
    assert validate_config(pruned) == load_config([ROOT / "params.yaml", override])


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

    from rarft import candidates, prompts, train, world

    assert candidates.normalise_text is prompts.normalise_text and train.normalise_text is prompts.normalise_text
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


CONFIG_ROOTS = {"config", "cfg"}  # the names a stage gives the loaded configuration


def _config_path(node, aliases: dict) -> tuple | None:
    """The config path an expression reads (("rl", "trainer") for `config["rl"]["trainer"]`), or None when it
    is not rooted in the config. A non-literal key ends the path with None (`config["data"][source]`)."""
    import ast

    if isinstance(node, ast.Name):
        return () if node.id in CONFIG_ROOTS else aliases.get(node.id)
    if isinstance(node, ast.Attribute) and node.attr == "config" and isinstance(node.value, ast.Name) \
            and node.value.id == "self":
        return ()
    if isinstance(node, ast.Subscript):
        base = _config_path(node.value, aliases)
        if base is None or (base and base[-1] is None):
            return base
        key = node.slice.value if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str) else None
        return (*base, key)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
        return _config_path(node.func.value, aliases)
    if isinstance(node, ast.BoolOp):
        return _config_path(node.values[0], aliases)
    return None


def _config_reads(path: Path):
    """(line, kind, config path) for every config read of a module: kind is 'index' for config[...] chains,
    'get' for `.get(...)` on the config or a section of it (a silent default), 'get-helper' for a `get(config,
    "a.b", ...)`-style helper, and 'or-literal' for `section["k"] or <literal>` (a default for null)."""
    import ast

    def body(scope):  # the nodes of a scope, not those of the functions defined inside it
        todo = list(ast.iter_child_nodes(scope))
        while todo:
            n = todo.pop()
            yield n
            if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                todo.extend(ast.iter_child_nodes(n))

    out = []

    def visit(scope, inherited: dict):
        aliases = dict(inherited)
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for a in scope.args.args + scope.args.kwonlyargs:
                aliases.pop(a.arg, None)
        nodes = list(body(scope))
        for _ in range(3):  # names bound to a section (rl = config["rl"]), to a fixpoint
            for n in nodes:
                if isinstance(n, ast.Assign) and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name):
                    p = _config_path(n.value, aliases)
                    if p is not None:
                        aliases[n.targets[0].id] = p
        for n in nodes:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(n, aliases)
            elif isinstance(n, ast.Call):
                f = n.func
                if isinstance(f, ast.Name) and f.id in ("get", "_get") and len(n.args) >= 2:
                    out.append((n.lineno, "get-helper", None))
                elif isinstance(f, ast.Attribute) and f.attr == "get" and _config_path(f.value, aliases) is not None:
                    out.append((n.lineno, "get", _config_path(f.value, aliases)))
            elif isinstance(n, ast.Subscript) and not isinstance(getattr(n, "ctx", None), ast.Store):
                p = _config_path(n, aliases)
                if p:
                    out.append((n.lineno, "index", p))
            elif isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or) and _config_path(n.values[0], aliases):
                if any(isinstance(v, (ast.Constant, ast.Dict, ast.List)) for v in n.values[1:]):
                    out.append((n.lineno, "or-literal", _config_path(n.values[0], aliases)))

    visit(ast.parse(path.read_text()), {})
    return sorted(set(out), key=lambda r: (r[0], r[1], str(r[2])))


# rarft.config is the configuration's own module: rule_resource's per-rule row falling back to the default row
# is the documented meaning of `resources`, not a default of a key.
SCANNED = sorted(p for p in (ROOT / "src" / "rarft").glob("*.py") if p.name != "config.py")


def test_no_fallback_defaults_shadow_params_yaml():
    """No module gives a config key a default of its own: no `get(config, "a.b", default)`, no `.get(...)` on
    the config or a section of it (`rl = config["rl"]; rl.get("k", 1)`), no `config["k"] or <literal>`.
    A default lives in params.yaml or as the schema's `default:` (filled in by load_config), where DVC and the
    reader see it; a misspelt key in code is a KeyError, in a config file a ConfigError at load time."""
    found = [f"{p.name}:{line} {kind} {'.'.join(map(str, path or ()))}"
             for p in SCANNED for line, kind, path in _config_reads(p) if kind != "index"]
    assert found == []


# Parameters named like a params.yaml key that may keep a literal default, grouped by reason: (module, function,
# parameter).
PARAMETER_DEFAULTS_ALLOWED = {
    "a device helper; its stage passes resolve_device(config)": [
        ("diversity.py", "embedding_dissimilarity", "device"), ("diversity.py", "diversity_per_problem", "device"),
        ("retrieval.py", "load_encoder", "device"), ("retrieval.py", "load_colbert", "device"),
        ("retrieval.py", "exact_topk", "device")],
    "a memory chunk, not generation.batch_size": [
        ("retrieval.py", "encode_corpus", "batch_size"), ("policy.py", "probe_accuracy", "batch_size")],
    "a fixed seed of a helper (evaluate passes the config's to bootstrap_ci)": [
        ("stats.py", "bootstrap_ci", "seed")],
    "only the name matches a key": [
        ("analysis.py", "readme", "source"),               # a text line, not data.real.*.source
        ("data.py", "normalise_rows", "schema"),           # 'auto' detects; stages pass data.real.*.schema
        ("retrieval.py", "word_ngrams", "n"),              # word trigrams, not a benchmark's n
        ("train_retriever.py", "training_pairs", "path")],  # the file name in error messages
}
ALLOWED = {entry for entries in PARAMETER_DEFAULTS_ALLOWED.values() for entry in entries}


def test_no_parameter_default_shadows_a_params_yaml_key():
    """A function parameter named like a params.yaml key (temperature, max_new_tokens, enable_thinking, ...) takes
    its value from the caller, who reads the config: no literal default that could disagree with params.yaml
    (as decontaminate's min_overlap 0.0 against params.yaml's 0.9 did). rehearsal.py builds its own fixed tiny
    models and data, not from params.yaml. Allowed exceptions are listed with their reason."""
    import ast

    full = load_config(ROOT / "params.yaml")
    keys: set[str] = set()

    def walk(node):
        for k, v in node.items():
            keys.add(k)
            if isinstance(v, dict):
                walk(v)

    walk(full)
    found = []
    for p in SCANNED:
        if p.name == "rehearsal.py":
            continue
        for fn in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = fn.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults):], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                if (arg.arg in keys and isinstance(default, ast.Constant) and default.value is not None
                        and (p.name, fn.name, arg.arg) not in ALLOWED):
                    found.append(f"{p.name}:{fn.lineno} {fn.name}({arg.arg}={default.value!r})")
    assert found == []


def test_every_key_the_code_reads_is_required_or_has_a_schema_default():
    """Each config path indexed anywhere in src/rarft (resolved through section aliases) exists after
    load_config(params.yaml) and cannot go missing: deleting it fails validation naming it, or the schema's
    `default:` fills it back in. Keys below a mapping of names (resources rows, benchmarks) end the path."""
    import copy

    from rarft.config import ConfigError, validate_config

    full = load_config(ROOT / "params.yaml")
    paths = set()
    for p in SCANNED:
        for _line, kind, path in _config_reads(p):
            if kind == "index":
                path = tuple(k for k in path[:path.index(None)]) if None in path else path
                if path:
                    paths.add(path)
    assert len(paths) > 100  # the scan sees the stages' reads
    problems = []
    for path in sorted(paths):
        node = full
        for i, key in enumerate(path):
            if not isinstance(node, dict):  # a value read further (a list, a row of a named mapping)
                break
            if key not in node:
                problems.append(f"{'.'.join(path)}: not in the loaded params.yaml")
                break
            node = node[key]
        else:
            cfg = copy.deepcopy(full)
            parent = cfg
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
            try:
                refilled = validate_config(cfg, "x")
            except ConfigError as e:
                if path[-1] not in str(e):
                    problems.append(f"{'.'.join(path)}: error does not name it: {e}")
            else:
                back = refilled
                for key in path[:-1]:
                    back = back[key]
                if path[-1] not in back:
                    problems.append(f"{'.'.join(path)}: may be missing (neither required nor defaulted)")
    assert problems == []


def test_schema_defaults_are_filled_at_load_time_and_a_misspelt_key_fails(tmp_path):
    cfg = load_config(ROOT / "params.yaml")
    assert cfg["rl"]["launcher"] == {"accelerate_config": "config/accelerate/ddp.yaml", "num_processes": None,
                                     "num_machines": 1}
    assert cfg["traces"]["keep_original_if_invalid"] is False and cfg["traces"]["teacher"]["serve"] is False
    bad = tmp_path / "typo.yaml"
    bad.write_text("labels:\n  candidates_per_querry: 3\n")
    import pytest

    from rarft.config import ConfigError

    with pytest.raises(ConfigError, match="candidates_per_querry"):
        load_config([ROOT / "params.yaml", bad])


def test_keys_the_stages_read_are_required():
    """With the fallbacks gone, a missing key must be a ConfigError naming it, not a KeyError in a stage."""
    import copy

    from rarft.config import ConfigError, validate_config

    full = load_config(ROOT / "params.yaml")
    for path in (("data", "decontamination", "min_overlap"), ("data", "decontamination", "train_corpus_min_overlap"),
                 ("data", "real"), ("rl", "retriever"), ("policy", "base"), ("evaluation", "max_new_tokens"),
                 ("labels", "candidates_per_query"), ("generation", "batch_size"), ("labels", "gain", "max_new_tokens"),
                 ("rl", "trainer", "max_steps"), ("rl", "sft", "trainer", "num_train_epochs"),
                 ("retriever", "train", "trainer"), ("resources", "default", "runtime")):
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


def test_a_misspelt_trainer_key_fails_rarft_plan_and_the_dag_build_at_once(tmp_path):
    """`rl: {trainer: {max_stepz: 5}}` goes verbatim to TRL: it fails when the config is loaded (rarft plan,
    every stage) and when Snakemake builds the DAG, naming the file, the key and the field meant; not when
    train-policy starts after the labels and the retriever (review 2, issue 19)."""
    import time

    typo = tmp_path / "typo.yaml"
    # with an RLOO arm, the key must be a field of both trainers' configs
    typo.write_text("rl:\n  arms: [grpo, rarft, rloo]\n  trainer:\n    max_stepz: 5\n")
    start = time.time()
    plan = subprocess.run([sys.executable, "-m", "rarft", "plan", "--config", str(ROOT / "params.yaml"), str(typo)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert plan.returncode == 2 and "Traceback" not in plan.stderr, plan.stderr
    assert f"{typo}: rl.trainer.max_stepz: not a field of GRPOConfig, RLOOConfig (did you mean max_steps?)" \
        in plan.stderr
    assert time.time() - start < 60  # trl (and torch) are not imported: seconds, not the 8-14 s of an import
    dag = subprocess.run([SNAKEMAKE, "-n", "--configfile", str(typo)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert dag.returncode != 0 and "rl.trainer.max_stepz" in dag.stdout + dag.stderr


def test_trainer_blocks_are_checked_against_their_own_class(tmp_path):
    """rl.sft.trainer against SFTConfig, the retriever's against SentenceTransformerTrainingArguments, and
    rl.trainer against RLOOConfig only when an RLOO arm runs (a GRPO-only field is fine without one)."""
    import pytest

    from rarft.config import ConfigError

    def load(text: str):
        over = tmp_path / "over.yaml"
        over.write_text(text)
        return load_config([ROOT / "params.yaml", over])

    with pytest.raises(ConfigError, match=r"rl\.sft\.trainer\.num_train_epoch: not a field of SFTConfig "
                                          r"\(did you mean num_train_epochs\?\)"):
        load("rl:\n  sft:\n    trainer: {num_train_epoch: 1}\n")
    with pytest.raises(ConfigError, match=r"retriever\.train\.trainer\.batch_sampler_: not a field of "
                                          r"SentenceTransformerTrainingArguments"):
        load("retriever:\n  train:\n    trainer: {batch_sampler_: no_duplicates}\n")
    grpo_only = "vllm_importance_sampling_correction"  # a GRPOConfig field RLOOConfig does not have
    with pytest.raises(ConfigError, match=rf"rl\.trainer\.{grpo_only}: not a field of RLOOConfig"):
        load(f"rl:\n  arms: [grpo, rloo]\n  curve_arms: [grpo]\n  trainer: {{{grpo_only}: true}}\n")
    assert load(f"rl:\n  arms: [grpo, rarft]\n  curve_arms: [grpo]\n  trainer: {{{grpo_only}: true}}\n")


def test_trainer_fields_read_from_the_sources_are_the_dataclass_fields():
    """rarft.config reads the fields with `ast` (no torch import at load time); they must be exactly what
    dataclasses.fields gives for the installed TRL and sentence-transformers."""
    import dataclasses
    import importlib

    from rarft.config import TRAINER_CLASSES, dataclass_fields

    for target in {t for classes in TRAINER_CLASSES.values() for t in classes.values()}:
        module, _, name = target.partition(":")
        cls = getattr(importlib.import_module(module), name)
        assert dataclass_fields(target) == {f.name for f in dataclasses.fields(cls) if f.init}, target


def test_grpo_only_trainer_fields_reach_the_grpo_family_and_not_the_rloo_arms(tmp_path):
    """Review D6: the paper configs switch TRL's vLLM importance-sampling correction off in rl.grpo_trainer, which
    GRPO and DAPO arms get over rl.trainer and RLOO arms (RLOOConfig has no such field) do not; a typo there fails."""
    from trl import GRPOConfig

    from rarft.arms import trainer_block
    from rarft.config import ConfigError, load_config

    for paper in ("config/qwen3-1.7b.yaml", "config/qwen3-4b.yaml"):
        cfg = load_config([str(ROOT / "params.yaml"), str(ROOT / paper)])
        for kind in ("grpo", "dapo"):
            assert trainer_block(kind, cfg)["vllm_importance_sampling_correction"] is False, (paper, kind)
        assert "vllm_importance_sampling_correction" not in trainer_block("rloo", cfg)
        assert trainer_block("rloo", cfg) == cfg["rl"]["trainer"]
    GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, vllm_importance_sampling_correction=False)
    typo = tmp_path / "typo.yaml"
    typo.write_text("rl: {grpo_trainer: {vllm_importance_sampling_corection: false}}\n")
    with pytest.raises(ConfigError, match="rl.grpo_trainer.vllm_importance_sampling_corection"):
        load_config([str(ROOT / "params.yaml"), str(typo)])
