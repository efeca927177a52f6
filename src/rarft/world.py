"""The embedded analogy world: a positive control in which retrieving the right analogue helps by design.

The world is built so that the paper's premise holds and a pipeline that works must find it; the
pipeline itself is never told (the hidden `strategy` key is used only by the `oracle` labeler and
the analysis). What is planted, and where:

- 3 coarse problem types with 3 latent solution strategies each (9 in all). Every strategy has a
  made-up rule name ("the Lu-mo rule"), like a named theorem. Every worked solution (trace) names its
  rule in Step 1 and shows the computation in Step 2, so ANY trace of a strategy teaches its name.
- Most problems (``named_rule_share``) state only the rule name and the type ("Mia applies the Lu-mo
  rule of number theory to 13 jars and 5 jars."), the others say in words what to do. A policy that has
  never met a name cannot tell which strategy of the type it means; a reference trace that names the
  same rule shows it.
- Names that cannot be memorised: every strategy has several names (`NAME_POOL`). Training queries
  use ``training_names`` of them; ``corpus_only_names`` more appear only in the corpus and in half of a
  benchmark's named items, so only a retrieved analogue carries them at evaluation. The relevant
  analogue of a named question is a trace of its strategy under ITS name (`analogous`, the oracle).
  With many names, each seen a few times, RL with the trace gains most by following a matching
  reference, which carries over to unseen names; with one fixed name per strategy it memorised the
  names instead (issue #18). Strategies in ``corpus_only`` (none by default) never reach a training
  query at all; RL pushed those below what the warm-up gave.
- The story dominates surface similarity: a problem is a story sentence (story-specific people, items
  and places, shared ACROSS strategies) followed by a short strategy sentence, and the named-rule
  sentence is the same for all strategies but for the name. The corpus tells each strategy in two of
  the five stories and the queries and benchmarks in the other three (`corpus_stories`), as a textbook's
  worked example of a technique rarely shares the story of a new problem. An off-the-shelf encoder
  ranks same-story problems first, and those need another strategy; the shared rule name is the only
  thing that points to the right analogue.
- The base policy warms up on generated problems with RANDOM rule names (`generate_warmup`): it
  learns the strategies and how to carry one over from a reference, never the world's own names. Its
  same-name references are right only ``same_name_reference_right`` of the time (like pre-training
  text, not always to be trusted), so the base follows a matching reference only part of the time and
  RL, where a retrieved same-name reference is always right, has that trust to teach. A share of its
  named questions (``other_name_reference``) gets a reference under ANOTHER name that shows any strategy
  of the type, so that only a matching name says which strategy applies. The tiny base did not learn
  that check (a same-strategy trace under another name helps it as much as an analogue; docs/world.md,
  experiments F and K), so it follows any reference about as often as its references were right overall.
- ``control: negative`` builds the same world with the transferable signal removed: the corpus
  traces keep their answer but show neither the rule nor the computation, and every named corpus
  problem names a random rule of its type, so no reference can teach a strategy or what a name
  means. There, retrieval must not help (the negative control's target).
- The strategies of a type share one operand range (and arity), so without a reference the base can
  only guess among the three strategies of a named question's type: nothing but a matching name says
  which one applies, and a trace of another strategy reveals nothing the question does not say.
- Numbers stay small (operands at most 15; at most 16 operand pairs per strategy and difficulty), so
  the tiny policy can memorise the arithmetic in its warm-up and its errors are mostly about strategy.
  Its tokenizer makes each name syllable one token (`NAME_PIECES`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from rarft.prompts import normalise_text

PROBLEM_TYPES = ("arithmetic", "counting", "number_theory")
DIFFICULTIES = ("easy", "hard")
EASY_SHARE = 0.5  # share of easy problems in the mixed splits (train, corpus, warm-up)
CONTROLS = ("positive", "negative")

# One sentence for every strategy's named-rule phrasing, by arity: it states the problem type and the
# rule's name, and within a type only the name tells the strategies apart. Stating the type keeps a trace
# of another strategy from helping by revealing it (docs/world.md, sections I and K).
NAMED_RULE_TEMPLATE = {
    1: "{P} applies the {R} rule of {T} to {a} {x}. What is the result?",
    2: "{P} applies the {R} rule of {T} to {a} {x} and {b} {x}. What is the result?",
}
TYPE_WORDS = {"arithmetic": "arithmetic", "counting": "counting", "number_theory": "number theory"}


@dataclass(frozen=True)
class Operands:
    """Ranges (inclusive) of the operands by difficulty; ``b`` is None for one-operand strategies."""

    a: dict[str, tuple[int, int]]
    b: dict[str, tuple[int, int]] | None = None
    a_gt_b: bool = False        # a > b (differences, divisions)
    not_multiple: bool = False  # a % b != 0 (so leftovers and full groups differ and are non-zero)

    def draw(self, rng: random.Random, difficulty: str) -> tuple[int, int]:
        while True:
            a = rng.randint(*self.a[difficulty])
            b = rng.randint(*self.b[difficulty]) if self.b else 0
            if self.a_gt_b and a <= b:
                continue
            if self.not_multiple and a % b == 0:
                continue
            return a, b


@dataclass(frozen=True)
class Strategy:
    name: str
    problem_type: str
    rule: str                  # the world's made-up name for it
    templates: tuple[str, ...]  # plain phrasings: {P} person, {x} plural item, {a} {b} numbers
    describe: str              # Step 1 of the trace: the transferable idea, in words
    compute: Callable[[int, int], int]
    show: str                  # Step 2: the computation, with {a} {b} {ans}
    operands: Operands

    @property
    def arity(self) -> int:
        return 1 if self.operands.b is None else 2


# The strategies of a type share one operand range (and so one arity): a named question states its type,
# and its numbers must not say which strategy of the type it means. When each strategy had its own ranges,
# the base guessed the strategy behind an unknown name from the numbers (0.56 of named training queries once
# the type was stated, against a third by chance), so a matching reference added little and the gain labels
# could not single out analogues (issue #18, docs/world.md section K).
# Ranges stay small (at most 16 (a, b) pairs per difficulty): the tiny policy memorises every strategy's
# table of facts in the warm-up, so its errors are about strategy. With tables of up to 81 facts (addition
# at 1-9 + 1-9) arithmetic was its main error. Sharing a pair between addition and subtraction once mixed
# their results up (hard pairs 10-13 and 2-5: 50% and 33% right, a shorter warm-up); with the ranges below the
# base writing the question's strategy gets the answer right as often as it writes it (section K).
_ARITH = Operands(a={"easy": (4, 7), "hard": (8, 11)}, b={"easy": (2, 4), "hard": (3, 5)}, a_gt_b=True)
_COUNT = Operands(a={"easy": (3, 6), "hard": (6, 9)})
_GROUPS = Operands(a={"easy": (5, 12), "hard": (10, 15)}, b={"easy": (2, 4), "hard": (2, 4)},
                   a_gt_b=True, not_multiple=True)

STRATEGIES: tuple[Strategy, ...] = (
    Strategy(name="total", problem_type="arithmetic", rule="Ka-lo",
             templates=("{P} has {a} {x} and then gets {b} more {x}. How many {x} does {P} have now?",
                        "One crate holds {a} {x} and a second crate holds {b} {x}. How many {x} are there in all?"),
             describe="add the amounts.", compute=lambda a, b: a + b, show="{a} + {b} = {ans}",
             operands=_ARITH),
    Strategy(name="difference", problem_type="arithmetic", rule="Mi-re",
             templates=("{P} has {a} {x} and gives away {b} of the {x}. How many {x} does {P} have now?",
                        "One crate holds {a} {x} and a second crate holds {b} {x}. "
                        "How many more {x} are in the first?"),
             describe="the larger minus the smaller.", compute=lambda a, b: a - b, show="{a} - {b} = {ans}",
             operands=_ARITH),
    Strategy(name="product", problem_type="arithmetic", rule="Tu-sa",
             templates=("{P} fills {a} crates with {b} {x} in each crate. How many {x} does {P} have now?",
                        "There are {a} rows of {x} with {b} {x} in every row. How many {x} are there in all?"),
             describe="groups times group size.", compute=lambda a, b: a * b, show="{a} * {b} = {ans}",
             operands=_ARITH),
    Strategy(name="pairs", problem_type="counting", rule="Ve-do",
             templates=("{P} has {a} {x} and compares every two of the {x} once. How many comparisons are made?",
                        "Each of {a} {x} is paired once with each other one. How many pairs are there?"),
             describe="n things give n * (n - 1) / 2 pairs.", compute=lambda a, b: a * (a - 1) // 2,
             show="{a} * ({a} - 1) / 2 = {ans}", operands=_COUNT),
    Strategy(name="ordered", problem_type="counting", rule="No-ki",
             templates=("{P} has {a} {x} and picks a first {x} and then a second one. In how many ways?",
                        "From {a} {x}, one is chosen as leader and a different one as helper. How many choices?"),
             describe="n for the first pick, n - 1 for the second.", compute=lambda a, b: a * (a - 1),
             show="{a} * ({a} - 1) = {ans}", operands=_COUNT),
    Strategy(name="choices", problem_type="counting", rule="Ra-pe",
             templates=("{P} has {a} {x} and picks one in the morning and one, maybe the same, at night. "
                        "In how many ways?",
                        "From {a} {x}, one is chosen for a first prize and one, perhaps the same, for a second. "
                        "How many choices?"),
             describe="n options for each of the two picks.", compute=lambda a, b: a * a, show="{a} * {a} = {ans}",
             operands=_COUNT),
    Strategy(name="remainder", problem_type="number_theory", rule="Lu-mo",
             templates=("{P} packs {a} {x} into bags of {b}. How many {x} are left over?",
                        "{a} {x} are shared equally among {b} friends, as many as possible each. How many remain?"),
             describe="the remainder of the division.", compute=lambda a, b: a % b, show="{a} mod {b} = {ans}",
             operands=_GROUPS),
    Strategy(name="quotient", problem_type="number_theory", rule="Si-ta",
             templates=("{P} packs {a} {x} into bags of {b}. How many full bags are there?",
                        "{a} {x} are shared equally among {b} friends, as many as possible each. "
                        "How many does each get?"),
             describe="the whole-number quotient.", compute=lambda a, b: a // b, show="{a} // {b} = {ans}",
             operands=_GROUPS),
    # Not the gcd: on the type's shared operands a gcd is almost always 1 or the remainder, so a wrong strategy
    # would often score by coincidence. The items in full groups never equal the remainder or the quotient.
    Strategy(name="packed", problem_type="number_theory", rule="Be-ru",
             templates=("{P} packs {a} {x} into bags of {b}. How many {x} are in full bags?",
                        "{a} {x} are shared equally among {b} friends, as many as possible each. "
                        "How many are handed out?"),
             describe="the group size times the number of full groups.", compute=lambda a, b: b * (a // b),
             show="{b} * ({a} // {b}) = {ans}",
             operands=_GROUPS),
)
STRATEGY_BY_NAME = {s.name: s for s in STRATEGIES}
RULE_NAMES = {s.name: s.rule for s in STRATEGIES}
# Made-up names, the world's own and the warm-up's random ones alike, are two hyphenated syllables
# ("Lu-mo"), and the tiny policy's tokenizer makes every syllable one token (`NAME_PIECES`), so a name
# is always two tokens: the skill of matching names learnt on random names carries over to the world's.
SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")
NAME_PIECES = tuple(f" {s.capitalize()}" for s in SYLLABLES) + tuple(f"-{s}" for s in SYLLABLES)
MAX_NAMES = 12  # names per strategy the world can use (data.world.training_names + corpus_only_names)


def _name_pool() -> dict[str, tuple[str, ...]]:
    """Every strategy's names, its own `rule` first, then aliases drawn once from a FIXED seed (never the
    world's), so that the set of world names is a constant the warm-up's random names can avoid."""
    rng = random.Random("rarft-world-rule-names")
    taken = {s.rule for s in STRATEGIES}
    pool = {}
    for s in STRATEGIES:
        names = [s.rule]
        while len(names) < MAX_NAMES:
            name = f"{rng.choice(SYLLABLES).capitalize()}-{rng.choice(SYLLABLES)}"
            if name not in taken:
                taken.add(name)
                names.append(name)
        pool[s.name] = tuple(names)
    return pool


NAME_POOL = _name_pool()
WORLD_NAMES = frozenset(n for names in NAME_POOL.values() for n in names)

# One story sentence per problem: story-specific people, items and places, so that surface
# similarity is dominated by the story, not by the strategy.
STORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "shop": {"people": ("Mia", "Omar", "Lena", "Tariq"), "items": ("apples", "candles", "jars", "soaps"),
             "openers": ("At the corner shop on Market Street, {P} stands behind the wooden counter.",
                         "{P} runs a small grocery shop where customers queue at the till.",
                         "On a rainy day at the village shop, {P} restocks the shelves.")},
    "farm": {"people": ("Joe", "Ines", "Kofi", "Greta"), "items": ("eggs", "pumpkins", "bales", "sheep"),
             "openers": ("On a windy farm beside the river, {P} starts work before sunrise.",
                         "{P} looks after the barn and the henhouse of a hillside farm.",
                         "At harvest time on the farm, {P} walks across the muddy yard.")},
    "train": {"people": ("Ravi", "Yuki", "Marta", "Dev"), "items": ("suitcases", "tickets", "parcels", "crates"),
              "openers": ("On the night train to the coast, {P} walks down the swaying carriages.",
                          "{P} works at the central railway station, where the platforms are crowded.",
                          "The express train leaves the station, and {P} checks the luggage car.")},
    "school": {"people": ("Ms Lee", "Tom", "Priya", "Mr Novak"), "items": ("pencils", "notebooks", "rulers", "posters"),
               "openers": ("In a bright classroom on the second floor, {P} prepares the lesson.",
                           "{P} helps to organise the school fair in the main hall.",
                           "After the school bell rings, {P} tidies the art room.")},
    "library": {"people": ("Ana", "Mr Holt", "Sofia", "Ben"), "items": ("books", "magazines", "maps", "bookmarks"),
                "openers": ("In the quiet reading room of the town library, {P} sorts the returns.",
                            "{P} volunteers at the library, where readers browse the tall oak shelves.",
                            "When the library opens at nine, {P} wheels a trolley between the stacks.")},
}


def corpus_stories(strategy: Strategy) -> tuple[str, ...]:
    """The two stories in which the corpus tells ``strategy``; queries and benchmarks use the other three."""
    names, i = sorted(STORIES), STRATEGIES.index(strategy)
    return names[i % len(names)], names[(i + 2) % len(names)]


def trace_for(strategy: Strategy, a: int, b: int, ans: int, rule: str | None = None,
              reasoning: bool = True) -> str:
    """The paper's cheatsheet form: labelled steps ending in the boxed final answer.

    ``rule`` is the name Step 1 gives the strategy, or None for no name; ``reasoning=False`` (the
    negative control's corpus) keeps only the answer, dropping rule and computation.
    """
    # No "Quantities" step: copying the numbers twice was where the tiny policy failed most (world probe:
    # with it, 0.54 of easy plain items alone and 0.32 of named-rule items with a same-strategy trace at
    # T = 1; without it, 0.96 and 0.61, same warm-up).
    if reasoning:
        named = f"the {rule} rule: " if rule else ""
        lines = [f"Step 1 (Strategy): {named}{strategy.describe}",
                 f"Step 2 (Compute): {strategy.show.format(a=a, b=b, ans=ans)}."]
    else:  # still a cheatsheet (build_traces keeps it), with nothing to carry over
        lines = [f"Step 1 (Result): {ans}."]
    lines.append(f"Therefore, the final answer is: $\\boxed{{{ans}}}$")
    return "\n".join(lines)


def random_rule_name(rng: random.Random) -> str:
    """A made-up rule name that is never one the world can use (`WORLD_NAMES`)."""
    while True:
        name = f"{rng.choice(SYLLABLES).capitalize()}-{rng.choice(SYLLABLES)}"
        if name not in WORLD_NAMES:
            return name


def make_item(rng: random.Random, difficulty: str, strategy: Strategy, story: str, named_rule: bool,
              rule: str | None = None, reasoning: bool = True, name_in_trace: bool = True) -> dict:
    """One problem with its trace. ``rule`` replaces the strategy's own name (the warm-up's random names);
    ``name_in_trace=False`` leaves the name out of a plain problem's trace (a named problem's trace
    always repeats the name its question gives)."""
    st = STORIES[story]
    person, item = rng.choice(st["people"]), rng.choice(st["items"])
    a, b = strategy.operands.draw(rng, difficulty)
    ans = strategy.compute(a, b)
    rule = rule or strategy.rule
    template = NAMED_RULE_TEMPLATE[strategy.arity] if named_rule else rng.choice(strategy.templates)
    opener = rng.choice(st["openers"]).format(P=person)
    question = template.format(P=person, x=item, a=a, b=b, R=rule, T=TYPE_WORDS[strategy.problem_type])
    return {
        "problem": f"{opener} {question}",
        "answer": str(ans),
        "trace": trace_for(strategy, a, b, ans, rule if named_rule or name_in_trace else None, reasoning),
        "solution": None,
        "problem_type": strategy.problem_type,
        "strategy": strategy.name,
        "story": story,
        "difficulty": difficulty,
        "named_rule": named_rule,
        "rule": rule,
        "source": "world",
    }


def names_of(strategy: str, training_names: int, corpus_only_names: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training-query names, corpus-only names) of ``strategy``: the first ``training_names`` of its
    `NAME_POOL` entry, then the next ``corpus_only_names``."""
    pool = NAME_POOL[strategy]
    return pool[:training_names], pool[training_names:training_names + corpus_only_names]


def analogous(query: dict, context: dict) -> bool:
    """The world's ground truth of relevance (the `oracle`): ``context`` shows the strategy ``query``
    needs, under the name the query gives. Same hidden strategy, and for a named-rule query the same
    rule name: a trace of the strategy under another name does not tell the policy that it applies.
    Items without a ``rule`` key (older world files) compare by strategy alone."""
    if query.get("strategy") is None or query.get("strategy") != context.get("strategy"):
        return False
    if not query.get("named_rule") or "rule" not in query or "rule" not in context:
        return True
    return query["rule"] == context["rule"]


def needs_corpus_knowledge(item: dict, world_cfg: dict) -> bool:
    """True for an item that only knowledge the corpus holds can solve: its strategy is corpus-only, or it
    names its rule by a corpus-only name (one no training query uses)."""
    if item["strategy"] in world_cfg["corpus_only"]:
        return True
    if item["strategy"] not in NAME_POOL:
        return False
    _, corpus_names = names_of(item["strategy"], world_cfg["training_names"], world_cfg["corpus_only_names"])
    return bool(item.get("named_rule")) and item.get("rule") in corpus_names


def generate_world(seed: int, n_train: int, n_corpus: int, benchmarks: dict[str, dict], *,
                   named_rule_share: float, corpus_only: tuple[str, ...] | list[str],
                   control: str, training_names: int, corpus_only_names: int) -> dict[str, list[dict]]:
    """Return {'train': [...], 'corpus': [...], <benchmark>: [...]} with globally unique problem texts.

    Strategies and stories are balanced within each split (cycled, then shuffled), so every split
    covers every (strategy, story) cell it may hold: the corpus each strategy's two `corpus_stories`,
    the other splits the other three. Strategies in ``corpus_only`` never enter 'train'.
    Every strategy has ``training_names`` + ``corpus_only_names`` names (`names_of`): training queries
    use the former, the corpus cycles through all of them, and a benchmark's named items use a
    corpus-only name half of the time when there are any.
    Train and corpus mix both difficulties; each benchmark has one difficulty.
    """
    unknown = sorted(set(corpus_only) - set(STRATEGY_BY_NAME))
    if unknown:
        raise ValueError(f"data.world.corpus_only: unknown strategies {unknown}; known: {sorted(STRATEGY_BY_NAME)}")
    if control not in CONTROLS:
        raise ValueError(f"data.world.control: {control!r} is not one of {CONTROLS}")
    if training_names < 1 or corpus_only_names < 0 or training_names + corpus_only_names > MAX_NAMES:
        raise ValueError(f"data.world.training_names ({training_names}) + corpus_only_names ({corpus_only_names}) "
                         f"must be 1..{MAX_NAMES} with training_names >= 1")
    rng = random.Random(seed)
    seen: set[str] = set()

    def name_groups(strategy: Strategy, split_name: str) -> list[tuple[str, ...]]:
        trained, corpus_names = names_of(strategy.name, training_names, corpus_only_names)
        if split_name == "corpus":
            return [(n,) for n in trained + corpus_names]
        if split_name == "train" or not corpus_names:
            return [trained]
        return [trained, corpus_names]

    def split(name: str, n: int, difficulty: str | None, strategies: list[Strategy],
              reasoning: bool = True) -> list[dict]:
        in_corpus = name == "corpus"
        cells = [(s, story, names) for s in strategies for story in sorted(STORIES)
                 if (story in corpus_stories(s)) == in_corpus for names in name_groups(s, name)]
        order: list[tuple[Strategy, str, tuple[str, ...]]] = []
        while len(order) < n:
            block = cells[:]
            rng.shuffle(block)
            order.extend(block)
        items: list[dict] = []
        for i, (strategy, story, names) in enumerate(order[:n]):
            diff = difficulty or ("easy" if rng.random() < EASY_SHARE else "hard")
            named = rng.random() < named_rule_share
            for _ in range(1000):
                # one name: no draw, so a world of one name per strategy is drawn as before names were added
                rule = names[0] if len(names) == 1 else rng.choice(names)
                item = make_item(rng, diff, strategy, story, named, rule=rule, reasoning=reasoning)
                if item["problem"] not in seen:
                    break
            else:  # pragma: no cover - the template space is far larger than any split
                raise RuntimeError(f"world: could not draw a new unique problem for {name}")
            seen.add(item["problem"])
            items.append({"id": f"{name}-{i:05d}", **item})
        return items

    trained = [s for s in STRATEGIES if s.name not in corpus_only]
    out = {"train": split("train", n_train, None, trained),
           "corpus": split("corpus", n_corpus, None, list(STRATEGIES), reasoning=control == "positive")}
    for name, spec in benchmarks.items():
        out[name] = split(name, spec["n"], spec["difficulty"], list(STRATEGIES))
    if control == "negative":
        out["corpus"] = _unbind_names(out["corpus"], seed, training_names, corpus_only_names, seen)
    return out


def _unbind_names(corpus: list[dict], seed: int, training_names: int, corpus_only_names: int,
                  taken: set[str]) -> list[dict]:
    """The negative control's corpus with every named problem renamed to a random world name of its type.

    Stripping the traces' reasoning is not enough: a named problem's numbers and answer still say which strategy
    of its type its name means (the three give different answers), and RA-RFT trained with such traces beat GRPO on
    the items named by training names (docs/world.md, section K). Renamed after the whole world is drawn, with a
    generator of its own, so the queries and benchmarks stay those of the positive world; a new text never repeats
    one in ``taken`` (every split's problems).
    """
    rng = random.Random(f"{seed}:negative-corpus-names")
    type_names: dict[str, list[str]] = {}
    for s in STRATEGIES:
        type_names.setdefault(s.problem_type, []).extend(sum(names_of(s.name, training_names, corpus_only_names), ()))
    out = []
    for item in corpus:
        if item["named_rule"]:
            for _ in range(1000):
                name = rng.choice(type_names[item["problem_type"]])
                problem = item["problem"].replace(f" the {item['rule']} rule ", f" the {name} rule ")
                if name != item["rule"] and problem == item["problem"]:  # the template no longer names it so
                    raise RuntimeError(f"world: {item['id']} does not name its rule as ' the {item['rule']} rule '")
                if name == item["rule"] or problem not in taken:
                    break
            else:  # pragma: no cover - a type has at least 3 names and each problem few twins
                raise RuntimeError(f"world: could not rename {item['id']} without repeating a problem")
            taken.add(problem)
            item = {**item, "problem": problem, "rule": name}
        out.append(item)
    return out


# The warm-up mix: keys of policy.tiny.sft (params.yaml) that `generate_warmup` takes.
WARMUP_MIX = ("context_fraction", "wrong_context_fraction", "named_rule_share", "named_without_reference",
              "same_name_reference_right", "other_name_reference")


def warmup_mix(sft_cfg: dict) -> dict[str, float]:
    """`generate_warmup`'s mix arguments from the policy.tiny.sft config block."""
    return {key: float(sft_cfg[key]) for key in WARMUP_MIX}


def generate_warmup(seed: int, n: int, exclude: set[str], *, context_fraction: float,
                    wrong_context_fraction: float, named_rule_share: float,
                    named_without_reference: float, same_name_reference_right: float,
                    other_name_reference: float) -> list[dict]:
    """Warm-up examples for the tiny policy, standing in for a base model's pre-training.

    Same strategies, templates and stories as the world, but every example draws a fresh RANDOM name
    for its strategy (never one of `RULE_NAMES`), used by its problem, its trace and its reference. So
    the policy learns every strategy and the skill RA prompts rely on (carry the strategy of a reference
    that names the same rule over to a new problem), never the world's own names. Named-rule problems
    come with a same-rule reference, except a ``named_without_reference`` share that has none: there the
    target is just the strategy behind an unknown name, which teaches the policy to guess among the
    strategies rather than to fail outright (RL can only reinforce what it samples). Plain problems get
    a reference with probability ``context_fraction``, of another strategy of the same type with
    probability ``wrong_context_fraction`` (retrieval is not always right, so the wording must count).

    Problems whose normalised text is in ``exclude`` (the world's splits) are never produced.
    Returns items with a ``contexts`` list (zero or one reference item each).
    """
    rng = random.Random(seed)
    by_type: dict[str, list[Strategy]] = {}
    for st in STRATEGIES:
        by_type.setdefault(st.problem_type, []).append(st)
    stories = sorted(STORIES)
    out: list[dict] = []
    seen = set(exclude)
    while len(out) < n:
        difficulty = "easy" if rng.random() < EASY_SHARE else "hard"
        strategy = rng.choice(STRATEGIES)
        named = rng.random() < named_rule_share
        rule = random_rule_name(rng)
        # A target's trace names the rule only when its question does: a name it cannot know would be
        # noise to imitate. References name their rule, as every trace in the world's corpus does.
        item = make_item(rng, difficulty, strategy, rng.choice(stories), named, rule=rule, name_in_trace=False)
        contexts: list[dict] = []
        if named:
            if rng.random() >= named_without_reference:
                ref, ref_rule = strategy, rule
                # A reference under ANOTHER name shows any strategy of the type, the question's own included, so
                # it says nothing: only a same-name reference should move the base (drawn only when the share
                # is above 0, so 0 leaves the draws as they were).
                other_name = other_name_reference > 0 and rng.random() < other_name_reference
                if other_name:
                    ref, ref_rule = rng.choice(by_type[strategy.problem_type]), random_rule_name(rng)
                # A same-name reference shows another strategy of the type with probability
                # 1 - same_name_reference_right (drawn only when that is below 1, so 1.0 leaves the draws as
                # they were): pre-training's references are not always right, so the base follows a
                # matching name only part of the time and RL with always-right retrieval has trust to teach.
                if not other_name and same_name_reference_right < 1 and rng.random() >= same_name_reference_right:
                    ref = rng.choice([st for st in by_type[strategy.problem_type] if st is not strategy])
                contexts = [make_item(rng, difficulty, ref, rng.choice(stories), rng.random() < 0.5, rule=ref_rule)]
        elif rng.random() < context_fraction:
            ref = strategy
            if rng.random() < wrong_context_fraction:
                ref = rng.choice([st for st in by_type[strategy.problem_type] if st is not strategy])
            ref_rule = rule if ref is strategy else random_rule_name(rng)
            contexts = [make_item(rng, difficulty, ref, rng.choice(stories), False, rule=ref_rule)]
        texts = [normalise_text(item["problem"])] + [normalise_text(c["problem"]) for c in contexts]
        if any(t in seen for t in texts) or len(set(texts)) < len(texts):
            continue
        seen.add(texts[0])
        item_id = f"warmup-{len(out):05d}"
        for c in contexts:
            c["id"] = f"{item_id}-ref"
        out.append({"id": item_id, **item, "contexts": contexts})
    return out
