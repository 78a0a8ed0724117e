"""A deterministic synthetic encyclopedia with multi-hop questions, for measuring indexing at scale.

    python eval/synth_corpus.py --passages 10000 --out DIR [--seed 0] [--questions 200] [--extra 0.01]

Writes DIR/corpus.json (a list of ``{"id", "title", "text"}`` documents, one passage each),
DIR/extra.json (``--extra`` × more documents of new entities, for measuring an `add`),
DIR/questions.jsonl (``{"id", "question", "answer", "gold": [document ids], "category"}``, the
format of ``eval custom:CORPUS,QUESTIONS``) and DIR/meta.json.

The world: people, cities, countries, rivers, companies, universities and bands with typed
relations (born in, works for, studied at, married to, founded, headquartered in, located in,
flows through, capital of, formed in, member of). Each entity gets one article, and people and
companies often a second one (career / history), written from several templates per relation
with descriptive filler and numbers, so sentences vary. Distractors: names that share a first
or last name or differ by one letter, and articles that mention an entity without stating the
asked relation. Questions are two-hop bridge questions ("In which country is the city where
X was born?") whose gold passages are the two articles that state the two relations.
Everything comes from `random.Random(seed)`: the same arguments give the same files.
"""
from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

ONSETS = ["b", "br", "c", "d", "dr", "f", "g", "gr", "h", "k", "kl", "l", "m", "n", "p", "pr", "r", "s", "st", "t",
          "tr", "v", "w", "z", "sh", "th", "ch"]
VOWELS = ["a", "e", "i", "o", "u", "ae", "ei", "ou", "ia", "y"]
CODAS = ["", "", "n", "r", "s", "l", "m", "th", "nd", "rk", "st", "x", "v"]
CITY_ENDINGS = ["burg", "ford", "ton", "ville", "stad", "mouth", "haven", "field", "port", "dale", "wick", "holm"]
COMPANY_KINDS = ["Industries", "Systems", "Holdings", "Works", "Labs", "Group", "Motors", "Foods", "Energy", "Media"]
INDUSTRIES = ["shipbuilding", "software", "textiles", "pharmaceuticals", "steel", "publishing", "aviation",
              "telecommunications", "agriculture", "mining", "banking", "railways"]
PROFESSIONS = ["engineer", "novelist", "chemist", "architect", "economist", "painter", "physician", "historian",
               "composer", "lawyer", "geologist", "journalist", "mathematician", "film director"]
GENRES = ["folk rock", "jazz fusion", "post-punk", "electronic", "baroque pop", "heavy metal", "bluegrass", "synth-pop"]
FIELDS = ["physics", "law", "medicine", "economics", "literature", "architecture", "chemistry", "history"]
FILLER = [
    "{n} appears in several regional histories and guidebooks.",
    "Records about {n} are kept in the national archive.",
    "Local newspapers have covered {n} many times over the years.",
    "{n} was the subject of a documentary broadcast on public television.",
    "Visitors often ask about {n} at the tourist information office.",
    "An annual report on {n} is published every spring.",
    "The name {n} is spelled the same way in most languages.",
    "Little is known about the early period of {n}.",
]
ADJECTIVES = ["quiet", "busy", "historic", "industrial", "coastal", "mountainous", "prosperous", "remote"]


@dataclass
class Entity:
    kind: str
    name: str
    rel: dict[str, str] = field(default_factory=dict)  # relation → entity name
    attr: dict[str, object] = field(default_factory=dict)


class World:
    """Entities and relations, generated from one seeded random stream."""

    def __init__(self, n_entities: int, rng: random.Random):
        self.rng = rng
        self.used: set[str] = set()
        self.by_kind: dict[str, list[Entity]] = {}
        self.entities: dict[str, Entity] = {}
        shares = {"country": 0.01, "river": 0.02, "city": 0.14, "university": 0.05, "company": 0.16, "band": 0.07,
                  "person": 0.55}
        counts = {k: max(2, int(round(v * n_entities))) for k, v in shares.items()}
        for kind in ("country", "river", "city", "university", "company", "band", "person"):
            for _ in range(counts[kind]):
                self._add(Entity(kind, self._name(kind)))
        self._relate()

    # -- names ---------------------------------------------------------------------------
    def _word(self, syllables: int) -> str:
        r = self.rng
        return "".join(r.choice(ONSETS) + r.choice(VOWELS) + r.choice(CODAS) for _ in range(syllables)).capitalize()

    def _name(self, kind: str) -> str:
        r = self.rng
        for _ in range(1000):
            if kind == "person":
                people = self.by_kind.get("person", [])
                if people and r.random() < 0.15:  # distractor: shares a first or a last name
                    other = r.choice(people).name.split()
                    name = f"{other[0]} {self._word(2)}" if r.random() < 0.5 else f"{self._word(2)} {other[-1]}"
                else:
                    name = f"{self._word(r.randint(1, 2))} {self._word(2)}"
            elif kind == "city":
                name = self._word(r.randint(1, 2)) + r.choice(CITY_ENDINGS)
            elif kind == "country":
                name = self._word(2) + r.choice(["ia", "land", "stan", "ora"])
            elif kind == "river":
                name = f"{self._word(2)} River"
            elif kind == "company":
                name = f"{self._word(2)} {r.choice(COMPANY_KINDS)}"
            elif kind == "university":
                name = f"University of {self._word(2)}" if r.random() < 0.5 else f"{self._word(2)} Institute of Technology"
            else:  # band
                name = f"The {self._word(2)}s" if r.random() < 0.5 else f"{self._word(1)} {self._word(2)}"
            if name not in self.used:
                self.used.add(name)
                return name
        raise RuntimeError("name space exhausted")

    def _add(self, e: Entity) -> None:
        self.by_kind.setdefault(e.kind, []).append(e)
        self.entities[e.name] = e

    def pick(self, kind: str) -> Entity:
        return self.rng.choice(self.by_kind[kind])

    # -- relations -------------------------------------------------------------------------
    def _relate(self) -> None:
        r = self.rng
        for c in self.by_kind["city"]:
            c.rel["located_in"] = self.pick("country").name
            if r.random() < 0.6:
                c.rel["river"] = self.pick("river").name
            c.attr.update(population=r.randint(8, 2500) * 1000, founded=r.randint(900, 1890), adj=r.choice(ADJECTIVES))
        for country in self.by_kind["country"]:
            cities = [c for c in self.by_kind["city"] if c.rel["located_in"] == country.name]
            if cities:
                country.rel["capital"] = r.choice(cities).name
            country.attr.update(population=r.randint(1, 90) * 1_000_000)
        for river in self.by_kind["river"]:
            river.attr.update(length=r.randint(40, 3000))
        for u in self.by_kind["university"]:
            u.rel["located_in"] = self.pick("city").name
            u.attr.update(founded=r.randint(1200, 1990), field=r.choice(FIELDS), students=r.randint(2, 60) * 1000)
        for c in self.by_kind["company"]:
            c.rel["headquarters"] = self.pick("city").name
            c.attr.update(founded=r.randint(1850, 2015), industry=r.choice(INDUSTRIES), employees=r.randint(20, 90000))
        for b in self.by_kind["band"]:
            b.rel["formed_in"] = self.pick("city").name
            b.attr.update(formed=r.randint(1960, 2018), genre=r.choice(GENRES), albums=r.randint(1, 14))
        for p in self.by_kind["person"]:
            p.rel["born_in"] = self.pick("city").name
            p.rel["employer"] = self.pick("company").name
            p.rel["alma_mater"] = self.pick("university").name
            p.attr.update(born=r.randint(1900, 1995), profession=r.choice(PROFESSIONS))
            if r.random() < 0.12:
                p.rel["band"] = self.pick("band").name
        people = self.by_kind["person"]
        for c in self.by_kind["company"]:
            c.rel["founder"] = r.choice(people).name
        for i in range(0, len(people) - 1, 2):
            if r.random() < 0.3:
                people[i].rel["spouse"] = people[i + 1].name
                people[i + 1].rel["spouse"] = people[i].name


# ---------------------------------------------------------------------------- articles
def _sentences(e: Entity, w: World, rng: random.Random) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(main article sentences, second article sentences), each as (relation or "", sentence)."""
    n, a, rel = e.name, e.attr, e.rel
    c = rng.choice
    main: list[tuple[str, str]] = []
    second: list[tuple[str, str]] = []
    if e.kind == "person":
        art = "an" if a["profession"][0] in "aeiou" else "a"
        main.append(("", c([f"{n} (born {a['born']}) is {art} {a['profession']}.",
                             f"{n} is {art} {a['profession']} born in {a['born']}.",
                             f"Born in {a['born']}, {n} became a well-known {a['profession']}."])))
        main.append(("born_in", c([f"{n} was born in {rel['born_in']}.",
                                   f"{n.split()[0]} grew up in {rel['born_in']}, the city of {n.split()[-1]}'s birth.",
                                   f"A native of {rel['born_in']}, {n} spent a childhood there."])))
        main.append(("alma_mater", c([f"{n} studied at the {rel['alma_mater']}.",
                                      f"{n.split()[-1]} graduated from the {rel['alma_mater']}.",
                                      f"After school, {n} enrolled at the {rel['alma_mater']}."])))
        if "spouse" in rel:
            main.append(("spouse", c([f"{n} is married to {rel['spouse']}.", f"{n.split()[-1]}'s spouse is {rel['spouse']}."])))
        tgt = second if rng.random() < 0.5 else main
        tgt.append(("employer", c([f"{n} works for {rel['employer']}.",
                                   f"Since {a['born'] + rng.randint(22, 30)}, {n} has been employed by {rel['employer']}.",
                                   f"{n.split()[-1]} joined {rel['employer']} as {art} {a['profession']}."])))
        if "band" in rel:
            tgt.append(("band", f"{n} is also a member of the band {rel['band']}."))
        tgt.append(("", c([f"{n.split()[-1]} has published {rng.randint(2, 40)} papers and essays.",
                           f"In {a['born'] + rng.randint(30, 60)}, {n} received an award for lifetime work.",
                           f"Colleagues describe {n.split()[0]} as meticulous and patient."])))
    elif e.kind == "city":
        main.append(("", f"{n} is a {a['adj']} city with a population of about {a['population']:,}."))
        main.append(("located_in", c([f"{n} is located in {rel['located_in']}.", f"{n} lies in the country of {rel['located_in']}.",
                                      f"The city of {n} is part of {rel['located_in']}."])))
        if "river" in rel:
            main.append(("river", c([f"The {rel['river']} flows through {n}.", f"{n} sits on the banks of the {rel['river']}."])))
        main.append(("", f"It was founded in {a['founded']} and grew around its old market square."))
    elif e.kind == "country":
        main.append(("", f"{n} is a country with about {a['population']:,} inhabitants."))
        if "capital" in rel:
            main.append(("capital", c([f"The capital of {n} is {rel['capital']}.", f"{rel['capital']} is the capital city of {n}."])))
        main.append(("", f"Its economy relies on {rng.choice(INDUSTRIES)} and {rng.choice(INDUSTRIES)}."))
    elif e.kind == "river":
        main.append(("", f"The {n} is a river about {a['length']} kilometres long."))
        main.append(("", c(["Its valley is known for vineyards and old mills.", "It freezes in hard winters.",
                            "Several hydroelectric dams regulate its flow."])))
    elif e.kind == "university":
        main.append(("", f"The {n} is a public university founded in {a['founded']}, known for {a['field']}."))
        main.append(("located_in", c([f"The {n} is located in {rel['located_in']}.", f"Its main campus is in {rel['located_in']}."])))
        main.append(("", f"It enrols about {a['students']:,} students."))
    elif e.kind == "company":
        main.append(("", f"{n} is a {a['industry']} company founded in {a['founded']}."))
        main.append(("headquarters", c([f"{n} is headquartered in {rel['headquarters']}.",
                                        f"The headquarters of {n} are in {rel['headquarters']}.",
                                        f"{n} has its head office in {rel['headquarters']}."])))
        tgt = second if rng.random() < 0.5 else main
        tgt.append(("founder", c([f"{n} was founded by {rel['founder']}.", f"{rel['founder']} started {n} in {a['founded']}."])))
        tgt.append(("", f"The company employs about {a['employees']:,} people."))
    else:  # band
        main.append(("", f"{n} is a {a['genre']} band that has released {a['albums']} albums."))
        main.append(("formed_in", c([f"{n} was formed in {rel['formed_in']} in {a['formed']}.",
                                     f"The band {n} formed in {rel['formed_in']}."])))
    for sentence in rng.sample(FILLER, 2):
        main.insert(rng.randint(1, len(main)), ("", sentence.format(n=n)))
    # a distractor mention: another entity named without the relation a question asks for
    other = w.pick(rng.choice(["person", "company", "city"]))
    if other.name != n:
        main.append(("", c([f"It is sometimes confused with {other.name}.", f"{other.name} is mentioned in local records as well.",
                            f"A profile of {other.name} appeared in the same year."])))
    return main, second


QUESTIONS = [
    # (kind, first relation, second relation, template, category)
    ("person", "born_in", "located_in", "In which country is the city where {n} was born?", "birth-country"),
    ("person", "employer", "headquarters", "In which city is the company that {n} works for headquartered?", "employer-hq"),
    ("person", "alma_mater", "located_in", "In which city is the university where {n} studied?", "school-city"),
    ("company", "founder", "alma_mater", "Which university did the founder of {n} attend?", "founder-school"),
    ("band", "formed_in", "river", "Which river flows through the city where {n} was formed?", "band-river"),
    ("person", "spouse", "born_in", "Where was the spouse of {n} born?", "spouse-birth"),
]


def generate(passages: int, seed: int = 0, n_questions: int = 200, extra: float = 0.01) -> dict:
    """The corpus, the extra documents and the questions as Python objects."""
    rng = random.Random(seed)
    n_entities = max(20, int(passages / 1.25))
    world = World(int(n_entities * (1 + extra) + 2), rng)
    names = list(world.entities)
    rng.shuffle(names)
    docs: list[dict] = []
    where: dict[tuple[str, str], str] = {}  # (entity, relation) → id of the document stating it
    for name in names:
        e = world.entities[name]
        main, second = _sentences(e, world, rng)
        slug = f"{e.kind}-{len(docs):07d}"
        docs.append({"id": slug, "title": name, "text": " ".join(s for _, s in main)})
        where.update({(name, r): slug for r, s in main if r})
        if second:
            sid = f"{slug}-b"
            title = f"{name} ({'career' if e.kind == 'person' else 'history'})"
            docs.append({"id": sid, "title": title, "text": " ".join(s for _, s in second)})
            where.update({(name, r): sid for r, s in second if r})
        if len(docs) >= passages * (1 + extra):
            break
    n_main = min(len(docs), passages)
    corpus, extra_docs = docs[:n_main], docs[n_main:]
    if corpus and corpus[-1]["id"].endswith("-b") is False and extra_docs and extra_docs[0]["id"].endswith("-b"):
        extra_docs = extra_docs[1:]  # keep an entity's two articles together in the main corpus
    in_corpus = {d["id"] for d in corpus}
    questions = []
    candidates = [(name, q) for name in names for q in QUESTIONS if world.entities[name].kind == q[0]]
    rng.shuffle(candidates)
    for name, (kind, r1, r2, template, category) in candidates:
        e = world.entities[name]
        if r1 not in e.rel:
            continue
        bridge = world.entities[e.rel[r1]]
        if r2 not in bridge.rel:
            continue
        gold = [where.get((name, r1)), where.get((bridge.name, r2))]
        if None in gold or not all(g in in_corpus for g in gold) or gold[0] == gold[1]:
            continue
        questions.append({"id": f"q{len(questions):05d}", "question": template.format(n=name),
                          "answer": bridge.rel[r2], "gold": gold, "category": category})
        if len(questions) >= n_questions:
            break
    return {"corpus": corpus, "extra": extra_docs, "questions": questions,
            "meta": {"passages": len(corpus), "extra": len(extra_docs), "questions": len(questions), "seed": seed,
                     "entities": len(world.entities)}}


def write(out: Path, passages: int, seed: int = 0, n_questions: int = 200, extra: float = 0.01) -> dict:
    data = generate(passages, seed, n_questions, extra)
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.json").write_text(json.dumps(data["corpus"], ensure_ascii=False), encoding="utf-8")
    (out / "extra.json").write_text(json.dumps(data["extra"], ensure_ascii=False), encoding="utf-8")
    with (out / "questions.jsonl").open("w", encoding="utf-8") as fh:
        for q in data["questions"]:
            fh.write(json.dumps(q, ensure_ascii=False) + "\n")
    (out / "meta.json").write_text(json.dumps(data["meta"], indent=1), encoding="utf-8")
    return data["meta"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=10_000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--questions", type=int, default=200)
    ap.add_argument("--extra", type=float, default=0.01, help="share of extra documents for the add test (default 0.01)")
    args = ap.parse_args(argv)
    print(json.dumps(write(args.out, args.passages, args.seed, args.questions, args.extra)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
