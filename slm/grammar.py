"""Text of the syntactic (sBLIMP-like) and story (sSC/tSC-like) pairs: small seeded template grammars.

Why templates: each pair must differ in exactly the property measured (agreement, order, argument
structure, coherence) and in as little else as possible, so both members come from one draw of the same
template with one slot changed. The lexicon is small and common (every word is in the CMU dictionary
and is spoken without surprises by the TTS); a draw depends only on the seed and the pair's index.
"""
from __future__ import annotations

import random
from typing import Callable

# (singular, plural, reflexive of the singular)
NOUNS = [("dog", "dogs", "itself"), ("cat", "cats", "itself"), ("boy", "boys", "himself"),
         ("girl", "girls", "herself"), ("teacher", "teachers", None), ("doctor", "doctors", None),
         ("bird", "birds", "itself"), ("farmer", "farmers", None), ("man", "men", "himself"),
         ("woman", "women", "herself"), ("student", "students", None), ("king", "kings", "himself"),
         ("queen", "queens", "herself"), ("friend", "friends", None), ("child", "children", None)]
# intransitive verbs: (3rd singular present, base, past)
INTRANS = [("runs", "run", "ran"), ("sleeps", "sleep", "slept"), ("sings", "sing", "sang"),
           ("laughs", "laugh", "laughed"), ("waits", "wait", "waited"), ("smiles", "smile", "smiled"),
           ("jumps", "jump", "jumped"), ("walks", "walk", "walked"), ("arrives", "arrive", "arrived"),
           ("falls", "fall", "fell")]
# transitive verbs: (3rd singular present, base, past)
TRANS = [("sees", "see", "saw"), ("likes", "like", "liked"), ("helps", "help", "helped"),
         ("finds", "find", "found"), ("follows", "follow", "followed"), ("opens", "open", "opened"),
         ("carries", "carry", "carried"), ("wants", "want", "wanted")]
# irregular verbs: (simple past, past participle), each with an object that fits
IRREGULAR = [("wrote", "written", "a letter"), ("ate", "eaten", "the apple"), ("saw", "seen", "the bird"),
             ("took", "taken", "the book"), ("gave", "given", "a gift"), ("broke", "broken", "the window"),
             ("drove", "driven", "the car"), ("chose", "chosen", "a seat"), ("forgot", "forgotten", "the key"),
             ("stole", "stolen", "the money"), ("threw", "thrown", "the ball"), ("drew", "drawn", "a picture")]
NEVER_TRANSITIVE = ["arrived", "slept", "laughed", "fell", "smiled", "sneezed", "yawned", "fainted"]
OBJECTS = ["the ball", "the house", "the book", "a letter", "the door", "the river", "a box", "the garden"]
ADJS = ["big", "small", "old", "happy", "young", "tall", "quiet", "little"]
PLACES = ["in the garden", "near the river", "at the school", "in the house", "by the road", "in the park"]
COPULA_ADJ = ["happy", "tired", "hungry", "ready", "late", "busy"]


def _noun(r: random.Random) -> tuple[str, str, str | None]:
    return r.choice(NOUNS)


def sv_agreement(r: random.Random) -> tuple[str, str]:
    sg, pl, _ = _noun(r)
    v3, base, _ = r.choice(INTRANS)
    place = r.choice(PLACES)
    if r.random() < 0.5:
        return f"the {sg} {v3} {place}", f"the {sg} {base} {place}"
    return f"the {pl} {base} {place}", f"the {pl} {v3} {place}"


def sv_agreement_attractor(r: random.Random) -> tuple[str, str]:
    """Agreement across a prepositional phrase whose noun has the other number (the 'attractor')."""
    (sg, pl, _), (sg2, pl2, _) = r.sample(NOUNS, 2)
    adj = r.choice(COPULA_ADJ)
    if r.random() < 0.5:
        return f"the {sg} near the {pl2} is {adj}", f"the {sg} near the {pl2} are {adj}"
    return f"the {pl} near the {sg2} are {adj}", f"the {pl} near the {sg2} is {adj}"


def det_noun_agreement(r: random.Random) -> tuple[str, str]:
    sg, pl, _ = _noun(r)
    v3, _, _ = r.choice(TRANS)
    subj = r.choice(NOUNS)[0]
    if r.random() < 0.5:
        det = r.choice(["this", "that"])
        return f"the {subj} {v3} {det} {sg}", f"the {subj} {v3} {det} {pl}"
    det = r.choice(["these", "those"])
    return f"the {subj} {v3} {det} {pl}", f"the {subj} {v3} {det} {sg}"


def anaphor_agreement(r: random.Random) -> tuple[str, str]:
    sg, pl, refl = r.choice([n for n in NOUNS if n[2] in ("himself", "herself")])
    verb = r.choice(["saw", "helped", "hurt", "liked"])
    if r.random() < 0.5:
        other = "herself" if refl == "himself" else "himself"
        return f"the {sg} {verb} {refl}", f"the {sg} {verb} {other}"
    return f"the {pl} {verb} themselves", f"the {pl} {verb} {refl}"


def word_order(r: random.Random) -> tuple[str, str]:
    """Adjective before its noun vs after it: the same words, two swapped."""
    sg = _noun(r)[0]
    adj = r.choice(ADJS)
    v3, _, _ = r.choice(TRANS)
    obj = r.choice(OBJECTS)
    return f"the {adj} {sg} {v3} {obj}", f"the {sg} {adj} {v3} {obj}"


def irregular_participle(r: random.Random) -> tuple[str, str]:
    past, part, obj = r.choice(IRREGULAR)
    sg = _noun(r)[0]
    return f"the {sg} has {part} {obj}", f"the {sg} has {past} {obj}"


def transitivity(r: random.Random) -> tuple[str, str]:
    """A transitive verb with its object vs an intransitive verb given the same object."""
    sg = _noun(r)[0]
    obj = r.choice(OBJECTS)
    return f"the {sg} {r.choice(TRANS)[2]} {obj}", f"the {sg} {r.choice(NEVER_TRANSITIVE)} {obj}"


def npi_licensing(r: random.Random) -> tuple[str, str]:
    """'ever' needs a negative licensor: 'no dog has ever ...' vs 'the dog has ever ...'."""
    sg = _noun(r)[0]
    past, part, obj = r.choice(IRREGULAR)
    return f"no {sg} has ever {part} {obj}", f"the {sg} has ever {part} {obj}"


PARADIGMS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "sv_agreement": sv_agreement, "sv_agreement_attractor": sv_agreement_attractor,
    "det_noun_agreement": det_noun_agreement, "anaphor_agreement": anaphor_agreement, "word_order": word_order,
    "irregular_participle": irregular_participle, "transitivity": transitivity, "npi_licensing": npi_licensing,
}

# --- stories ------------------------------------------------------------------------------------------
NAMES = [("Tom", "he", "his"), ("Anna", "she", "her"), ("Sam", "he", "his"), ("Mary", "she", "her"),
         ("Jack", "he", "his"), ("Lucy", "she", "her"), ("Ben", "he", "his"), ("Kate", "she", "her")]
# topic -> (context sentences, endings with an {obj} slot, objects that fit the topic)
TOPICS: dict[str, tuple[list[str], list[str], list[str]]] = {
    "bakery": (["{n} went to the bakery early in the morning.", "{p} was very hungry.",
                "The shop smelled of warm bread."],
               ["{p} bought the {obj} and ate it on the way home.", "{p} paid for the {obj} and smiled."],
               ["bread", "cake", "cookies", "pie"]),
    "garden": (["{n} spent the whole day in the garden.", "The flowers needed water.",
                "{p} pulled the weeds from the soil."],
               ["{p} put the {obj} back in the shed.", "{p} cleaned the {obj} before dinner."],
               ["shovel", "rake", "hose", "bucket"]),
    "beach": (["{n} drove to the beach with {h} friends.", "The sun was hot and the sea was calm.",
               "{p} swam in the cold water."],
              ["{p} lay on the {obj} and fell asleep.", "{p} shook the sand off the {obj}."],
              ["towel", "blanket", "mat", "chair"]),
    "school": (["{n} had a test at school today.", "{p} studied hard all week.",
                "The teacher handed out the papers."],
               ["{p} wrote the answers with a {obj}.", "{p} finished early and put down the {obj}."],
               ["pencil", "pen", "marker", "crayon"]),
    "kitchen": (["{n} wanted to cook dinner for {h} family.", "{p} chopped onions and carrots.",
                 "The soup began to boil."],
                ["{p} stirred the soup with a {obj}.", "{p} served the soup with a {obj}."],
                ["spoon", "ladle", "fork", "whisk"]),
    "rain": (["{n} looked out of the window.", "Dark clouds filled the sky.", "It started to rain very hard."],
             ["{p} took {h} {obj} and stayed dry.", "{p} grabbed {h} {obj} before going out."],
             ["umbrella", "raincoat", "hat", "boots"]),
    "library": (["{n} went to the library after class.", "It was quiet inside.",
                 "{p} looked for a book about birds."],
                ["{p} borrowed the {obj} and read it at home.", "{p} found the {obj} on the top shelf."],
                ["book", "novel", "magazine", "atlas"]),
    "dog": (["{n} took the dog for a walk.", "The dog pulled on the leash.", "They walked to the park."],
            ["{p} threw the {obj} and the dog ran after it.", "The dog brought back the {obj}."],
            ["ball", "stick", "frisbee", "toy"]),
}


def story(r: random.Random, paradigm: str) -> tuple[str, str]:
    """``topic`` (tSC-like): the ending of another topic. ``object`` (sSC-like, subtler): the topic's own
    ending with an object that belongs to another topic."""
    name, pro, his = r.choice(NAMES)
    topic, other = r.sample(sorted(TOPICS), 2)
    ctx, ends, objs = TOPICS[topic]
    fill = {"n": name, "p": pro.capitalize(), "h": his}
    context = " ".join(s.format(**fill) for s in ctx)
    good = r.choice(ends).format(obj=r.choice(objs), **fill)
    if paradigm == "topic":
        bad = r.choice(TOPICS[other][1]).format(obj=r.choice(TOPICS[other][2]), **fill)
    elif paradigm == "object":
        end = r.choice(ends)
        good = end.format(obj=r.choice(objs), **fill)
        bad = end.format(obj=r.choice(TOPICS[other][2]), **fill)
    else:
        raise ValueError(f"unknown story paradigm {paradigm!r}; use topic or object")
    return f"{context} {good}", f"{context} {bad}"


STORY_PARADIGMS = ("topic", "object")
