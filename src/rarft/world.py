"""The embedded analogy world: seeded math word problems where surface similarity misleads.

Design (the paper's thesis made measurable):
- 3 coarse problem types, each with 3 latent solution strategies (9 in all).
- 5 surface stories (shop, farm, train, school, library) shared ACROSS strategies. A problem is a
  story paragraph (long, story-specific words) followed by one short strategy sentence. So two
  problems with the same story usually need different strategies (an off-the-shelf embedding puts
  them close), and two with different stories often share one (it puts them far apart).
- Pairs of strategies are worded almost alike on purpose (remainder vs full groups, pairs vs ordered
  picks). Each strategy also has a rare phrasing that names it only by a made-up rule ("applies the
  Lu-mo rule"), a quarter of easy and half of hard problems. The base policy never meets these names
  (it warms up on random ones, `generate_warmup`), so it can solve such a problem only by carrying the
  strategy over from a reference that uses the same rule, or after RL has taught it the name. This is
  where a context's real gain (the paper's Eq. 1) departs from surface similarity: the story dominates
  an off-the-shelf embedding, the rule name decides the gain.
- Numbers stay small (single digits in easy problems, at most two-digit operands in hard ones), so a
  CPU-sized model can learn the arithmetic and the remaining errors are about strategy, not digits.
- The trace (the paper's cheatsheet form) names the strategy explicitly in Step 2, so a trace of the
  same strategy is a useful demonstration for a new problem: that is what RA-RFT can exploit.
- `strategy` is kept on every item for analysis (the `oracle` labeler, diversity counts) and is
  never put into a prompt.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Callable

PROBLEM_TYPES = ("arithmetic", "counting", "number_theory")


@dataclass(frozen=True)
class Strategy:
    name: str
    problem_type: str
    # Templates use {P} person, {x} plural item, {a} {b} numbers. The last one is the rare phrasing.
    templates: tuple[str, ...]
    describe: str  # Step 2 of the trace: the transferable idea, in words
    compute: Callable[[int, int], int]
    show: str  # Step 3: the computation, with {a} {b} {ans}
    draw: Callable[[random.Random, str], tuple[int, int]]  # (rng, difficulty) -> (a, b)


def _pair(lo_e: int, hi_e: int, lo_h: int, hi_h: int, *, b_lo: int = 2, b_hi_e: int = 9,
          b_hi_h: int = 15, a_gt_b: bool = False) -> Callable[[random.Random, str], tuple[int, int]]:
    def draw(rng: random.Random, difficulty: str) -> tuple[int, int]:
        lo, hi, b_hi = (lo_e, hi_e, b_hi_e) if difficulty == "easy" else (lo_h, hi_h, b_hi_h)
        while True:
            a, b = rng.randint(lo, hi), rng.randint(b_lo, b_hi)
            if not a_gt_b or a > b:
                return a, b
    return draw


def _n(lo_e: int, hi_e: int, lo_h: int, hi_h: int) -> Callable[[random.Random, str], tuple[int, int]]:
    def draw(rng: random.Random, difficulty: str) -> tuple[int, int]:
        n = rng.randint(lo_e, hi_e) if difficulty == "easy" else rng.randint(lo_h, hi_h)
        return n, 0
    return draw


def _remainder_pair(rng: random.Random, difficulty: str) -> tuple[int, int]:
    # a not a multiple of b, so "left over" and "full groups" give different, non-zero answers
    while True:
        a, b = _pair(5, 19, 20, 39, b_lo=2, b_hi_e=5, b_hi_h=7, a_gt_b=True)(rng, difficulty)
        if a % b:
            return a, b


def _gcd_pair(rng: random.Random, difficulty: str) -> tuple[int, int]:
    while True:
        g = rng.randint(2, 4) if difficulty == "easy" else rng.randint(2, 5)
        m, n = (rng.randint(1, 4), rng.randint(1, 4)) if difficulty == "easy" else (rng.randint(1, 4), rng.randint(1, 5))
        if m != n and math.gcd(m, n) == 1:
            return g * m, g * n


STRATEGIES: tuple[Strategy, ...] = (
    Strategy(
        "total", "arithmetic",
        ("{P} has {a} {x} and then gets {b} more {x}. How many {x} does {P} have now?",
         "One crate holds {a} {x} and a second crate holds {b} {x}. How many {x} are in the two crates together?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Combine the amounts: add them.",
        lambda a, b: a + b, "{a} + {b} = {ans}", _pair(1, 9, 10, 19, b_lo=1, b_hi_e=9, b_hi_h=9)),
    Strategy(
        "difference", "arithmetic",
        ("{P} has {a} {x} and gives away {b} of the {x}. How many {x} does {P} have now?",
         "One crate holds {a} {x} and a second crate holds {b} {x}. How many more {x} are in the first crate?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Compare the amounts: the larger minus the smaller.",
        lambda a, b: a - b, "{a} - {b} = {ans}", _pair(4, 9, 10, 19, b_lo=1, b_hi_e=8, b_hi_h=9, a_gt_b=True)),
    Strategy(
        "product", "arithmetic",
        ("{P} fills {a} crates with {b} {x} in each crate. How many {x} does {P} have now?",
         "There are {a} rows of {x} with {b} {x} in every row. How many {x} are there in the rows together?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Equal groups: the number of groups times the group size.",
        lambda a, b: a * b, "{a} * {b} = {ans}", _pair(2, 5, 2, 9, b_hi_e=5, b_hi_h=9)),
    Strategy(
        "pairs", "counting",
        ("{P} has {a} {x} and compares every two of the {x} once. How many comparisons does {P} make?",
         "Each of {a} {x} is paired once with each of the other {x}. How many pairs of {x} are there?",
         "{P} applies the {R} rule to {a} {x}. What does the {R} rule give?"),
        "Unordered pairs: n things give n * (n - 1) / 2 pairs.",
        lambda a, b: a * (a - 1) // 2, "{a} * ({a} - 1) / 2 = {ans}", _n(3, 6, 7, 10)),
    Strategy(
        "ordered", "counting",
        ("{P} has {a} {x} and picks a first {x} and then a second {x}. In how many ways can {P} pick them?",
         "From {a} {x}, one {x} is chosen as leader and a different {x} as helper. How many choices are there?",
         "{P} applies the {R} rule to {a} {x}. What does the {R} rule give?"),
        "Ordered picks: n choices for the first, n - 1 for the second.",
        lambda a, b: a * (a - 1), "{a} * ({a} - 1) = {ans}", _n(3, 6, 7, 10)),
    Strategy(
        "choices", "counting",
        ("{P} has {a} red {x} and {b} blue {x} and picks one red and one blue. In how many ways can {P} pick them?",
         "A set uses one of {a} large {x} and one of {b} small {x}. How many different sets are there?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Independent choices: multiply the numbers of options.",
        lambda a, b: a * b, "{a} * {b} = {ans}", _pair(2, 5, 2, 9, b_hi_e=5, b_hi_h=9)),
    Strategy(
        "remainder", "number_theory",
        ("{P} packs {a} {x} into bags of {b} {x}. How many {x} are left over?",
         "{a} {x} are shared equally among {b} friends, as many as possible each. How many {x} remain?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Leftovers after full groups: the remainder of the division.",
        lambda a, b: a % b, "{a} mod {b} = {ans}", _remainder_pair),
    Strategy(
        "quotient", "number_theory",
        ("{P} packs {a} {x} into bags of {b} {x}. How many full bags does {P} make?",
         "{a} {x} are shared equally among {b} friends, as many as possible each. How many {x} does each friend get?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Full groups: the whole-number quotient of the division.",
        lambda a, b: a // b, "{a} // {b} = {ans}", _remainder_pair),
    Strategy(
        "gcd", "number_theory",
        ("{P} splits {a} red {x} and {b} blue {x} into identical groups with nothing left. What is the largest number of groups?",
         "{a} {x} and {b} {x} must be cut into equal batches of one size with none spare. What is the largest batch size?",
         "{P} applies the {R} rule to {a} {x} and {b} {x}. What does the {R} rule give?"),
        "Largest common split: the greatest common divisor.",
        lambda a, b: math.gcd(a, b), "gcd({a}, {b}) = {ans}", _gcd_pair),
)
STRATEGY_BY_NAME = {s.name: s for s in STRATEGIES}

# Each strategy's rare phrasing names it only by a made-up rule ("applies the Lu-mo rule"), like a
# named theorem. A policy that has never met the name cannot tell which strategy it means; a solved
# problem that uses the same rule shows it. Names are hyphenated syllables so that the tokenizer
# splits fixed and random names alike (the warm-up uses random ones; see `generate_warmup`).
RULE_NAMES = {"total": "Ka-lo", "difference": "Mi-ren", "product": "Tu-sa", "pairs": "Ve-do",
              "ordered": "No-ki", "choices": "Ra-pe", "remainder": "Lu-mo", "quotient": "Si-ta",
              "gcd": "Be-ru"}
SYLLABLES = tuple(c + v for c in "bdfgklmnprstvz" for v in "aeiou")

# Story paragraphs: long, vivid, story-specific wording, so that surface similarity is dominated
# by the story. Each story has several openers and several details; two are drawn per problem.
STORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "shop": {
        "people": ("Mia", "Omar", "Lena", "Tariq"),
        "items": ("apples", "candles", "jars", "soaps"),
        "openers": ("At the corner shop on Market Street, {P} is busy behind the wooden counter.",
                    "{P} runs a small grocery shop where customers queue at the till every morning.",
                    "It is a rainy day at the village shop, and {P} is restocking the shelves."),
        "details": ("The shop bell rings as the first customers come in to browse the aisles.",
                    "Price tags and paper bags are piled beside the cash register.",
                    "A delivery van has just parked outside the shop window."),
    },
    "farm": {
        "people": ("Farmer Joe", "Ines", "Kofi", "Greta"),
        "items": ("eggs", "pumpkins", "hay bales", "sheep"),
        "openers": ("On a windy farm beside the river, {P} starts the day before sunrise.",
                    "{P} looks after the barn, the henhouse and the fields of a hillside farm.",
                    "Harvest season has come to the farm, and {P} walks out across the muddy yard."),
        "details": ("The tractor rumbles past the barn while the cows graze in the meadow.",
                    "Chickens scatter across the yard as the farm dog barks at the gate.",
                    "Fresh straw covers the floor of the old red barn."),
    },
    "train": {
        "people": ("Conductor Ravi", "Yuki", "Marta", "Dev"),
        "items": ("suitcases", "tickets", "parcels", "crates"),
        "openers": ("On the night train to the coast, {P} walks down the swaying carriages.",
                    "{P} works at the central railway station, where the platforms are crowded.",
                    "The express train leaves the station on time, and {P} checks the luggage car."),
        "details": ("The whistle blows as the locomotive pulls away from the platform.",
                    "Passengers watch the fields roll past the carriage windows.",
                    "The timetable board flickers above the waiting travellers."),
    },
    "school": {
        "people": ("Ms Lee", "Tom", "Priya", "Mr Novak"),
        "items": ("pencils", "notebooks", "rulers", "posters"),
        "openers": ("In a bright classroom on the second floor, {P} prepares the morning lesson.",
                    "{P} is helping to organise the school fair in the main hall.",
                    "The bell has rung at the primary school, and {P} tidies the art room."),
        "details": ("Pupils chatter in the corridor while the blackboard is wiped clean.",
                    "Backpacks hang from hooks along the classroom wall.",
                    "The teacher's desk is covered with marked homework."),
    },
    "library": {
        "people": ("Ana", "the librarian Mr Holt", "Sofia", "Ben"),
        "items": ("books", "magazines", "maps", "bookmarks"),
        "openers": ("In the quiet reading room of the town library, {P} sorts the returns.",
                    "{P} volunteers at the library, where readers browse the tall oak shelves.",
                    "The library opens at nine, and {P} wheels a trolley between the stacks."),
        "details": ("Readers whisper at the long tables under the green lamps.",
                    "The catalogue computer hums beside the loans desk.",
                    "Old atlases line the top shelf near the window."),
    },
}


def trace_for(strategy: Strategy, a: int, b: int, ans: int) -> str:
    """The paper's cheatsheet form: labelled steps ending in the boxed final answer."""
    quantities = f"{a} and {b}" if strategy.show.count("{b}") else f"{a}"
    return (
        f"Step 1 (Quantities): {quantities}.\n"
        f"Step 2 (Strategy): {strategy.describe}\n"
        f"Step 3 (Compute): {strategy.show.format(a=a, b=b, ans=ans)}.\n"
        f"Therefore, the final answer is: $\\boxed{{{ans}}}$"
    )


def random_rule_name(rng: random.Random) -> str:
    """A made-up rule name that is never one of the world's own (`RULE_NAMES`)."""
    while True:
        name = f"{rng.choice(SYLLABLES).capitalize()}-{rng.choice(SYLLABLES)}"
        if name not in RULE_NAMES.values():
            return name


def make_item(rng: random.Random, difficulty: str, strategy: Strategy | None = None,
              story: str | None = None, rare_p: float = 0.25, rule: str | None = None,
              rare: bool | None = None) -> dict:
    """One problem with its trace. ``rule`` replaces the strategy's own rule name (the warm-up's random
    names); ``rare`` forces (True) or forbids (False) the named-rule phrasing instead of drawing it."""
    strategy = strategy or rng.choice(STRATEGIES)
    story = story or rng.choice(sorted(STORIES))
    st = STORIES[story]
    person, item = rng.choice(st["people"]), rng.choice(st["items"])
    a, b = strategy.draw(rng, difficulty)
    ans = strategy.compute(a, b)
    # rare phrasing (last template) more often in hard problems: reading the strategy is harder
    drawn = rng.random() < (rare_p if difficulty == "easy" else 2 * rare_p)
    rare = drawn if rare is None else rare
    template = strategy.templates[-1] if rare else rng.choice(strategy.templates[:-1])
    opener = rng.choice(st["openers"]).format(P=person)
    detail = rng.choice(st["details"])
    question = template.format(P=person, x=item, a=a, b=b, R=rule or RULE_NAMES[strategy.name])
    question = question[0].upper() + question[1:]
    return {
        "problem": f"{opener} {detail} {question}",
        "answer": str(ans),
        "trace": trace_for(strategy, a, b, ans),
        "solution": None,
        "problem_type": strategy.problem_type,
        "strategy": strategy.name,
        "story": story,
        "difficulty": difficulty,
        "named_rule": rare,
        "source": "world",
    }


def generate_world(seed: int, n_train: int, n_corpus: int, benchmarks: dict[str, dict]) -> dict[str, list[dict]]:
    """Return {'train': [...], 'corpus': [...], <benchmark>: [...]} with globally unique problem texts.

    Strategies and stories are balanced within each split (cycled, then shuffled), so every split
    covers every (strategy, story) cell. Train and corpus mix both difficulties; each benchmark has
    one difficulty.
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    cells = [(s, story) for s in STRATEGIES for story in sorted(STORIES)]

    def split(name: str, n: int, difficulty: str | None) -> list[dict]:
        items: list[dict] = []
        order = []
        while len(order) < n:
            block = cells[:]
            rng.shuffle(block)
            order.extend(block)
        for i, (strategy, story) in enumerate(order[:n]):
            diff = difficulty or ("easy" if rng.random() < 0.6 else "hard")
            for _ in range(1000):
                item = make_item(rng, diff, strategy, story)
                if item["problem"] not in seen:
                    break
            else:  # pragma: no cover - the template space is far larger than any split
                raise RuntimeError(f"world: could not draw a new unique problem for {name}")
            seen.add(item["problem"])
            item["id"] = f"{name}-{i:05d}"
            items.append({"id": item.pop("id"), **item})
        return items

    out = {"train": split("train", n_train, None), "corpus": split("corpus", n_corpus, None)}
    for name, spec in benchmarks.items():
        out[name] = split(name, spec["n"], spec["difficulty"])
    return out



def normalise_text(text: str) -> str:
    return " ".join(text.lower().split())


def generate_warmup(seed: int, n: int, exclude: set[str] = frozenset(), context_fraction: float = 0.5,
                    wrong_context_fraction: float = 0.3) -> list[dict]:
    """Warm-up examples for the tiny policy, standing in for a base model's pre-training.

    Same strategies, templates and stories as the world, but every named-rule problem uses a fresh
    random rule name and always comes with a reference problem of the same rule and strategy: the only
    way to solve it is to carry the reference's strategy over. That is the skill retrieval-augmented
    prompts rely on, learned here without ever seeing the world's own rule names (`RULE_NAMES`), so
    the base policy cannot solve the world's named-rule problems alone. Other problems get a reference
    with probability ``context_fraction``, of another strategy of the same type with probability
    ``wrong_context_fraction`` (retrieved contexts are not always right, so the wording must still count).

    Problems whose normalised text is in ``exclude`` (the world's splits) are never produced.
    Returns items with a ``contexts`` list (zero or one reference item each).
    """
    rng = random.Random(seed)
    by_type: dict[str, list[Strategy]] = {}
    for st in STRATEGIES:
        by_type.setdefault(st.problem_type, []).append(st)
    out: list[dict] = []
    seen = set(exclude)
    while len(out) < n:
        difficulty = "easy" if rng.random() < 0.6 else "hard"
        strategy = rng.choice(STRATEGIES)
        rule = random_rule_name(rng)
        item = make_item(rng, difficulty, strategy, rule=rule)
        if normalise_text(item["problem"]) in seen:
            continue
        contexts: list[dict] = []
        if item["named_rule"]:
            contexts = [make_item(rng, difficulty, strategy, rule=rule, rare=True)]
        elif rng.random() < context_fraction:
            other = [st for st in by_type[strategy.problem_type] if st is not strategy]
            ref_strategy = rng.choice(other) if rng.random() < wrong_context_fraction else strategy
            contexts = [make_item(rng, difficulty, ref_strategy, rule=random_rule_name(rng), rare=False)]
        if any(normalise_text(c["problem"]) in (seen | {normalise_text(item["problem"])}) for c in contexts):
            continue
        seen.add(normalise_text(item["problem"]))
        item["id"] = f"warmup-{len(out):05d}"
        for c in contexts:
            c["id"] = f"{item['id']}-ref"
        item["contexts"] = contexts
        out.append({"id": item.pop("id"), **item})
    return out
