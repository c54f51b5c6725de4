"""Offline knowledge-base answer engine: retrieval over a tenant's published articles.

Pure Python plus ``rapidfuzz`` (edit distances), no Django imports, no model download and
no network, so it is cheap to test and safe to run inside a Celery task. Deterministic:
the same articles and question always give the same answer.

How a question is answered:

1. **Analysis**, the same for articles and questions: Unicode/case normalisation, chat
   slang ("u", "pls", "whats"), a light suffix stemmer, a hand-written synonym/phrase
   table for a shop's help topics ("money back" -> ``refund``, "postage" -> ``ship``)
   and stopword removal. Incidental words (who it is for, when, which colour) are
   dropped; generic words ("order", "policy") and product names ("tent") count less.
   The shop's own name (a capitalised word many articles use) reads as "store" before a
   "store ..." phrase, so "<shop> credit card" is the shop's own card, not one it takes.
2. **Typo tolerance**, questions only: a word the articles never use is split into two
   known words ("giftcard") or corrected to a known word within a small edit distance
   ("shiping", "guarentee"). Corrections count a little less than typed words.
3. **Ranking**: BM25F (title and tags weigh more than the body) plus a bonus for words
   in an article's heading that are rare among headings.
4. **Confidence**: a logistic function of how much of the question's weight the best
   article covers, how strongly, how much of it sits in the title/tags, and how much of
   the question is vocabulary no article uses. A question about something the articles
   never mention ("what is your policy on pets") keeps its weight in unknown words and
   is declined; so is one whose only matches are generic words or product names, and
   one whose best article never mentions a help topic that carries much of the question
   ("cancel my rewards membership" against the rewards article). Articles also emit the
   answer types they state (a duration, a sum of money, a time of day), so "how long"
   and "how much" questions find the passage that says it.
5. **Extraction**: the reply is the most relevant paragraph of the best article, cut to
   its best sentences when long (the whole body when the article is short).

The confidence weights are fitted on the dev split of ``eval/knowledge``; run
``python -m eval.run`` after changing the vocabulary or the scoring.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import process
from rapidfuzz.distance import OSA

__all__ = [
    "DEFAULT_THRESHOLD",
    "Answer",
    "Doc",
    "KnowledgeIndex",
    "is_handoff_request",
]


@dataclass(frozen=True)
class Doc:
    """One published article."""

    id: int | str
    title: str
    body: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answer:
    """The engine's reply to one question.

    ``text`` is plain text extracted from the best article (empty when declined);
    ``confidence`` is in 0..1 and ``answered`` is ``confidence >= threshold``.
    """

    text: str
    article_ids: list
    article_titles: list[str]
    confidence: float
    answered: bool


DEFAULT_THRESHOLD = 0.5

# Longest question we analyse; anything longer is truncated (a chat message, not an essay).
MAX_QUESTION_CHARS = 1000

# --------------------------------------------------------------------------------------
# Vocabulary knowledge
# --------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    """A word list written as whitespace-separated text."""
    return frozenset(text.split())


# Function and question words: they say nothing about the topic. Short typos are only
# ever corrected towards these ("waht" -> "what").
FUNCTION_WORDS = _words(
    """
    a about above after again against all also am an and any anybody anyone anything
    anyway anyways are around as at be because been before being below between both but by
    can cannot could did do does doing done down during each either else even ever every
    few for from further had has have having he her here hers him his how however i if in
    into is it its itself just least let lets like many may maybe me might mine more most
    much must my myself neither never no nor not now of off often on once one only or other our
    ours out over own per please quite rather really same say says she should so some
    somebody someone something still such than that the their theirs them then there these
    they this those through thus to too under until up upon us very via was we were what
    whatever when whenever where wherever whether which while who whom whose why will with
    within without would yet you your yours yourself yourselves
    """
)
# Chat filler and incidental context (who it is for, when it happened, which colour, which
# state; Alaska and Hawaii are left out on purpose, they change shipping): real visitors
# add these to questions, but they never decide which article answers. Irregular forms of
# dropped verbs ("seen", "saw") go too. Weekday names say when ("ordered last tuesday");
# Saturday and Sunday still reach the weekend concept through the phrase table.
STOPWORDS = FUNCTION_WORDS | _words(
    """
    hi hello hey hiya heya yo ok okay k thanks thank cheers lol haha hmm um uh er yeah yes
    yep yup nope nah guys yall folks bro dude mate sir madam maam pls plz kinda sorta tbh
    btw idk fyi omg wow cool great awesome good nice sure basically actually literally
    honestly already again quick quickly question questions wondering wonder curious
    know tell want wanted wants need needs needed get gets got gotten getting go goes going
    went make makes made think thought see look looking looks try trying tried put give
    gave take took find found able possible way ways lot lots thing things stuff everything
    anything something there re ll ve d s t m im back nothing none whatever else
    last yesterday today tonight ago recently lately soon now certain right came come comes
    happen happens happened seen saw inside
    monday tuesday wednesday thursday friday mondays tuesdays wednesdays thursdays fridays
    mom mum dad mother father brother sister wife husband son daughter kid kids child
    children friend friends boyfriend girlfriend partner family wifey hubby bf gf
    black white blue red green yellow orange purple pink grey gray brown navy olive
    alabama arizona arkansas california colorado connecticut delaware florida georgia idaho
    illinois indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan
    minnesota mississippi missouri montana nebraska nevada ohio oklahoma oregon pennsylvania
    tennessee texas utah vermont virginia washington wisconsin wyoming
    """
)

# Words that belong to the domain but barely narrow down the topic ("what's your policy
# on X" is about X). They still rank, but count little towards confidence.
WEAK_WORDS = _words(
    """
    order item product policy info information online website site web option
    options buy new day days week weeks time times month months year years use used using
    work works working help people best sell sells selling carry carries offer offers
    provide provides redeem apply enter check bought buying purchased person forgot forget
    forgotten max maximum min minimum limit history different another
    two three four five six seven eight nine ten twenty hundred
    """
)
WEAK_WEIGHT = 0.35

# Gear and activity nouns say what the question is about, not which help topic answers
# it ("return boots", "warranty on backpacks"): they count for less than service words,
# and a question matching only these (and generic words) has no topic the articles cover.
PRODUCT_WORDS = _words(
    """
    tent tents backpack backpacks pack packs bag bags sleeping pad pads pole poles stove
    stoves boot boots shoe shoes jacket jackets coat coats pant pants trouser trousers
    shirt shirts fleece glove gloves hat hats sock socks snowshoe snowshoes ski skis
    kayak kayaks canoe canoes paddle bike bikes helmet headlamp hammock bottle bottles
    gear equipment clothing clothes apparel
    hike hikes hiking camp camping climb climbing backpacking trek trekking trail trails
    skiing snowboarding zipper zippers zip strap straps buckle buckles seam seams
    """
)
PRODUCT_WEIGHT = 0.5

# Chat spellings -> standard words (applied to single tokens before anything else).
SLANG = {
    "u": "you",
    "ya": "you",
    "ur": "your",
    "yr": "your",
    "r": "are",
    "y": "why",
    "plz": "please",
    "pls": "please",
    "plse": "please",
    "thx": "thanks",
    "ty": "thanks",
    "wanna": "want to",
    "gonna": "going to",
    "gotta": "got to",
    "dont": "do not",
    "doesnt": "does not",
    "didnt": "did not",
    "cant": "can not",
    "wont": "will not",
    "isnt": "is not",
    "arent": "are not",
    "wasnt": "was not",
    "havent": "have not",
    "hasnt": "has not",
    "hadnt": "had not",
    "shouldnt": "should not",
    "couldnt": "could not",
    "wouldnt": "would not",
    "aint": "is not",
    "im": "i am",
    "ive": "i have",
    "youre": "you are",
    "theyre": "they are",
    "whats": "what is",
    "wheres": "where is",
    "hows": "how is",
    "whens": "when is",
    "thats": "that is",
    "theres": "there is",
    "yall": "you all",
    "cuz": "because",
    "coz": "because",
    "bc": "because",
    "rn": "right now",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "tomoz": "tomorrow",
    "2moro": "tomorrow",
    "tomorow": "tomorrow",
    "acct": "account",
    "addy": "address",
    "pkg": "package",
    "pwd": "password",
    "pw": "password",
    "info": "information",
    "msg": "message",
    "abt": "about",
    "b4": "before",
    "smth": "something",
    "sth": "something",
    "ppl": "people",
    "xmas": "christmas",
    "intl": "international",
    "n": "and",
    "w": "with",
}

# Pronoun-like fillers dropped between a verb and its particle, so that "send it back",
# "pick them up" and "drop everything off" all read as "send back", "pick up", "drop off".
PARTICLE_FILLERS = _words("it them this that these those stuff everything things items")
PARTICLES = _words("back up off out in")

# Canonical term -> surface words and phrases that mean the same thing to a shop visitor,
# written "a | b | c". A canonical value with a space emits several terms. Phrases are
# matched on stems (surface forms first), so one inflection is usually enough; "=word"
# matches that exact surface form only (its stem means something else). Keep groups
# tight: "return" and "refund" are different articles, so they are different concepts,
# and "not working" stays out of "damage" (codes and links "don't work" too).
_SYNONYM_TABLE = {
    # shipping and delivery
    "ship": "ship | shipping | shipment | delivery | deliver | delivered | deliveries | postage"
    " | courier | dispatch | transit | in transit | arrive | arrival | show up | shown up"
    " | showed up | turn up | turned up | get here | receive | ground shipping",
    "usa": "usa | united states | america | contiguous | domestic | lower 48",
    # "Every day" and "seven days a week" answer a question about weekends.
    "weekend": "weekend | saturday | sunday | every day | seven days a week | 7 days a week",
    "duration": "how long | how many days | how soon | how fast | how quickly | eta"
    " | business day | business days | delivery time | delivery times | lead time | timing"
    " | timeframe | time frame | turnaround",
    # "Faster" alone is too common in help text ("so we can help faster") to mean express.
    "expedite": "expedite | expedited | express | overnight | next day | next business day"
    " | tomorrow | rush | urgent | asap | fastest | faster shipping | faster delivery"
    " | ship faster | deliver faster | arrive faster | get it faster | two day | 2 day"
    " | priority",
    "cost": "cost | price | pricing | fee | how much | rate | charges",
    "free": "free | no charge | no cost | complimentary | free of charge",
    "carrier": "carrier | ups | usps | fedex | dhl | postal service",
    "track": "track | tracking | where is my order | where is my package | where is my parcel"
    " | where is my stuff | where is my delivery | where is my shipment | where is it"
    " | see where | order status | wismo | not arrived | never arrived | not shown up"
    " | still waiting | stuck | not moved | not moving | no update | no updates | is late"
    " | running late | arrived late | late delivery | late package | late parcel | late order"
    " | delayed | delay | overdue | not received | never received | not receive"
    " | lost package | lost parcel | lost order | stolen | porch pirate",
    "parcel": "parcel | package",
    "order": "order | purchase",
    # orders
    "cancel": "cancel | canceled | cancelled | cancelling | canceling | cancellation"
    " | call off | stop my order | stop the order | accidentally ordered | ordered twice"
    " | duplicate order",
    "change": "change | modify | edit | amend | update",
    # returns, refunds, exchanges
    "return": "return | returnable | send back | sent back | ship back | mail back | bring back"
    " | take back | post back | changed my mind | change my mind | not happy with | unhappy",
    "worn": "worn | wore | unworn | unused | tried on | try on",
    "window": "window | return window | return period | time limit | deadline"
    " | how long do i have | how many days do i have | how much time do i have",
    "refund": "refund | refundable | reimburse | reimbursement | money back | repay"
    " | credited back",
    "exchange": "exchange | swap | switch",
    "damage": "damage | damaged | crushed | dented | smashed | cracked | bent | broken | broke"
    " | busted | faulty | defective | defect | fault | stopped working | fell apart"
    " | falling apart | came apart | ripped | torn | scratched | stained | not turn on"
    " | not switch on | dead on arrival | doa | ruined | destroyed | soaked | tear | tore | rip"
    " | hole",
    "wrong": "wrong | incorrect | not what i ordered | mixed up | mistake | someone elses"
    " | somebody elses | not mine | not my order",
    # sizing
    "size": "size | sizing | fit | size chart | size guide | run small | run big | run large"
    " | true to size | too big | too small | too tight | too loose | bigger | smaller"
    " | larger | small | medium | large | xs | xxs | xl | xxl | 2xl | 3xl | m | l | snug"
    " | tight | loose | baggy | narrow | petite | tall | plus size",
    "colour": "colour | color | colours | colors | colourway | shade",
    # warranty and repairs
    "warranty": "warranty | guarantee | guaranteed | lifetime warranty | wear and tear",
    "repair": "repair | fix | mend | patch | sew | stitch | hem | hemming | alteration | alter"
    " | tailor | shorten | resole",
    "zipper": "zipper | zip | zips",
    "pant": "pant | pants | trousers | slacks",
    # payment
    "pay": "pay | payment | paying | paid",
    "installment": "installment | installments | instalment | instalments | klarna | afterpay"
    " | affirm | pay later | buy now pay later | bnpl | split payment | split the payment"
    " | interest free | pay in 4 | pay over time | finance | financing",
    "creditcard": "credit card | debit card | visa | mastercard | master card | amex"
    " | american express | discover",
    "applepay": "apple pay",
    "googlepay": "google pay",
    "cod": "cash on delivery | pay on delivery | cod",
    "cryptocurrency": "cryptocurrency | crypto | bitcoin | ethereum",
    "cheque": "cheque | cheques | =checks | personal check | pay by check",
    "dollar": "dollar | dollars | usd | currency | euro | euros | pound | pounds | gbp | cad"
    " | aud | yen",
    # gift cards, discounts, price match
    "giftcard": "gift card | giftcard | gift certificate | gift voucher | voucher | egift"
    " | e gift | gift cards",
    "discount": "discount | discounted | promo | promo code | promotion | promotional code"
    " | coupon | coupon code | discount code | deal | percent off | code",
    "qr": "qr | qr code",
    "student": "student | college | university | uni",
    "military": "military | veteran | vet | army | navy | armed forces | first responder",
    "pricematch": "beat | price match | price matching | match the price | match price | price beat"
    " | beat the price | price adjustment | price drop | price dropped | price protection"
    " | price went down | went on sale | marked down",
    "cheaper": "cheaper | cheap | lower price | better price | less elsewhere | for less"
    " | less expensive",
    "retailer": "retailer | competitor | another store | other store | another shop"
    " | other shop | another retailer | other retailer | elsewhere",
    # accounts
    "account": "account | profile | username | user name",
    "password": "password | passcode | pass word",
    "login": "login | log in | sign in | signin | log on | logon | sign on | log out | logout",
    "lock": "locked | locked out | lockout | lock out",
    "create": "create | sign up | signup | register | registration | make an account"
    " | open an account",
    # stores, pickup
    "store": "store | shop | shopping | physical store | branch | showroom"
    " | brick and mortar | location | located | near me | nearest | closest | in person | visit",
    "hours": "hours | opening hours | opening times | open | opening | close | closing"
    " | closing time | what time",
    "holiday": "holiday | christmas | thanksgiving | new year | new years | easter",
    "pickup": "pickup | pick up | click and collect | collect | collection | bopis"
    " | in store pickup | curbside",
    # international
    "international": "international | internationally | overseas | abroad | worldwide"
    " | outside the us | outside the usa | outside the united states | other countries"
    " | global | another country | mexico | brazil | india | china | south africa"
    " | switzerland | norway | sweden | singapore | korea | israel",
    "canada international": "canada",
    "uk international": "uk | united kingdom | britain | great britain | england | scotland"
    " | wales",
    "eu international": "eu | european union | europe | germany | france | spain | italy"
    " | ireland | netherlands",
    "australia international": "australia",
    "japan international": "japan",
    "customs": "customs | duty | duties | tariff | import | import tax | import fee"
    " | import duties | vat | gst | brokerage",
    # product care
    "wash": "wash | clean | cleaner | launder | laundry | washing machine | washer"
    " | detergent | soap | machine wash | machine washable | machine washing",
    "dry": "dry | dryer | tumble dry | tumble dryer | drying",
    "clump": "clump | clumps | clumpy | lumpy | loft | fluff | flat",
    "waterproof": "waterproof | waterproofing | water resistant | water repellent"
    " | water proof | dwr | goretex | gore tex | reproof | reproofer | soak through"
    " | wet out | leak | bead",
    "jacket": "jacket | coat | parka | anorak | shell",
    "down jacket": "puffer | puffy | down jacket | down coat",
    "waterproof jacket": "rain jacket | raincoat | rain coat | rain shell | hardshell",
    "boot": "boot | shoe | footwear | sneaker | trainer",
    "mildew": "mildew | mould | mold | mouldy | moldy | musty | smell | smelly | stink | stinky",
    # rentals, loyalty
    "rent": "rent | rental | hire | borrow | lease",
    "reserve": "reserve | reservation | book | booking",
    "job": "job | career | hiring | vacancy | work for you | apply for a job",
    "loyalty": "loyalty | reward | rewards | point | points | reward points | loyalty points"
    " | membership | member | perks | benefits | cashback | cash back",
    # support, privacy, email
    "contact": "contact | reach | call | phone | phone number | telephone | get in touch"
    " | get hold of | talk to | speak to | speak with | talk with | number to call | write to"
    " | complaint | complain | feedback",
    "support": "support | customer service | customer support | customer care | helpdesk"
    " | help desk | service team | support team",
    "chat": "chat | live chat | livechat",
    "privacy": "privacy | personal data | my data | data | personal information"
    " | my information | personal info | gdpr | ccpa | third party | third parties",
    "delete": "delete | deletion | remove | erase | get rid of | wipe | close my account"
    " | close account",
    "unsubscribe": "unsubscribe | opt out | stop sending | stop emailing | stop emails"
    " | stop texting | no more emails | too many emails | spamming",
    "newsletter": "newsletter | marketing email | promotional email | mailing list | email list",
    "sms": "sms | text | texts | text message | texting",
    # stock
    "stock": "stock | in stock | out of stock | sold out | back in stock | restock | restocked"
    " | come back | availability | unavailable | get more",
    "preorder": "preorder | pre order | backorder | back order | backordered | waitlist"
    " | wait list | coming soon | release date",
    "notify": "notify | notify me | alert | let me know | email me when",
    "expire": "expire | expiry | expiration | run out | valid until",
    "lose": "lose | lost | misplaced",
    "retain": "retain | retained | retention | keep | kept | hold | held",
    "dropoff": "drop off | dropoff | drop in",
    # Topics a shop is asked about that this vocabulary knows but articles may not cover:
    # mapping them keeps them from matching neighbours ("black" + "friday" + "sale").
    "salesevent": "black friday | cyber monday | boxing day | prime day | memorial day sale"
    " | sale | warehouse sale | sales event",
    "finalsale": "final sale | sale item | sale items | on sale | clearance | =sale price",
    "storecard": "store card | store credit card | branded credit card | own credit card",
    "owner": "owner | original owner | transfer | transferable | second hand | secondhand"
    " | resell | resale",
    "copy": "copy | download | export",
    "time": "too late | in time",
    "setup": "set up | setup | pitch | pitching | assemble | assembly",
    "receipt": "receipt | proof of purchase",
    # "Who makes X" asks about a maker, "made in Y" about where goods are produced; without
    # concepts of their own these questions match on the product or garment alone (a care
    # or shipping article), and a manufacturer's warranty says nothing about a factory.
    "manufacturer": "manufacturer | made by | manufactured by | who makes | who made",
    "origin": "origin | country of origin | made in | manufacture | manufactured"
    " | manufacturing | factory | factories | sourced | sourcing",
    # "order number" is an identifier, not the act of ordering ("can I order by phone").
    "ordernumber": "order number | order numbers | order no | purchase order number",
}
SYNONYMS: dict[str, tuple[str, ...]] = {
    canonical: tuple(v.strip() for v in variants.split("|"))
    for canonical, variants in _SYNONYM_TABLE.items()
}

# --------------------------------------------------------------------------------------
# Text analysis
# --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[a-z0-9]+")
_SLANG_KEYS = frozenset(SLANG)
_APOSTROPHES_RE = re.compile(r"[\u2019\u2018'`]")


def _normalize(text: str) -> str:
    """Lowercase, strip accents, glue contractions ("don't" -> "dont")."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _APOSTROPHES_RE.sub("", text.lower())
    # Currency and percent signs carry meaning ("points per dollar", "10% off").
    return text.replace("&", " and ").replace("$", " dollar ").replace("%", " percent ")


def _raw_tokens(text: str) -> list[str]:
    """Normalised word tokens with chat slang expanded."""
    tokens = _TOKEN_RE.findall(_normalize(text))
    if not _SLANG_KEYS.isdisjoint(tokens):
        tokens = [word for token in tokens for word in SLANG.get(token, token).split()]
    return _drop_particle_fillers(tokens)


def _drop_particle_fillers(tokens: list[str]) -> list[str]:
    if PARTICLE_FILLERS.isdisjoint(tokens):
        return tokens
    following = [*tokens[1:], ""]
    return [
        token
        for i, (token, nxt) in enumerate(zip(tokens, following, strict=True))
        if not (i and token in PARTICLE_FILLERS and nxt in PARTICLES)
    ]


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light, conservative English suffix stripper (plurals, -ing, -ed, final e/y).

    Both sides go through it, so it only needs to be consistent, not linguistically
    right: "shipping"/"shipped"/"ships" -> "ship", "sizing"/"size" -> "siz".
    """
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        base = word[: -len(suffix)]
        if word.endswith(suffix) and len(base) >= 3 and any(v in base for v in "aeiouy"):
            word = base
            # "shipp" -> "ship", "cancell" -> "cancel" (but keep "fill", "dress").
            doubled = len(word) >= 4 and word[-1] == word[-2] and word[-1] not in "sz"
            if doubled and (word[-1] != "l" or len(word) >= 6):
                word = word[:-1]
            break
    if word.endswith("e") and len(word) > 3:
        word = word[:-1]
    elif word.endswith("y") and len(word) > 3 and word[-2] not in "aeiou":
        word = word[:-1] + "i"
    return word


_Phrases = dict[tuple[str, ...], tuple[str, ...]]


def _build_phrase_tables() -> tuple[_Phrases, _Phrases, dict[str, tuple[int, ...]]]:
    """(surface table, stem table, phrase lengths starting with a token or stem, longest first).

    Surface forms win over stems so that words sharing a stem can mean different
    things ("hiring" is about jobs, "hire" about rentals).
    """
    surface: _Phrases = {}
    stemmed: _Phrases = {}
    for canonical, variants in SYNONYMS.items():
        terms = tuple(canonical.split())
        for variant in (canonical, *variants):
            tokens = tuple(_raw_tokens(variant))
            if tokens:
                surface.setdefault(tokens, terms)
                if not variant.startswith("="):
                    stemmed.setdefault(tuple(stem(t) for t in tokens), terms)
    lengths: dict[str, set[int]] = defaultdict(set)
    for key in (*surface, *stemmed):
        lengths[key[0]].add(len(key))
    return surface, stemmed, {k: tuple(sorted(v, reverse=True)) for k, v in lengths.items()}


_SURFACE_PHRASES, _STEM_PHRASES, _PHRASE_LENGTHS = _build_phrase_tables()
_STOP_STEMS = frozenset(stem(w) for w in STOPWORDS) | STOPWORDS
_WEAK_TERMS = frozenset(stem(w) for w in WEAK_WORDS) | WEAK_WORDS
# Every word the analyser knows about even if no article uses it (for typo correction).
_LEXICON_WORDS = (
    frozenset(
        w for variants in SYNONYMS.values() for v in variants for w in _raw_tokens(v) if len(w) > 2
    )
    | STOPWORDS
)


@lru_cache(maxsize=65536)
def _token_info(token: str) -> tuple[str, tuple[int, ...], bool]:
    """(stem, lengths of phrases that may start here, whether the token alone is dropped)."""
    stemmed = stem(token)
    lengths = sorted(
        {*_PHRASE_LENGTHS.get(token, ()), *_PHRASE_LENGTHS.get(stemmed, ())}, reverse=True
    )
    dropped = len(token) < 2 or token in STOPWORDS or stemmed in _STOP_STEMS
    return stemmed, tuple(lengths), dropped


def _terms(tokens: list[str]) -> list[str]:
    """Raw tokens -> index terms: stems, synonym concepts, no stopwords."""
    infos = [_token_info(t) for t in tokens]
    terms: list[str] = []
    i = 0
    while i < len(tokens):
        stemmed, lengths, dropped = infos[i]
        # Longest phrase first; most tokens start no phrase and cost no lookup.
        for n in lengths:
            if i + n > len(tokens):
                continue
            mapped = _SURFACE_PHRASES.get(tuple(tokens[i : i + n]))
            if mapped is None:
                mapped = _STEM_PHRASES.get(tuple(info[0] for info in infos[i : i + n]))
            if mapped is not None:
                terms.extend(mapped)
                i += n
                break
        else:
            if not dropped:
                terms.append(stemmed)
            i += 1
    return terms


def analyze(text: str) -> list[str]:
    """Text -> index terms (used for articles; questions also get typo correction)."""
    return _terms(_raw_tokens(text))


# Answer types: a question asking "how long" or "how much" wants a passage that states a
# duration or an amount of money. Articles state them as numbers ("within 2 hours",
# "$15"), not with the question's words, so stated amounts emit the concept as well.
_TIME_UNITS = _words(
    "minute minutes min mins hour hours hr hrs day days week weeks month months year years"
)
_NUMBER_WORDS = _words(
    "one two three four five six seven eight nine ten eleven twelve fifteen twenty thirty"
    " forty fifty sixty ninety hundred"
)
_UNIT_GAP = _words("to or and business working calendar more extra full")


def _answer_type_terms(tokens: list[str]) -> list[str]:
    """``duration`` for every stated length of time, ``cost`` for every sum of money and
    ``hours`` for every time of day ("from 7 am")."""
    terms: list[str] = []
    for i, token in enumerate(tokens):
        if not (token.isdigit() or token in _NUMBER_WORDS):
            continue
        if i and tokens[i - 1] == "dollar":
            terms.append("cost")
            continue
        if i + 1 < len(tokens) and tokens[i + 1] in ("am", "pm"):
            terms.append("hours")
            continue
        for nxt in tokens[i + 1 : i + 4]:
            if nxt in _TIME_UNITS:
                terms.append("duration")
                break
            if not (nxt.isdigit() or nxt in _UNIT_GAP or nxt in _NUMBER_WORDS):
                break
    return terms


def analyze_passage(text: str) -> list[str]:
    """Article text -> index terms, with the answer types it states."""
    tokens = _raw_tokens(text)
    return _terms(tokens) + _answer_type_terms(tokens)


_PRODUCT_TERMS = frozenset(t for w in PRODUCT_WORDS for t in _terms([w]))
# Help-topic concepts of the synonym table ("cancel", "reserve", "giftcard").
_CONCEPT_TERMS = frozenset(t for canonical in SYNONYMS for t in canonical.split())


# The shop's own name: a capitalised word inside sentences (not opening one) of at least
# a fifth of the articles ("our Northwind stores", "Northwind gift cards"). Read as
# "store" where that makes a "store ..." phrase: "<shop> credit card" is the shop's own
# card (``storecard``), not a card the shop accepts.
BRAND_MIN_SHARE = 0.2
BRAND_MIN_ARTICLES = 3
_SENTENCE_BREAK_RE = re.compile(r"[.!?:;]\s+|\n+")
_WORD_RE = re.compile(r"[A-Za-z]+")


def _brand_words(docs: list[Doc]) -> frozenset[str]:
    """Lowercased capitalised words that at least BRAND_MIN_SHARE of the articles use
    inside a sentence; words the vocabulary knows ("Visa", "Monday") are no name."""
    counts: Counter[str] = Counter()
    for doc in docs:
        words: set[str] = set()
        for sentence in _SENTENCE_BREAK_RE.split(f"{doc.title}\n{doc.body}"):
            words.update(
                w.lower()
                for w in _WORD_RE.findall(sentence)[1:]
                if w[0].isupper() and w[1:].islower()
            )
        counts.update(words)
    needed = max(BRAND_MIN_ARTICLES, BRAND_MIN_SHARE * len(docs))
    return frozenset(w for w, n in counts.items() if n >= needed and w not in _LEXICON_WORDS)


# Tails of the "store ..." phrases (surface and stemmed), longest first.
_STORE_TAILS = frozenset(
    key[1:]
    for key in (*_SURFACE_PHRASES, *_STEM_PHRASES)
    if len(key) > 1 and key[0] in ("store", stem("store"))
)
_STORE_TAIL_LENGTHS = tuple(sorted({len(tail) for tail in _STORE_TAILS}, reverse=True))


def _own_brand(tokens: list[str], brand: frozenset[str]) -> list[str]:
    """Raw tokens with the shop's name read as "store" where a "store ..." phrase follows."""
    if brand.isdisjoint(tokens):
        return tokens
    result = list(tokens)
    for i, token in enumerate(tokens):
        if token not in brand:
            continue
        for n in _STORE_TAIL_LENGTHS:
            tail = tuple(tokens[i + 1 : i + 1 + n])
            if len(tail) == n and (
                tail in _STORE_TAILS or tuple(stem(t) for t in tail) in _STORE_TAILS
            ):
                result[i] = "store"
                break
    return result


# --------------------------------------------------------------------------------------
# Confidence
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Features:
    """What the confidence is computed from (all in 0..1)."""

    coverage: float  # share of the question's weight found anywhere in the best article
    strength: float  # BM25F score of the best article / best achievable for the question
    title_coverage: float  # share of the question's weight found in its title or tags
    unknown: float  # share of the question's weight in words no article uses
    # 1 when the best article never mentions a help topic that other articles do and that
    # carries at least MISSING_TOPIC_SHARE of the question's weight, else 0.
    missing_topic: float = 0.0

    def vector(self) -> tuple[float, ...]:
        return (
            self.coverage,
            self.strength,
            self.title_coverage,
            self.unknown,
            self.missing_topic,
        )


# A question that combines the topic of one article with the subject of another ("cancel
# my rewards membership", "book a fitting") matches the second well without its first
# article saying anything about the first topic. Coverage is additive and forgives that;
# this is the share of the question's weight at which a missing topic is the point of the
# question rather than incidental (fitted on dev with the weights below).
MISSING_TOPIC_SHARE = 0.4

# Logistic weights over Features.vector() (+ intercept), fitted on the dev split of the
# eval set with `python -m eval.run --fit-confidence`; the label is "the best article is
# the right one", so the output estimates the chance an answer is right and
# DEFAULT_THRESHOLD = 0.5 is the natural decision boundary.
CONFIDENCE_WEIGHTS = (2.64, 1.98, 0.67, -2.76, -1.39)
CONFIDENCE_BIAS = -1.75


def _confidence(features: Features | None) -> float:
    if features is None:
        return 0.0
    z = CONFIDENCE_BIAS + sum(
        w * x for w, x in zip(CONFIDENCE_WEIGHTS, features.vector(), strict=True)
    )
    return 1 / (1 + math.exp(-z))


# --------------------------------------------------------------------------------------
# Index
# --------------------------------------------------------------------------------------

# BM25F parameters: (field weight, length normalisation b) per field.
FIELDS = {"title": (3.0, 0.3), "tags": (2.0, 0.3), "body": (1.0, 0.75)}
K1 = 1.2
# Ranking bonus for question words in an article's title or tags, weighted by how rare
# the word is among headings. Words like "shipping" appear in most bodies (low IDF) but
# head only the article that is about them.
HEADING_BONUS = 0.3

# Typo-corrected words count less than words typed correctly.
CORRECTION_WEIGHT = {1: 0.8, 2: 0.6}
SPLIT_WEIGHT = 0.9


@dataclass(frozen=True)
class _QueryTerm:
    term: str
    weight: float
    weak: bool = False  # a generic word ("order", "best") or a number


@dataclass(frozen=True)
class _Match:
    """Scoring details of one article for one question."""

    index: int
    rank: float  # what articles are ordered by: BM25F plus the heading bonus
    coverage: float  # share of the question's weight the article contains at all
    strength: float  # BM25F score / best achievable score (title hits push it up)
    title_coverage: float  # share of the question's weight found in title or tags
    topical: bool  # matches at least one word that is neither generic nor a product


class KnowledgeIndex:
    """An immutable retrieval index over published articles.

    Building is linear in the total text size; a question is scored through an inverted
    index, so only articles sharing a term with it are touched.
    """

    def __init__(self, docs: Iterable[Doc]):
        self.docs: list[Doc] = list(docs)
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self._heading_terms: list[frozenset[str]] = []
        self._doc_terms: list[frozenset[str]] = []
        self._brand = _brand_words(self.docs)
        raw_vocab: Counter[str] = Counter()
        field_terms: list[dict[str, list[str]]] = []
        for doc in self.docs:
            fields = {"title": doc.title, "tags": " ".join(doc.tags), "body": doc.body}
            tokens = {
                name: _own_brand(_raw_tokens(text), self._brand) for name, text in fields.items()
            }
            for toks in tokens.values():
                raw_vocab.update(set(toks))
            terms = {name: _terms(toks) for name, toks in tokens.items()}
            terms["body"] += _answer_type_terms(tokens["body"])
            field_terms.append(terms)
        self._build_postings(field_terms)
        n = len(self.docs)
        self._idf = {
            term: math.log(1 + (n - len(posts) + 0.5) / (len(posts) + 0.5))
            for term, posts in self._postings.items()
        }
        heading_df = Counter(t for heading in self._heading_terms for t in heading)
        self._heading_idf = {
            term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in heading_df.items()
        }
        # A word no article uses is treated as rarer than the rarest known one.
        self._idf_unknown = math.log(1 + (n + 0.5) / 0.5)
        self._word_freq = raw_vocab
        self._known_words = set(raw_vocab) | _LEXICON_WORDS
        self._known_stems = {stem(w) for w in self._known_words}
        self._fuzzy_choices = sorted(w for w in self._known_words if w.isalpha() and len(w) > 2)

    def _build_postings(self, field_terms: list[dict[str, list[str]]]) -> None:
        count = len(field_terms) or 1
        avg_len = {name: sum(len(f[name]) for f in field_terms) / count or 1.0 for name in FIELDS}
        for index, fields in enumerate(field_terms):
            pseudo_tf: dict[str, float] = defaultdict(float)
            for name, (weight, b) in FIELDS.items():
                terms = fields[name]
                norm = 1 - b + b * len(terms) / avg_len[name]
                for term, count in Counter(terms).items():
                    pseudo_tf[term] += weight * count / norm
            for term, tf in pseudo_tf.items():
                self._postings[term].append((index, tf))
            self._heading_terms.append(frozenset(fields["title"]) | frozenset(fields["tags"]))
            self._doc_terms.append(frozenset(pseudo_tf))

    # ---- question analysis ----------------------------------------------------------

    def _correct(self, token: str) -> tuple[list[str], float]:
        """Map a word the articles never use to known words; returns (words, weight).

        Short words are corrected cautiously: a short word one edit away from a domain
        word is as likely a different real word ("best", "last", "stuck") as a typo, and a
        wrong correction invents a match. Four letters: only swapped letters of a function
        word ("waht"); five: only swapped or dropped letters ("tarck", "refnd").
        """
        if (
            len(token) < 4
            or not token.isalpha()
            or token in self._known_words
            or stem(token) in self._known_stems
        ):
            return [token], 1.0
        split = self._split_compound(token)
        if split:
            return split, SPLIT_WEIGHT
        max_distance = 1 if len(token) <= 7 else 2
        candidates = process.extract(
            token, self._fuzzy_choices, scorer=OSA.distance, score_cutoff=max_distance, limit=50
        )
        if len(token) == 4:
            candidates = [
                c for c in candidates if c[0] in FUNCTION_WORDS and sorted(c[0]) == sorted(token)
            ]
        elif len(token) == 5:
            candidates = [c for c in candidates if sorted(c[0]) == sorted(token) or len(c[0]) == 6]
        else:
            # Typos rarely hit the first letter; requiring it avoids "bike" -> "hike" and,
            # two edits away, "teachers" -> "reaches".
            candidates = [c for c in candidates if c[0][0] == token[0]]
        if not candidates:
            return [token], 1.0
        # Prefer the smallest distance, then the same first letter, then the more common
        # word; the word itself breaks ties deterministically.
        best, distance, _ = min(
            candidates,
            key=lambda c: (c[1], c[0][0] != token[0], -self._word_freq.get(c[0], 0), c[0]),
        )
        return [best], CORRECTION_WEIGHT[int(distance)]

    def _split_compound(self, token: str) -> list[str] | None:
        """ "giftcard" -> ["gift", "card"] when both halves are known content words."""
        best: list[str] | None = None
        for cut in range(3, len(token) - 2):
            left, right = token[:cut], token[cut:]
            if (
                left in self._word_freq
                and right in self._word_freq
                and left not in STOPWORDS
                and right not in STOPWORDS
                and (best is None or min(len(left), len(right)) > min(map(len, best)))
            ):
                best = [left, right]
        return best

    def _query_terms(self, question: str) -> list[_QueryTerm]:
        tokens: list[str] = []
        weights: list[float] = []
        for token in _raw_tokens(question[:MAX_QUESTION_CHARS]):
            words, weight = self._correct(token)
            tokens.extend(words)
            weights.extend([weight] * len(words))
        tokens = _own_brand(tokens, self._brand)
        # Map terms back to the weight of the tokens they came from: phrase matching can
        # merge tokens, so analyse token by token for weights and keep the min per term.
        terms = _terms(tokens)
        term_weight: dict[str, float] = {}
        for token, weight in zip(tokens, weights, strict=True):
            if weight < 1.0:
                for term in _terms([token]):
                    term_weight[term] = min(term_weight.get(term, 1.0), weight)
        result: dict[str, float] = {}
        weak: set[str] = set()
        for term in terms:
            weight = term_weight.get(term, 1.0)
            if term in _WEAK_TERMS or term.isdigit():
                weight *= WEAK_WEIGHT
                weak.add(term)
            elif term in _PRODUCT_TERMS and term in self._idf:
                # Only when the articles know the product: an unknown one ("kayak") is
                # evidence that the knowledge base does not cover the question.
                weight *= PRODUCT_WEIGHT
            result[term] = max(result.get(term, 0.0), weight)
        return [_QueryTerm(t, w, t in weak) for t, w in result.items()]

    # ---- ranking ----------------------------------------------------------------------

    def _idf_of(self, term: str) -> float:
        return self._idf.get(term, self._idf_unknown)

    def _matches(self, qterms: list[_QueryTerm]) -> list[_Match]:
        """Every article sharing a term with the question, best first."""
        mass = {q.term: q.weight * self._idf_of(q.term) for q in qterms}
        total = sum(mass.values())
        if total <= 0:
            return []
        topical_terms = {q.term for q in qterms if not q.weak and q.term not in _PRODUCT_TERMS}
        score: dict[int, float] = defaultdict(float)
        covered: dict[int, float] = defaultdict(float)
        topical: set[int] = set()
        for term, m in mass.items():
            for index, tf in self._postings.get(term, ()):
                score[index] += m * tf / (K1 + tf)
                covered[index] += m
                if term in topical_terms:
                    topical.add(index)
        # The best achievable score: every term matched as if it were in the title once.
        best_possible = total * FIELDS["title"][0] / (K1 + FIELDS["title"][0])
        matches = []
        for index, s in score.items():
            heading = self._heading_terms[index]
            in_heading = [q for q in qterms if q.term in heading]
            bonus = sum(q.weight * self._heading_idf[q.term] for q in in_heading)
            matches.append(
                _Match(
                    index=index,
                    rank=s + HEADING_BONUS * bonus,
                    coverage=covered[index] / total,
                    strength=min(1.0, s / best_possible),
                    title_coverage=sum(mass[q.term] for q in in_heading) / total,
                    topical=index in topical,
                )
            )
        # Deterministic: ties broken by article order.
        matches.sort(key=lambda m: (-m.rank, m.index))
        return matches

    def _features(self, qterms: list[_QueryTerm], matches: list[_Match]) -> Features | None:
        """None when there is nothing to be confident about: no match, or the best article
        matches only generic words and product names (no help topic)."""
        if not matches or not matches[0].topical:
            return None
        top = matches[0]
        total = sum(q.weight * self._idf_of(q.term) for q in qterms)
        # Unknown generic words ("best") are no evidence of an uncovered topic.
        unknown = sum(
            q.weight * self._idf_unknown for q in qterms if q.term not in self._idf and not q.weak
        )
        article_terms = self._doc_terms[top.index]
        missing = max(
            (
                q.weight * self._idf[q.term]
                for q in qterms
                if q.term in _CONCEPT_TERMS
                and q.term not in _PRODUCT_TERMS
                and not q.weak
                and q.term in self._idf
                and q.term not in article_terms
            ),
            default=0.0,
        )
        return Features(
            coverage=top.coverage,
            strength=top.strength,
            title_coverage=top.title_coverage,
            unknown=unknown / total,
            missing_topic=float(missing >= MISSING_TOPIC_SHARE * total),
        )

    def search(self, query: str, k: int = 3) -> list[tuple[Doc, float]]:
        """The ``k`` best articles with their ranking scores (unbounded, not a confidence)."""
        if not query or k <= 0:
            return []
        matches = self._matches(self._query_terms(query))
        return [(self.docs[m.index], m.rank) for m in matches[:k]]

    # ---- answering --------------------------------------------------------------------

    def features(self, question: str) -> tuple[Doc | None, Features | None]:
        """The best article and the confidence features for it (for calibration)."""
        qterms = self._query_terms(question or "")
        matches = self._matches(qterms)
        best = self.docs[matches[0].index] if matches else None
        return best, self._features(qterms, matches)

    def explain(self, question: str) -> dict:
        """Debug view for operators and the eval: terms, top matches, features, confidence."""
        qterms = self._query_terms(question or "")
        matches = self._matches(qterms)
        features = self._features(qterms, matches)
        return {
            "terms": [(q.term, round(q.weight, 2), round(self._idf_of(q.term), 2)) for q in qterms],
            "matches": [(self.docs[m.index].title, round(m.rank, 2)) for m in matches[:3]],
            "features": features,
            "confidence": round(_confidence(features), 3),
        }

    def answer(self, question: str, *, threshold: float | None = None) -> Answer:
        """Answer from the best article, or decline (``answered=False``) when unsure.

        Never raises for any string: empty, emoji-only or very long input is declined or
        answered like any other question (input beyond MAX_QUESTION_CHARS is ignored).
        """
        threshold = DEFAULT_THRESHOLD if threshold is None else threshold
        qterms = self._query_terms(question or "")
        matches = self._matches(qterms)
        confidence = _confidence(self._features(qterms, matches))
        if not matches or confidence < threshold:
            return Answer("", [], [], confidence, False)
        best = self.docs[matches[0].index]
        term_mass = {q.term: q.weight * self._idf_of(q.term) for q in qterms}
        return Answer(
            text=extract_answer(best, term_mass),
            article_ids=[best.id],
            article_titles=[best.title],
            confidence=confidence,
            answered=True,
        )


# --------------------------------------------------------------------------------------
# Answer extraction
# --------------------------------------------------------------------------------------

# Bodies up to this length are shown whole; longer ones are cut to the best paragraph,
# and a paragraph longer than MAX_ANSWER_CHARS to its best run of sentences.
SHORT_BODY_CHARS = 320
MAX_ANSWER_CHARS = 450
MAX_ANSWER_SENTENCES = 3
_PARAGRAPH_RE = re.compile(r"\n\s*\n")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")


def _relevance(text: str, term_mass: dict[str, float]) -> float:
    """Question weight found in ``text``; each term counts once, so length is no merit."""
    return sum(term_mass.get(t, 0.0) for t in set(analyze_passage(text)))


def _best(chunks: list[str], term_mass: dict[str, float]) -> int:
    # max() keeps the first of equals: earlier text usually states the general rule.
    return max(range(len(chunks)), key=lambda i: (_relevance(chunks[i], term_mass), -i))


def extract_answer(doc: Doc, term_mass: dict[str, float]) -> str:
    """The part of ``doc`` that answers a question with the given term weights."""
    body = " ".join(doc.body.split())
    if len(body) <= SHORT_BODY_CHARS:
        return body
    paragraphs = [" ".join(p.split()) for p in _PARAGRAPH_RE.split(doc.body) if p.strip()]
    paragraph = paragraphs[_best(paragraphs, term_mass)]
    if len(paragraph) <= MAX_ANSWER_CHARS:
        return paragraph
    sentences = [s.strip() for s in _SENTENCE_RE.split(paragraph) if s.strip()]
    windows = [
        " ".join(sentences[i : i + MAX_ANSWER_SENTENCES])
        for i in range(max(1, len(sentences) - MAX_ANSWER_SENTENCES + 1))
    ]
    # A window must start on a relevant sentence, not just contain one.
    start = max(
        range(len(windows)),
        key=lambda i: (_relevance(windows[i], term_mass) + _relevance(sentences[i], term_mass), -i),
    )
    window = windows[start]
    while len(window) > MAX_ANSWER_CHARS and window.count(". ") > 0:
        window = window[: window.rindex(". ") + 1]
    if len(window) > MAX_ANSWER_CHARS:  # one long sentence: a list, semicolons, "。"
        cut = max(window.rfind(mark, 0, MAX_ANSWER_CHARS) for mark in ("; ", "。", ", ", " "))
        window = (window[: cut + 1] if cut > 0 else window[: MAX_ANSWER_CHARS - 1]).rstrip(
            " ,;"
        ) + "…"
    return window


# --------------------------------------------------------------------------------------
# Handoff detection
# --------------------------------------------------------------------------------------

# Who a visitor may ask for. "someone" only counts after "talk to" and the like: "I need
# someone to pick up my order" is not a handoff request.
_PERSON = (
    r"(?:humans?|persons?|people|agents?|reps?|representatives?|operators?|staff|employees?"
    r"|managers?|supervisors?|advis[oe]rs?|team members?|live agents?|real ones?)"
)
_ANYONE = rf"(?:{_PERSON}|someone|somebody|anyone|anybody|(?:customer )?(?:service|support|care))"
# "chat with support hours", "talk to customer service number": about the team, not to it.
_ABOUT_THE_TEAM = r"(?! (?:hours?|times?|numbers?|email|address|phone|page|portal|cent(?:er|re)|ticket|site|website)\b)"
_HANDOFF_PATTERNS = [
    re.compile(pattern)
    for pattern in (
        # "can I talk to a human", "speak with someone", "put me through to support"
        rf"\b(?:talk|speak|chat|connect|transfer|escalate|put)(?: me| us)?(?: through)?"
        rf" (?:to|with)(?: \w+){{0,2}} {_ANYONE}\b{_ABOUT_THE_TEAM}",
        # "real person pls", "live agent", "a human being"
        r"\b(?:real|actual|live|human) (?:person|human|agent|being|rep|operator|support)\b",
        # "I want a human", "need an agent", "get me a person"
        rf"\b(?:want|need|get me|give me|request|prefer)(?: \w+){{0,2}} {_PERSON}\b",
        # "not a bot", "no more bots" (but "I'm not a robot" is about the visitor)
        r"(?<!\bim )(?<!\bi am )\b(?:not|no|no more) (?:a |the |this )?(?:bot|bots|robot|machine)\b",
    )
]
# A message that is only a request word: "agent", "human!!", "operator please".
_HANDOFF_WORDS = _words("human humans agent agents representative rep operator person staff")
_HANDOFF_FILLER = _words("a an the please pls plz now real live me i want need")
# A refusal word that governs the request ("I don't need a human", "I do not want to talk
# to a person", "no need for an agent"): only words of wanting may stand between them.
# "no that didnt help i need an agent" and "why can't I talk to a human" are requests.
_REFUSALS = _words("dont not never without doesnt didnt wont rather no")
_REFUSAL_BRIDGE = _words("want wanna need to me us really even have like would do")
_CLAUSE_RE = re.compile(r"[,.;:!?()\n]+|\bbut\b")
# "is this a real person?", "are you human", "am I talking to a bot": a clause that asks
# about the bot, unless it also asks for someone (a verb of asking in it).
_ABOUT_THE_BOT_OPENINGS = {
    ("is", "this"),
    ("is", "it"),
    ("is", "that"),
    ("are", "you"),
    ("are", "u"),
    ("r", "u"),
    ("am", "i"),
}
_ASKING_VERBS = _words(
    "talk speak chat connect transfer escalate want need get give put prefer request"
)


def _refused(clause: str, start: int) -> bool:
    """Is the request starting at `start` turned down by the words right before it?"""
    for word in reversed(clause[:start].split()):
        if word in _REFUSALS:
            return True
        if word not in _REFUSAL_BRIDGE:
            return False
    return False


def _about_the_bot(clause: list[str]) -> bool:
    return tuple(clause[:2]) in _ABOUT_THE_BOT_OPENINGS and _ASKING_VERBS.isdisjoint(clause)


def is_handoff_request(text: str) -> bool:
    """True when the visitor asks for a human ("real person pls", "agent", "speak to
    someone"); ordinary questions, including "how do I contact support", are False, and
    so are refusals ("I don't need a human") and questions about the bot ("is this a real
    person?")."""
    normalized = _normalize(text or "")[:MAX_QUESTION_CHARS]
    words = _TOKEN_RE.findall(normalized)
    content = [w for w in words if w not in _HANDOFF_FILLER]
    if content and len(content) <= 2 and all(w in _HANDOFF_WORDS for w in content):
        return True
    for part in _CLAUSE_RE.split(normalized):
        tokens = _TOKEN_RE.findall(part)
        if _about_the_bot(tokens):
            continue
        clause = " ".join(tokens)
        for number, pattern in enumerate(_HANDOFF_PATTERNS):
            # "not a bot" (the last pattern) carries its own negation
            last = number == len(_HANDOFF_PATTERNS) - 1
            if any(last or not _refused(clause, m.start()) for m in pattern.finditer(clause)):
                return True
    return False
