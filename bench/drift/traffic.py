"""Seeded generators of chat traffic for the drift benchmark: ordinary requests (English IT-support
and account questions), the shifted kinds (another topic, French, three times longer), and the
fake model's answers (ordinary ones and refusals).

Every kind of request is built from the same frame, so a shift moves one thing:

    [system prompt]  [earlier turn]  user: greeting, problem, 0-3 details, question, sign-off

`Requests(kind, seed)` makes request bodies; `Answers(seed)` makes the answer text, its finish
reason and a latency (the fake upstream sleeps that long, and the reference file records it), so
the reference and live traffic come from one model of "ordinary".
"""

from __future__ import annotations

import math
import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from faker import Faker

KINDS = ("ordinary", "topic", "language", "long")
TOPICS = ("cooking", "travel")

# -- English IT support: the ordinary traffic -----------------------------------------------------
IT = {
    "problems": (
        "I can't log in to my account since {day}.",
        "The password reset email never arrives at {email}.",
        "My two-factor codes from the authenticator app are always rejected.",
        "The mobile app crashes as soon as I open the {section} page on my {device}.",
        "I was charged {amount} twice on my last invoice ({invoice}).",
        "My account {username} was locked after a few failed sign-in attempts.",
        "I want to change the email address on my account to {email}.",
        "The VPN client disconnects every few minutes on my {device}.",
        "I can't connect to the office Wi-Fi since the update on {day}.",
        "Outlook keeps asking for my password on my {device}.",
        "The shared drive says I don't have permission to open the {folder} folder.",
        "My subscription was renewed on {date} although I cancelled it.",
        "I'd like to add {name} as a second user on our {plan} plan.",
        "The printer on the {floor} floor shows as offline for everyone.",
        "I get error {code} every time I try to sync my files.",
        "The invoice {invoice} shows the wrong company address.",
        "My laptop has been very slow since the last Windows update.",
        "I can't download my data export; the link says it has expired.",
        "The single sign-on page keeps looping back to the login screen.",
        "I need to reset the PIN for my account.",
        "My new {device} doesn't show up in the device list of my account.",
        "The app says my licence for {product} has expired, but we paid on {date}.",
    ),
    "details": (
        "I already tried restarting the {device} and clearing the cache.",
        "This started after I changed my password on {day}.",
        "My username is {username} and the account email is {email}.",
        "I have tried two different browsers, Chrome and Firefox.",
        'The error message says "{errmsg}".',
        "Other people on my team ({name} and {name2}) have the same problem.",
        "It worked fine until last week.",
        "We are on the {plan} plan and pay monthly.",
        "My ticket number from last time was {ticket}.",
        "I need this fixed before my meeting {when}.",
        "I'm using version {version} of the app.",
        "I reinstalled the app but nothing changed.",
    ),
    "asks": (
        "Can you help me fix this?",
        "What should I do next?",
        "Could you reset it for me?",
        "Is there a known issue on your side?",
        "How long will this take to resolve?",
        "Can you please check my account?",
        "What am I doing wrong?",
        "Could you look into it today?",
    ),
    "greetings": ("Hi,", "Hello,", "Hi there,", "Good morning,", "", "", "Hey,", "Dear support,"),
    "signoffs": ("Thanks!", "Thank you.", "Thanks, {first}", "", "", "Best regards, {name}", "Many thanks."),
    "systems": (
        "You are a helpful support assistant for {company}. Answer briefly and politely.",
        "You are {company}'s IT helpdesk assistant. Give clear, numbered steps when you can.",
        "You answer customer account and billing questions for {company}. Never ask for passwords.",
    ),
}

# -- Another topic, same frame and lengths ---------------------------------------------------------
COOKING = {
    **IT,
    "problems": (
        "My sourdough bread never rises properly, even after {hours} hours.",
        "I want to make {dish} for {n} people on {day}.",
        "My cookies always spread out flat in the oven at {temp} degrees.",
        "The sauce for my {dish} splits every time I add the butter.",
        "I only have {ingredient} and {ingredient2} left in the fridge.",
        "My risotto always turns out gluey and heavy instead of creamy.",
        "I'd like to replace the eggs in a {dish} recipe for a friend with an allergy.",
        "The crust of my apple pie always gets soggy at the bottom.",
        "I bought a cast iron pan last month and everything sticks to it.",
        "My rice is always either burnt at the bottom or undercooked.",
        "I want to cook {dish} but my oven broke on {day}.",
        "My homemade pasta breaks apart when I roll it thin.",
        "The caramel crystallises in the pan every time I try to make it.",
        "I'm planning a dinner for {name}'s birthday on {date}.",
        "My chocolate cake sinks in the middle once it cools down.",
        "I want to bake a proper loaf of bread at home without a stand mixer.",
        "The chicken in my {dish} always comes out dry.",
        "My pancakes come out flat and rubbery instead of thick and fluffy.",
        "I'd like to make {dish} two days ahead and freeze it for the party.",
        "My vegetable soup still tastes bland no matter what I add to the pot.",
        "The meringue for my lemon tart weeps after an hour.",
        "I need a quick lunch idea with {ingredient} for the kids.",
    ),
    "details": (
        "I already tried a longer resting time and a warmer spot.",
        "This started after I switched to another brand of {ingredient}.",
        "The recipe I follow is from {name}'s food blog.",
        "I have tried two different ovens, gas and electric.",
        "The recipe says to use {grams} grams of flour.",
        "My guests ({name} and {name2}) are both vegetarian.",
        "It turned out fine the first time I made it last month.",
        "I cook on an induction hob with cheap pans.",
        "My grandmother's recipe uses {ingredient} instead.",
        "I need this ready before dinner {when}.",
        "I live at high altitude in the mountains, if that matters.",
        "I followed the recipe exactly, twice, with fresh ingredients.",
    ),
    "asks": (
        "Can you help me fix this?",
        "What should I do next?",
        "Could you suggest a recipe?",
        "What am I doing wrong?",
        "How long should it cook for?",
        "Can you suggest a substitute?",
        "Which spices would you add?",
        "Could you give me a simple plan?",
    ),
}

TRAVEL = {
    **IT,
    "problems": (
        "My flight {flight} to {city} was cancelled on {day}.",
        "I want to plan a week in {city} for {n} people in {month}.",
        "The hotel in {city} charged my card {amount} for a night I never stayed.",
        "My luggage didn't arrive with flight {flight} from {city}.",
        "I need a visa for {country} and my trip starts on {date}.",
        "The train from {city} to {city2} was delayed by three hours.",
        "I'd like to change the dates of my booking {booking} to {date}.",
        "My rental car in {city} was not ready when I landed.",
        "I can't find a seat next to my child on flight {flight}.",
        "I'm looking for a quiet beach town near {city} for a long weekend.",
        "Our tour guide in {city} never showed up on {day}.",
        "I want to travel from {city} to {city2} by train with a dog.",
        "My passport expires in {month} and I fly to {country} soon.",
        "The airline lost my wheelchair booking for flight {flight}.",
        "I'd like a budget itinerary for {n} days in {country}.",
        "We missed our connection in {city} because the first flight was late.",
        "The hotel in {city} has no record of my reservation {booking}.",
        "I need to cancel my trip to {country} because I'm ill.",
        "I'm visiting {city} in {month} and want to avoid the crowds.",
        "My travel insurance refuses to pay for the cancelled cruise.",
        "I want to take my parents to {country} by car.",
        "Which part of {city} is best to stay in with small kids?",
    ),
    "details": (
        "I already tried calling the airline twice this morning.",
        "This is the second time it happened with them on {day}.",
        "The booking reference is {booking} and it is under {name}.",
        "We are travelling with two children and a dog.",
        "The agent said there was nothing they could do.",
        "My friends ({name} and {name2}) are booked on the same trip.",
        "It was all confirmed by email last week.",
        "We have a budget of about {amount} per person.",
        "My loyalty number is {ticket}.",
        "I need an answer before my trip {when}.",
        "We don't speak the local language at all.",
        "I booked everything through a travel agency.",
    ),
    "asks": (
        "Can you help me sort this out?",
        "What should I do next?",
        "Could you suggest an itinerary?",
        "Am I entitled to a refund?",
        "How long will the trip take?",
        "Can you recommend somewhere to stay?",
        "What are my options now?",
        "Could you give me a simple plan?",
    ),
}

# -- The ordinary traffic in French --------------------------------------------------------------------
FRENCH_IT = {
    "problems": (
        "Je n'arrive plus à me connecter à mon compte depuis {day}.",
        "L'e-mail de réinitialisation du mot de passe n'arrive jamais sur {email}.",
        "Mes codes de double authentification sont toujours refusés.",
        "L'application mobile plante dès que j'ouvre la page {section} sur mon {device}.",
        "On m'a facturé {amount} deux fois sur ma dernière facture ({invoice}).",
        "Mon compte {username} a été bloqué après quelques essais de connexion.",
        "Je voudrais changer l'adresse e-mail de mon compte pour {email}.",
        "Le client VPN se déconnecte toutes les deux minutes sur mon {device}.",
        "Je ne peux plus me connecter au Wi-Fi du bureau depuis la mise à jour de {day}.",
        "Outlook me redemande sans cesse mon mot de passe sur mon {device}.",
        "Le lecteur partagé dit que je n'ai pas le droit d'ouvrir le dossier {folder}.",
        "Mon abonnement a été renouvelé le {date} alors que je l'avais résilié.",
        "Je voudrais ajouter {name} comme deuxième utilisateur de notre offre {plan}.",
        "L'imprimante du {floor} étage apparaît hors ligne pour tout le monde.",
        "J'obtiens l'erreur {code} à chaque synchronisation de mes fichiers.",
        "La facture {invoice} indique une mauvaise adresse de société.",
        "Mon ordinateur est très lent depuis la dernière mise à jour de Windows.",
        "Je ne peux pas télécharger l'export de mes données ; le lien a expiré.",
        "La page d'authentification unique me renvoie sans cesse à l'écran de connexion.",
        "Je dois réinitialiser le code PIN de mon compte.",
        "Mon nouveau {device} n'apparaît pas dans la liste des appareils de mon compte.",
        "L'application dit que ma licence {product} a expiré, mais nous avons payé le {date}.",
    ),
    "details": (
        "J'ai déjà redémarré le {device} et vidé le cache.",
        "Le problème a commencé après le changement de mot de passe de {day}.",
        "Mon identifiant est {username} et l'e-mail du compte est {email}.",
        "J'ai essayé deux navigateurs, Chrome et Firefox.",
        "Le message d'erreur dit « {errmsg} ».",
        "D'autres personnes de mon équipe ({name} et {name2}) ont le même problème.",
        "Tout fonctionnait bien jusqu'à la semaine dernière.",
        "Nous avons l'offre {plan} avec un paiement mensuel.",
        "Mon numéro de ticket de la dernière fois était {ticket}.",
        "J'ai besoin que ce soit réglé avant ma réunion {when}.",
        "J'utilise la version {version} de l'application.",
        "J'ai réinstallé l'application mais rien n'a changé.",
    ),
    "asks": (
        "Pouvez-vous m'aider à régler ça ?",
        "Que dois-je faire maintenant ?",
        "Pourriez-vous le réinitialiser pour moi ?",
        "Y a-t-il un problème connu de votre côté ?",
        "Combien de temps faudra-t-il pour résoudre ça ?",
        "Pouvez-vous vérifier mon compte, s'il vous plaît ?",
        "Qu'est-ce que je fais de travers ?",
        "Pourriez-vous regarder ça aujourd'hui ?",
    ),
    "greetings": ("Bonjour,", "Bonjour,", "Salut,", "Bonsoir,", "", "", "Bonjour à vous,", "Madame, Monsieur,"),
    "signoffs": ("Merci !", "Merci beaucoup.", "Merci, {first}", "", "", "Cordialement, {name}", "Bonne journée."),
    # The system prompt stays the English template the deployment uses (language and topic read
    # the last user message only; see interlock.observe.drift.features).
    "systems": IT["systems"],
}

SECTIONS = ("Billing", "Settings", "Profile", "Security", "Notifications", "Reports", "Dashboard")
DEVICES = ("iPhone", "Android phone", "Windows laptop", "MacBook", "iPad", "Chromebook", "work PC")
PLANS = ("Basic", "Team", "Business", "Pro", "Enterprise")
FLOORS = ("second", "third", "fourth", "fifth", "ground")
FLOORS_FR = ("deuxième", "troisième", "quatrième", "cinquième", "premier")
FOLDERS = ("Finance", "HR", "Projects", "Marketing", "Legal", "Shared")
ERRORS = (
    "Something went wrong. Please try again later.",
    "Invalid credentials.",
    "Session expired.",
    "Access denied (403).",
    "Unable to reach the server.",
    "Your account is temporarily locked.",
)
ERRORS_FR = (
    "Une erreur est survenue. Veuillez réessayer plus tard.",
    "Identifiants invalides.",
    "Session expirée.",
    "Accès refusé (403).",
    "Impossible de joindre le serveur.",
    "Votre compte est temporairement bloqué.",
)
WHENS = ("tomorrow morning", "this afternoon", "on Monday", "at 3 pm", "later today", "on Friday")
WHENS_FR = ("demain matin", "cet après-midi", "lundi", "à 15 h", "plus tard aujourd'hui", "vendredi")
DAYS = ("yesterday", "Monday", "this morning", "last Friday", "the weekend", "two days ago")
DAYS_FR = ("hier", "lundi", "ce matin", "vendredi dernier", "le week-end", "avant-hier")
DISHES = ("lasagne", "a vegetable curry", "paella", "banana bread", "a roast chicken", "ratatouille", "carrot cake")
INGREDIENTS = ("butter", "flour", "yeast", "rice", "chickpeas", "spinach", "mushrooms", "eggs", "cream", "lentils")
_FORMATTER = string.Formatter()
MONTHS = ("March", "May", "July", "August", "October", "December")


@dataclass(frozen=True, slots=True)
class Pools:
    problems: Sequence[str]
    details: Sequence[str]
    asks: Sequence[str]
    greetings: Sequence[str]
    signoffs: Sequence[str]
    systems: Sequence[str]


def _pools(table: dict[str, Sequence[str]]) -> Pools:
    return Pools(**{name: table[name] for name in Pools.__slots__})


class Requests:
    """Chat completion request bodies of one kind, reproducible from `seed`.

    - `ordinary`: English IT-support and account questions;
    - `topic`: the same frame and lengths about `topic` (cooking or travel);
    - `language`: the ordinary questions written in French;
    - `long`: the user's message is three ordinary ones, one after the other (as when someone
      pastes several questions at once): three times as long on average.
    """

    def __init__(self, kind: str, seed: int, model: str, topic: str = "cooking") -> None:
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        self.kind = kind
        self.model = model
        self._rng = random.Random(seed)
        french = kind == "language"
        self._fake = Faker("fr_FR" if french else "en_US")
        self._fake.seed_instance(seed)
        self._fake_en = Faker("en_US")  # companies in the (English) system prompt
        self._fake_en.seed_instance(seed + 1)
        if kind == "topic":
            self._pools = _pools({"cooking": COOKING, "travel": TRAVEL}[topic])
        else:
            self._pools = _pools(FRENCH_IT if french else IT)
        self._slots = self._slot_makers(french)

    def __call__(self) -> dict[str, Any]:
        rng = self._rng
        messages: list[dict[str, str]] = []
        if rng.random() < 0.7:
            system = rng.choice(self._pools.systems).format(company=self._fake_en.company())
            messages.append({"role": "system", "content": system})
        if rng.random() < 0.15:  # a follow-up: one earlier exchange
            messages.append({"role": "user", "content": self._user_text()})
            messages.append({"role": "assistant", "content": Answers.paragraph(rng, rng.randint(1, 3))})
        user = "\n\n".join(self._user_text() for _ in range(3)) if self.kind == "long" else self._user_text()
        messages.append({"role": "user", "content": user})
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if rng.random() < 0.5:
            body["temperature"] = rng.choice((0.0, 0.2, 0.7, 1.0))
        return body

    def _user_text(self) -> str:
        rng, p = self._rng, self._pools
        details = rng.sample(list(p.details), rng.choices((0, 1, 2, 3), weights=(3, 4, 3, 1))[0])
        parts = [rng.choice(p.greetings), rng.choice(p.problems), *details, rng.choice(p.asks), rng.choice(p.signoffs)]
        return " ".join(self._fill(part) for part in parts if part)

    def _fill(self, template: str) -> str:
        if "{" not in template:
            return template
        names = {name for _, name, _, _ in _FORMATTER.parse(template) if name}
        return template.format(**{name: self._slots[name]() for name in names})

    def _slot_makers(self, french: bool) -> dict[str, Callable[[], str]]:
        rng, fake = self._rng, self._fake

        def pick(values: Sequence[str]) -> Callable[[], str]:
            return lambda: rng.choice(values)

        return {
            "day": pick(DAYS_FR if french else DAYS),
            "date": lambda: fake.date_between("-60d", "today").strftime("%d/%m/%Y" if french else "%B %d"),
            "email": fake.free_email,
            "section": pick(SECTIONS),
            "device": pick(DEVICES),
            "amount": lambda: f"{rng.uniform(5, 400):.2f} €" if french else f"${rng.uniform(5, 400):.2f}",
            "invoice": lambda: f"INV-{rng.randint(10_000, 99_999)}",
            "username": fake.user_name,
            "folder": pick(FOLDERS),
            "name": fake.name,
            "name2": fake.name,
            "first": fake.first_name,
            "plan": pick(PLANS),
            "floor": pick(FLOORS_FR if french else FLOORS),
            "code": lambda: f"{rng.choice('EW')}{rng.randint(100, 9999)}",
            "errmsg": pick(ERRORS_FR if french else ERRORS),
            "ticket": lambda: f"#{rng.randint(100_000, 999_999)}",
            "when": pick(WHENS_FR if french else WHENS),
            "version": lambda: f"{rng.randint(1, 9)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}",
            "product": lambda: fake.word().capitalize() + " " + rng.choice(("Suite", "Pro", "Cloud", "Desk")),
            "hours": lambda: str(rng.randint(4, 24)),
            "dish": pick(DISHES),
            "n": lambda: str(rng.randint(2, 12)),
            "temp": lambda: str(rng.choice((160, 170, 180, 190, 200, 220))),
            "ingredient": pick(INGREDIENTS),
            "ingredient2": pick(INGREDIENTS),
            "grams": lambda: str(rng.choice((250, 300, 400, 500, 750))),
            "flight": lambda: (
                f"{fake.random_uppercase_letter()}{fake.random_uppercase_letter()}{rng.randint(100, 9999)}"
            ),
            "city": fake.city,
            "city2": fake.city,
            "country": fake.country,
            "month": pick(MONTHS),
            "booking": lambda: fake.bothify("??#####").upper(),
        }


# -- The fake model's answers --------------------------------------------------------------------
ANSWER_SENTENCES = (
    "Thanks for reaching out, and sorry for the trouble.",
    "Here is what usually fixes this.",
    "First, sign out of every device and sign back in.",
    "Open Settings, then Security, and choose Reset password.",
    "Check your spam folder for a message from our support team.",
    "If the problem persists, clear the app's cache and restart it.",
    "I have checked the usual causes and nothing looks wrong on our side.",
    "You can update your billing details under Account, then Billing.",
    "Make sure your device's clock is set automatically, since the codes depend on it.",
    "A refund normally takes three to five business days to appear on your statement.",
    "Let me know if any of these steps does not work.",
    "You can also reach us by phone during business hours.",
    "Please make sure you are using the latest version of the app.",
    "An administrator on your team can unlock the account from the admin console.",
    "This is a known issue with the last update, and a fix is being rolled out.",
    "Once that is done, try again and it should work.",
    "If you see the same error, send us a screenshot and the time it happened.",
    "Your data stays safe while we look into this.",
)
REFUSALS = (
    "I'm sorry, but I can't help with that.",
    "I'm sorry, but I can't help with that request.",
    "I'm sorry, but I cannot assist with this.",
    "I can't help with that, but I can point you to our help centre.",
    "I'm unable to help with this request.",
    "Sorry, but I can't share that information.",
    "I apologize, but I cannot provide that.",
    "I'm not able to help with account changes here.",
    "I cannot assist with that request.",
    "I'm sorry, I can't do that for you.",
)
REFUSAL_TAILS = (
    "",
    " Please contact your administrator.",
    " If you have another question, I'm happy to help.",
    " You may want to ask a member of our support team directly.",
    " Is there something else I can do for you?",
)


@dataclass(frozen=True, slots=True)
class Answer:
    text: str
    finish_reason: str
    latency_ms: float


class Answers:
    """The fake model: an answer of varied length (finish reason `stop`, 3 % `length` when it ran
    out of tokens), a refusal for a `refuse` share of requests (1 % in ordinary traffic), and a
    latency that grows with the answer, as a model's does."""

    BASE_REFUSAL = 0.01
    TRUNCATED = 0.03

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)

    @staticmethod
    def paragraph(rng: random.Random, sentences: int) -> str:
        return " ".join(rng.choice(ANSWER_SENTENCES) for _ in range(sentences))

    def __call__(self, refuse: float = BASE_REFUSAL) -> Answer:
        rng = self._rng
        if rng.random() < refuse:
            text = rng.choice(REFUSALS) + rng.choice(REFUSAL_TAILS)
            reason = "stop"
        else:
            sentences = max(1, min(30, round(rng.lognormvariate(math.log(6), 0.5))))
            text = self.paragraph(rng, sentences)
            reason = "stop"
            if rng.random() < self.TRUNCATED:
                text = text[: max(20, len(text) * 2 // 3)]
                reason = "length"
        # Time to first token plus decoding at about 80 tokens/s, as a hosted model answers: a
        # second or two, so the gateway's own few milliseconds are well under the noise.
        tokens = len(text.encode()) / 4
        latency = (250 + 12 * tokens) * rng.lognormvariate(0, 0.2)
        return Answer(text, reason, latency)


def completion(model: str, answer: Answer, prompt_tokens: int) -> dict[str, Any]:
    """An OpenAI chat completion response body carrying `answer`."""
    completion_tokens = -(-len(answer.text.encode()) // 4)
    return {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer.text},
                "finish_reason": answer.finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def reference_records(count: int, seed: int, model: str) -> list[dict[str, Any]]:
    """Past traffic as `Profile.from_jsonl` reads it: request, response and latency a line."""
    requests, answers = Requests("ordinary", seed, model), Answers(seed + 1)
    records = []
    for _ in range(count):
        request = requests()
        answer = answers()
        response = completion(model, answer, 0)
        records.append({"request": request, "response": response, "latency_ms": round(answer.latency_ms, 1)})
    return records
