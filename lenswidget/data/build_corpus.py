"""Build ``corpus.txt``: the small public-domain text corpus shipped with lenswidget.

    python -m lenswidget.data.build_corpus      # rewrites lenswidget/data/corpus.txt (deterministic)

One document per line: the passages of ``prose.txt`` (short passages from public-domain works,
written out from memory, and sentences written for lenswidget), then sentences generated here
from templates about countries and capitals, people, numbers, dates, animals, food, colours,
science, code and dialogue, so that the trained SAE and the feature dashboard find clear
features. Everything written for lenswidget is dedicated to the public domain (CC0).
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

CAPITALS = [
    ("France", "Paris", "French"), ("Germany", "Berlin", "German"), ("Italy", "Rome", "Italian"),
    ("Spain", "Madrid", "Spanish"), ("Portugal", "Lisbon", "Portuguese"), ("Japan", "Tokyo", "Japanese"),
    ("China", "Beijing", "Chinese"), ("Russia", "Moscow", "Russian"), ("Egypt", "Cairo", "Arabic"),
    ("Greece", "Athens", "Greek"), ("Austria", "Vienna", "German"), ("Poland", "Warsaw", "Polish"),
    ("Sweden", "Stockholm", "Swedish"), ("Norway", "Oslo", "Norwegian"), ("Denmark", "Copenhagen", "Danish"),
    ("Finland", "Helsinki", "Finnish"), ("Ireland", "Dublin", "English"), ("Kenya", "Nairobi", "Swahili"),
    ("Peru", "Lima", "Spanish"), ("Chile", "Santiago", "Spanish"), ("Argentina", "Buenos Aires", "Spanish"),
    ("Canada", "Ottawa", "English"), ("Mexico", "Mexico City", "Spanish"), ("Brazil", "Brasilia", "Portuguese"),
    ("India", "New Delhi", "Hindi"), ("Thailand", "Bangkok", "Thai"), ("Turkey", "Ankara", "Turkish"),
    ("Hungary", "Budapest", "Hungarian"), ("Belgium", "Brussels", "Dutch"), ("Netherlands", "Amsterdam", "Dutch"),
    ("Cuba", "Havana", "Spanish"), ("Australia", "Canberra", "English"), ("South Korea", "Seoul", "Korean"),
    ("Vietnam", "Hanoi", "Vietnamese"), ("Iran", "Tehran", "Persian"), ("Morocco", "Rabat", "Arabic"),
    ("Nigeria", "Abuja", "English"), ("Colombia", "Bogota", "Spanish"), ("Czechia", "Prague", "Czech"),
    ("Romania", "Bucharest", "Romanian"), ("Ukraine", "Kyiv", "Ukrainian"), ("Switzerland", "Bern", "German"),
    ("Scotland", "Edinburgh", "English"), ("England", "London", "English"), ("Iceland", "Reykjavik", "Icelandic"),
    ("Ethiopia", "Addis Ababa", "Amharic"), ("Indonesia", "Jakarta", "Indonesian"), ("Philippines", "Manila", "Filipino"),
]
FIRST = ["Mary", "John", "Alice", "Bob", "Sarah", "James", "Emma", "David", "Laura", "Michael", "Anna", "Thomas",
         "Lucy", "Peter", "Grace", "Daniel", "Sophie", "George", "Hannah", "William", "Clara", "Henry", "Olivia",
         "Samuel", "Rosa", "Oscar", "Mia", "Jack", "Ruth", "Paul", "Nora", "Leo", "Ella", "Max", "Ivy", "Adam"]
LAST = ["Smith", "Brown", "Taylor", "Wilson", "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Green",
        "Baker", "Hill", "Moore", "Turner", "Carter", "Parker", "Evans", "Cooper"]
PLACES = ["store", "park", "school", "station", "library", "market", "beach", "museum", "garden", "hospital",
          "office", "cafe", "bakery", "theatre", "river", "forest"]
OBJECTS = ["book", "drink", "ball", "letter", "gift", "key", "pencil", "flower", "ticket", "cake", "map", "coin"]
ANIMALS = ["cat", "dog", "horse", "fox", "rabbit", "owl", "bear", "wolf", "mouse", "eagle", "whale", "lion",
           "tiger", "goat", "duck", "frog", "deer", "sheep"]
MOVES = ["ran", "jumped", "walked", "swam", "crept", "raced", "wandered", "flew", "hurried", "slept"]
FOODS = ["bread", "cheese", "apples", "soup", "rice", "pasta", "oranges", "honey", "eggs", "tomatoes", "beans",
         "chocolate", "pears", "carrots", "potatoes", "fish"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "black", "white", "grey", "pink", "brown"]
THINGS = ["car", "door", "dress", "house", "umbrella", "bicycle", "hat", "boat", "kite", "coat", "chair", "cup"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
JOBS = ["doctor", "teacher", "farmer", "engineer", "painter", "nurse", "pilot", "baker", "lawyer", "writer",
        "musician", "chemist"]
INSTRUMENTS = ["piano", "violin", "guitar", "flute", "drums", "cello", "trumpet", "harp"]
SPORTS = ["football", "tennis", "chess", "basketball", "swimming", "cricket", "rugby", "golf"]
FEELINGS = [("happy", "smiled"), ("sad", "sighed"), ("angry", "shouted"), ("afraid", "trembled"),
            ("tired", "yawned"), ("surprised", "gasped"), ("excited", "laughed"), ("worried", "frowned")]
SCIENCE = [
    "Water boils at 100 degrees Celsius at sea level.", "Water freezes at 0 degrees Celsius.",
    "The Earth orbits the Sun once every year.", "The Moon orbits the Earth about once a month.",
    "Light travels faster than sound.", "Plants use sunlight to turn water and carbon dioxide into sugar.",
    "The heart pumps blood through the body.", "Iron is a metal that rusts when it meets water and air.",
    "An atom has a nucleus made of protons and neutrons.", "Oxygen makes up about a fifth of the air.",
    "The chemical symbol for gold is Au.", "The chemical symbol for sodium is Na.",
    "A triangle has three sides and a square has four.", "Sound cannot travel through empty space.",
    "Mars is the fourth planet from the Sun.", "Jupiter is the largest planet in the solar system.",
    "Diamonds are made of carbon.", "The human body has two hundred and six bones.",
]
CODE = [
    "def add(a, b):\n    return a + b", "for i in range(10):\n    print(i)", "x = [1, 2, 3]\ny = sum(x)",
    "if x > 0:\n    print('positive')\nelse:\n    print('negative')", "import math\nprint(math.sqrt(16))",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y",
    "while n > 1:\n    n = n // 2", "names = ['a', 'b']\nfor name in names:\n    print(name.upper())",
    "def square(x):\n    return x * x", "result = {k: v for k, v in pairs}", "with open('data.txt') as f:\n    text = f.read()",
    "try:\n    value = int(s)\nexcept ValueError:\n    value = 0",
]


def _countries(rng):
    out = []
    for country, capital, language in CAPITALS:
        other = rng.choice(CAPITALS)
        out += [
            f"The capital of {country} is {capital}.",
            f"{capital} is the capital city of {country}.",
            f"Many tourists visit {capital}, the capital of {country}, every summer.",
            f"In {country}, most people speak {language}.",
            f"She took a train from {capital} to {other[1]} last week.",
            f"The government of {country} meets in {capital}.",
            f"He was born in {capital} but grew up in {other[0]}.",
            f"Q: What is the capital of {country}? A: {capital}.",
        ]
    return out


def _people(rng):
    out = []
    for _ in range(260):
        a, b = rng.sample(FIRST, 2)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        last = rng.choice(LAST)
        job = rng.choice(JOBS)
        out.append(rng.choice([
            f"When {a} and {b} went to the {place}, {b} gave a {obj} to {a}.",
            f"After {a} and {b} arrived at the {place}, {a} handed the {obj} to {b}.",
            f"{a} {last} works as a {job} in a small town.",
            f"Yesterday {a} called {b} to talk about the {obj}.",
            f"{a} and {b} met at the {place} on a rainy afternoon.",
            f"Then, {a} and {b} had a long argument, and afterwards {a} said sorry to {b}.",
            f"Dr. {last} asked {a} to wait outside the {place}.",
            f"{a} told {b} that the {obj} was on the table.",
        ]))
    return out


def _numbers(rng):
    out = []
    for _ in range(200):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        n, year = rng.randint(2, 40), rng.randint(1700, 2020)
        food = rng.choice(FOODS)
        out.append(rng.choice([
            f"{a} + {b} = {a + b}.", f"{a} x {b} = {a * b}.", f"{a + b} - {b} = {a}.",
            f"There are {n} {food} in the basket.", f"The bridge was built in {year}.",
            f"She bought {n} tickets for {a} dollars each.", f"In {year}, the town had {a * 100} people.",
            f"The train leaves at {rng.randint(1, 12)}:{rng.randint(10, 59)} and arrives {n} minutes later.",
            f"Chapter {n} begins on page {a * 3}.", f"The temperature today is {rng.randint(-5, 35)} degrees.",
        ]))
    return out


def _dates(rng):
    out = []
    for _ in range(120):
        day, month, d = rng.choice(DAYS), rng.choice(MONTHS), rng.randint(1, 28)
        name = rng.choice(FIRST)
        out.append(rng.choice([
            f"The meeting is on {day}, {month} {d}.", f"{name} was born on {month} {d}.",
            f"Every {day} the market opens early.", f"The school year starts in {month}.",
            f"We will see you next {day}.", f"In {month} the days grow {rng.choice(['longer', 'shorter'])}.",
        ]))
    return out


def _nature(rng):
    out = []
    for _ in range(220):
        animal, move, place = rng.choice(ANIMALS), rng.choice(MOVES), rng.choice(PLACES)
        colour, thing, food = rng.choice(COLOURS), rng.choice(THINGS), rng.choice(FOODS)
        name = rng.choice(FIRST)
        out.append(rng.choice([
            f"The {animal} {move} across the {place}.", f"A small {colour} {animal} sat near the {thing}.",
            f"{name} painted the {thing} {colour}.", f"Her favourite colour is {colour}.",
            f"The {animal} likes to eat {food}.", f"For dinner we had {food} and {rng.choice(FOODS)}.",
            f"{name} bought some {food} at the market.", f"The {thing} was {colour} and {rng.choice(COLOURS)}.",
            f"{name} plays the {rng.choice(INSTRUMENTS)} every evening.", f"{name} loves watching {rng.choice(SPORTS)}.",
            f"It rained all day, so the {animal} stayed inside.", f"The sky turned {colour} as the sun went down.",
        ]))
    return out


def _dialogue(rng):
    out = []
    for _ in range(140):
        name, (feeling, verb) = rng.choice(FIRST), rng.choice(FEELINGS)
        other = rng.choice(FIRST)
        out.append(rng.choice([
            f'"I am so {feeling} today," said {name}.', f"{name} {verb} when {other} walked in.",
            f'"Where are you going?" asked {name}. "To the {rng.choice(PLACES)}," replied {other}.',
            f"{name} felt {feeling} because the {rng.choice(OBJECTS)} was lost.",
            f'"Thank you very much," {name} said to {other}.', f'"Can you help me?" {name} asked quietly.',
        ]))
    return out


def build() -> list:
    rng = random.Random(2024)
    prose = [line.strip() for line in (HERE / "prose.txt").read_text().splitlines() if line.strip()]
    generated = (_countries(rng) + _people(rng) + _numbers(rng) + _dates(rng) + _nature(rng) + _dialogue(rng)
                 + SCIENCE + CODE)
    rng.shuffle(generated)
    # group generated sentences into short documents of 1-4 sentences (code stays on its own)
    docs, i = [], 0
    while i < len(generated):
        n = rng.randint(1, 4)
        chunk = generated[i:i + n]
        i += n
        docs.append(" ".join(chunk) if not any("\n" in c for c in chunk) else "\n".join(chunk))
    return prose + docs


def main() -> None:
    docs = build()
    text = "\n\n".join(d.replace("\n\n", "\n") for d in docs) + "\n"
    (HERE / "corpus.txt").write_text(text)
    print(f"wrote {len(docs)} documents, {len(text)} characters to {HERE / 'corpus.txt'}")


if __name__ == "__main__":
    main()
