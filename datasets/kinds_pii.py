"""PII values and their look-alike decoys for S15, each a pure function of one 64-bit hash.

Entities (named as Presidio names them): EMAIL_ADDRESS, PHONE_NUMBER, US_SSN, CREDIT_CARD,
IP_ADDRESS, PERSON. Decoys look like one of them and are not PII:

- CARD_INVALID: 13-19 digits with a card prefix whose Luhn check digit is wrong;
- SSN_RESERVED: ``AAA-GG-SSSS`` in a range the SSA never issues (area 000, 666 or 900-999,
  group 00, or serial 0000);
- ORDER_NUMBER: ``ORD-`` followed by a phone-shaped number;
- IP_INVALID: a dotted quad with an octet above 255;
- PRODUCT_NAME: two capitalized words, shaped like a person's name.
"""

from __future__ import annotations

ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IP_ADDRESS", "PERSON")
DECOYS = ("CARD_INVALID", "SSN_RESERVED", "ORDER_NUMBER", "IP_INVALID", "PRODUCT_NAME")

FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Christopher",
    "Nancy",
    "Daniel",
    "Lisa",
    "Matthew",
    "Betty",
    "Anthony",
    "Margaret",
    "Mark",
    "Sandra",
    "Steven",
    "Ashley",
    "Paul",
    "Kimberly",
    "Andrew",
    "Emily",
    "Joshua",
    "Donna",
    "Kevin",
    "Michelle",
    "Brian",
    "Carol",
    "George",
    "Amanda",
    "Edward",
    "Melissa",
    "Ronald",
    "Deborah",
    "Timothy",
    "Stephanie",
    "Jason",
    "Rebecca",
    "Jeffrey",
    "Laura",
    "Ryan",
    "Sharon",
    "Jacob",
    "Cynthia",
    "Gary",
    "Kathleen",
    "Maria",
    "Carlos",
    "Wei",
    "Priya",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Torres",
    "Nguyen",
    "Hill",
    "Flores",
    "Green",
    "Adams",
    "Nelson",
    "Baker",
    "Hall",
    "Rivera",
    "Campbell",
    "Mitchell",
    "Carter",
    "Roberts",
    "Chen",
    "Patel",
    "Kim",
    "Singh",
    "Okafor",
    "Novak",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Silva",
    "Ivanova",
    "Haddad",
    "Tanaka",
    "Murphy",
)
PRODUCT_ADJECTIVES = (
    "Silver",
    "Velvet",
    "Crimson",
    "Quantum",
    "Arctic",
    "Golden",
    "Rapid",
    "Lunar",
    "Copper",
    "Nimbus",
    "Solar",
    "Granite",
    "Cobalt",
    "Echo",
    "Prime",
    "Vivid",
)
PRODUCT_NOUNS = (
    "Falcon",
    "Harbor",
    "Kettle",
    "Lantern",
    "Summit",
    "Voyager",
    "Anchor",
    "Beacon",
    "Canyon",
    "Orbit",
    "Prism",
    "Quill",
    "Rocket",
    "Sparrow",
    "Tundra",
    "Willow",
)
EMAIL_DOMAINS = ("example.com", "mail.test", "corp.example", "inbox.test", "post.example.org")
CARD_PREFIXES = (("4", 16), ("51", 16), ("53", 16), ("55", 16), ("34", 15), ("37", 15), ("6011", 16), ("4", 13))

NEUTRAL_SENTENCES = (
    "customer asked about delivery times.",
    "follow up next week on the open request.",
    "no action needed at this point.",
    "requested a copy of the latest statement.",
    "the package arrived damaged and was replaced.",
    "prefers contact in the afternoon.",
    "account review completed without findings.",
    "asked to upgrade the subscription plan.",
)
# How a text cell embeds one planted value; {} is the value. Capitalized words here are never first names.
CARRIERS = {
    "EMAIL_ADDRESS": "please reply to {} about the refund.",
    "PHONE_NUMBER": "call back on {} after noon.",
    "US_SSN": "verified identity with tax number {} today.",
    "CREDIT_CARD": "card on file {} was declined.",
    "IP_ADDRESS": "login from {} was flagged.",
    "PERSON": "escalated by {} after the call.",
    "CARD_INVALID": "gift voucher {} was redeemed.",
    "SSN_RESERVED": "internal case code {} assigned.",
    "ORDER_NUMBER": "shipment {} left the warehouse.",
    "IP_INVALID": "firmware {} installed on the router.",
    "PRODUCT_NAME": "bought a {} last month.",
}
FILLERS = ("", "n/a", "unknown", "-")


def _bits(h: int, shift: int, mod: int) -> int:
    return (h >> shift) % mod


def luhn_check_digit(body: str) -> int:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:  # doubled: these sit at odd positions once the check digit is appended
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10


def _digits(h: int, n: int, salt: int) -> str:
    x, out = h ^ (salt * 0x9E3779B97F4A7C15), []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
        out.append(str((x >> 33) % 10))
    return "".join(out)


def _card(h: int, valid: bool) -> str:
    prefix, length = CARD_PREFIXES[_bits(h, 0, len(CARD_PREFIXES))]
    body = prefix + _digits(h, length - len(prefix) - 1, 1)
    check = luhn_check_digit(body)
    if not valid:
        check = (check + 1 + _bits(h, 8, 9)) % 10
    number = body + str(check)
    sep = (" ", "-", "")[_bits(h, 12, 3)]
    if length == 16 and sep:
        return sep.join(number[i : i + 4] for i in range(0, 16, 4))
    return number


def _phone_digits(h: int) -> tuple[str, str, str]:
    area = 201 + _bits(h, 0, 788)
    if area % 100 == 11:  # N11 codes are not area codes
        area += 1
    return f"{area:03d}", f"{200 + _bits(h, 10, 800):03d}", f"{_bits(h, 20, 10000):04d}"


def _phone(h: int) -> str:
    a, e, n = _phone_digits(h)
    style = _bits(h, 34, 4)
    return (f"({a}) {e}-{n}", f"{a}-{e}-{n}", f"+1 {a} {e} {n}", f"{a}.{e}.{n}")[style]


def _ssn(h: int, valid: bool) -> str:
    area, group, serial = 1 + _bits(h, 0, 899), 1 + _bits(h, 10, 99), 1 + _bits(h, 20, 9999)
    if area == 666:
        area = 665
    if not valid:
        which = _bits(h, 34, 4)
        if which == 0:
            area = 0
        elif which == 1:
            area = (666, 900 + _bits(h, 40, 100))[_bits(h, 50, 2)]
        elif which == 2:
            group = 0
        else:
            serial = 0
    return f"{area:03d}-{group:02d}-{serial:04d}"


def _ip(h: int, valid: bool) -> str:
    octets = [1 + _bits(h, 0, 223), _bits(h, 8, 256), _bits(h, 16, 256), 1 + _bits(h, 24, 254)]
    if not valid:
        octets[_bits(h, 32, 4)] = 256 + _bits(h, 40, 744)
    return ".".join(str(o) for o in octets)


def _person(h: int) -> str:
    return f"{FIRST_NAMES[_bits(h, 0, len(FIRST_NAMES))]} {LAST_NAMES[_bits(h, 8, len(LAST_NAMES))]}"


def _email(h: int) -> str:
    first, last = FIRST_NAMES[_bits(h, 0, len(FIRST_NAMES))].lower(), LAST_NAMES[_bits(h, 8, len(LAST_NAMES))].lower()
    return f"{first}.{last}{_bits(h, 16, 100):02d}@{EMAIL_DOMAINS[_bits(h, 24, len(EMAIL_DOMAINS))]}"


def make_value(label: str, h: int) -> str:
    """A value of entity or decoy ``label``, fixed by the hash ``h``."""
    if label == "EMAIL_ADDRESS":
        return _email(h)
    if label == "PHONE_NUMBER":
        return _phone(h)
    if label == "US_SSN":
        return _ssn(h, True)
    if label == "SSN_RESERVED":
        return _ssn(h, False)
    if label == "CREDIT_CARD":
        return _card(h, True)
    if label == "CARD_INVALID":
        return _card(h, False)
    if label == "IP_ADDRESS":
        return _ip(h, True)
    if label == "IP_INVALID":
        return _ip(h, False)
    if label == "PERSON":
        return _person(h)
    if label == "PRODUCT_NAME":
        return f"{PRODUCT_ADJECTIVES[_bits(h, 0, 16)]} {PRODUCT_NOUNS[_bits(h, 8, 16)]}"
    if label == "ORDER_NUMBER":
        a, e, n = _phone_digits(h)
        return f"ORD-{a}-{e}-{n}"
    raise ValueError(f"unknown PII label {label!r}")


def filler(h: int) -> str:
    return FILLERS[_bits(h, 0, len(FILLERS))]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def neutral_sentence(h: int) -> str:
    return _sentence(NEUTRAL_SENTENCES[_bits(h, 0, len(NEUTRAL_SENTENCES))])


def carry(label: str, value: str) -> str:
    """One sentence holding ``value`` (never at its start, so a name never opens a sentence)."""
    return _sentence(CARRIERS[label].format(value))
