"""A retrieval corpus with known answers, generated deterministically: product sheets of made-up
brands, each stating a handful of facts among filler copy, and questions about one fact each.

Not trivial on purpose: every document states the same kinds of fact (a warranty, a weight, a
launch city...), brands make several products and product types recur across brands, so the
nearest document by topic is usually the wrong one, and product lines come in models ("Pro",
"Lite") whose sheets differ only in their facts; facts and questions are worded from
different templates (a question rarely repeats its sentence's words); and filler paragraphs make
documents several chunks long, so the right chunk, not only the right document, has to be found.

A retrieved chunk answers a question when it comes from the question's document and contains the
answer's value as written there.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SYLLABLES = ["vel", "trix", "quo", "ra", "na", "zen", "dor", "ka", "lum", "ex", "fi", "mo", "tal", "bri", "sto", "vin",
             "cor", "pha", "lis", "gen", "dra", "mir", "oss", "tek"]  # fmt: skip
PRODUCTS = ["kettle", "e-bike", "drone", "espresso machine", "robot vacuum", "smartwatch", "air purifier",
            "electric scooter", "blender", "projector", "headset", "camping stove", "3D printer", "dehumidifier"]  # fmt: skip
CITIES = ["Lisbon", "Osaka", "Denver", "Tallinn", "Nairobi", "Porto Alegre", "Krakow", "Adelaide", "Montreal",
          "Seville", "Tbilisi", "Hanoi", "Bergen", "Cordoba", "Leipzig", "Busan"]  # fmt: skip
COUNTRIES = ["Portugal", "Vietnam", "Mexico", "Poland", "Malaysia", "Morocco", "Romania", "Chile", "Taiwan",
             "Slovakia", "Turkey", "Thailand"]  # fmt: skip
FIRST = ["Amara", "Jonas", "Priya", "Mateo", "Ingrid", "Kwame", "Sofia", "Ren", "Lucia", "Tobias", "Noor", "Elif"]
MODELS = ["Mini", "Pro", "Lite", "Max", "Air", "Plus"]
LAST = ["Okafor", "Lindqvist", "Raman", "Ferreira", "Novak", "Haddad", "Kowalski", "Tanaka", "Moreau", "Brennan"]


@dataclass(frozen=True)
class Fact:
    kind: str
    value: str  # as written in the document; what an answering chunk contains
    statements: tuple[str, ...]  # templates with {name} and {v}
    questions: tuple[str, ...]


def facts(rng: random.Random) -> list[Fact]:
    months = str(rng.choice([6, 12, 18, 24, 30, 36, 48, 60]))
    hours = str(rng.randint(3, 40))
    weight = f"{rng.randint(2, 95) / 10:.1f}"
    price = str(rng.randint(29, 2400))
    year = str(rng.randint(2009, 2025))
    return [
        Fact("warranty", months,
             ("The {name} comes with a {v}-month warranty.", "Every {name} is covered against defects for {v} months.",
              "Repairs on the {name} are free for {v} months after purchase."),
             ("How long is the {name} guaranteed for?", "What warranty period applies to the {name}?",
              "For how many months are defects in the {name} covered?")),
        Fact("battery", hours,
             ("On a full charge the {name} runs for about {v} hours.", "Its battery keeps the {name} going for {v} hours.",
              "Expect roughly {v} hours of use from the {name} before it needs charging."),
             ("What is the battery life of the {name}?", "How many hours does the {name} last on one charge?",
              "How long can the {name} run before recharging?")),
        Fact("launch", rng.choice(CITIES),
             ("The {name} was first unveiled in {v}.", "{v} hosted the launch event of the {name}.",
              "The {name} made its debut at a trade fair in {v}."),
             ("Where was the {name} launched?", "In which city did the {name} premiere?",
              "Which city saw the first presentation of the {name}?")),
        Fact("designer", f"{rng.choice(FIRST)} {rng.choice(LAST)}",
             ("{v} led the design team behind the {name}.", "The {name} was designed by {v}.",
              "Industrial designer {v} drew the first sketches of the {name}."),
             ("Who designed the {name}?", "Which designer is responsible for the {name}?",
              "Who headed the design of the {name}?")),
        Fact("weight", weight,
             ("The {name} weighs {v} kg.", "At {v} kilograms, the {name} is easy to carry.",
              "Packed, the {name} tips the scales at {v} kg."),
             ("How heavy is the {name}?", "What does the {name} weigh?", "What is the mass of the {name} in kilograms?")),
        Fact("price", price,
             ("The {name} retails for {v} euros.", "List price of the {name}: {v} EUR.",
              "Shops sell the {name} at a recommended {v} euros."),
             ("How much does the {name} cost?", "What is the retail price of the {name}?",
              "What do stores charge for the {name}?")),
        Fact("factory", rng.choice(COUNTRIES),
             ("Units of the {name} are assembled in {v}.", "The {name} is manufactured in {v}.",
              "Production of the {name} takes place at a plant in {v}."),
             ("In which country is the {name} made?", "Where is the {name} manufactured?",
              "Which country builds the {name}?")),
        Fact("year", year,
             ("The {name} went on sale in {v}.", "Customers could first buy the {name} in {v}.",
              "Since {v} the {name} has been available in stores."),
             ("When did the {name} go on sale?", "In what year was the {name} released?",
              "Since which year can you buy the {name}?")),
    ]  # fmt: skip


FILLER = [
    "The {name} ships in recyclable packaging with a printed quick-start guide and a USB-C cable.",
    "Reviewers praised the {name} for its quiet operation, although some found the controls fiddly at first.",
    "A companion app lets owners of the {name} schedule routines, check usage statistics and install updates.",
    "The housing of the {name} is made of brushed aluminium and a matte polymer that resists fingerprints.",
    "Spare parts for the {name} can be ordered through authorised service partners in most regions.",
    "Accessibility features on the {name} include high-contrast indicators and tactile buttons.",
    "Firmware updates for the {name} arrive several times a year and add features as well as fixes.",
    "The {name} is available in three colours, with limited editions appearing around the holidays.",
    "Customer support for the {name} answers by chat, e-mail and phone on weekdays.",
    "Independent labs tested the {name} for safety and electromagnetic compatibility before release.",
    "Owners often pair the {name} with other devices from the same brand to share settings.",
    "Cleaning the {name} takes a few minutes; the manual recommends a soft cloth and no solvents.",
    "The {name} supports both metric and imperial units, switchable from its settings menu.",
    "A carrying case for the {name} is sold separately and protects it during travel.",
    "Energy labelling places the {name} among the more efficient devices in its class.",
    "The development of the {name} took several years of prototypes and field trials with early users.",
]


@dataclass(frozen=True)
class Document:
    id: str
    name: str
    text: str
    facts: dict[str, str]  # kind -> value


@dataclass(frozen=True)
class Question:
    text: str
    document: str  # the id of the document holding the answer
    answer: str


def brand(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.choice([2, 3]))).capitalize()


def build(documents: int = 300, questions: int = 300, seed: int = 15) -> tuple[list[Document], list[Question]]:
    rng = random.Random(seed)
    brands = sorted({brand(rng) for _ in range(documents // 8)})
    names: list[str] = []
    while len(names) < documents:
        name = f"{rng.choice(brands)} {rng.choice(PRODUCTS[: len(PRODUCTS) // 2])} {rng.choice(MODELS)}"
        if name not in names:
            names.append(name)
    docs, pool = [], []
    for i, name in enumerate(names):
        chosen = rng.sample(facts(rng), rng.randint(5, 7))
        fillers = rng.sample(FILLER, rng.randint(8, 12))
        sentences = [(f, rng.choice(f.statements).format(name=f"{name}", v=f.value)) for f in chosen]
        body = [s for _, s in sentences] + [t.format(name=rng.choice([name, "device", "product"])) for t in fillers]
        rng.shuffle(body)
        paragraphs = [" ".join(body[j : j + 4]) for j in range(0, len(body), 4)]
        text = f"{name} product sheet\n\n" + "\n\n".join(paragraphs)
        doc_id = f"doc{i:04d}"
        docs.append(Document(doc_id, name, text, {f.kind: f.value for f in chosen}))
        for f, statement in sentences:
            pool.append((doc_id, name, f, statement))
    asked = []
    for doc_id, name, f, _statement in rng.sample(pool, questions):
        # Question templates share few words with the statements (covered / guaranteed, unveiled / launched).
        template = rng.choice(f.questions)
        asked.append(Question(template.format(name=name), doc_id, f.value))
    return docs, asked
