"""PII recognizers in the style of Presidio's: a pattern finds candidates, a validator keeps the
real ones. Each returns True when a text holds at least one entity of its type.

- EMAIL_ADDRESS: local@domain.tld.
- PHONE_NUMBER: US numbers ``(AAA) EEE-NNNN``, ``AAA-EEE-NNNN``, ``AAA.EEE.NNNN``, ``+1 AAA EEE NNNN``;
  area and exchange codes start with 2-9; a number glued to a word or a dash (``ORD-415-...``) is not one.
- US_SSN: ``AAA-GG-SSSS`` outside the never-issued ranges (area 000, 666, 900-999; group 00; serial 0000).
- CREDIT_CARD: 13-19 digits (spaces or dashes allowed) with a card network prefix that pass the Luhn check.
- IP_ADDRESS: a dotted quad whose octets are all 0-255, not part of a longer dotted number.
- PERSON: a first name from a list of common given names followed by a capitalized surname.
"""

from __future__ import annotations

import re
from collections.abc import Callable

EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
PHONE = re.compile(r"(?<![\w-])(?:\+1[ .-]?)?(?:\(([2-9]\d\d)\) ?|([2-9]\d\d)[-. ])([2-9]\d\d)[-. ](\d{4})(?![\w-])")
SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")
CARD = re.compile(r"(?<![\w-])(?:\d[ -]?){12,18}\d(?![\w-])")
IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.]|\.\d)")
PERSON = re.compile(r"\b([A-Z][a-z]+) ([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")
CARD_PREFIXES = ("4", "34", "37", "51", "52", "53", "54", "55", "6011", "65")

# Common US given names (Social Security Administration popularity lists), the recognizer's lexicon.
FIRST_NAMES = frozenset(
    [
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
        "Lisa",
        "Daniel",
        "Nancy",
        "Matthew",
        "Betty",
        "Anthony",
        "Margaret",
        "Mark",
        "Sandra",
        "Donald",
        "Ashley",
        "Steven",
        "Kimberly",
        "Paul",
        "Emily",
        "Andrew",
        "Donna",
        "Joshua",
        "Michelle",
        "Kenneth",
        "Carol",
        "Kevin",
        "Amanda",
        "Brian",
        "Dorothy",
        "George",
        "Melissa",
        "Timothy",
        "Deborah",
        "Ronald",
        "Stephanie",
        "Edward",
        "Rebecca",
        "Jason",
        "Sharon",
        "Jeffrey",
        "Laura",
        "Ryan",
        "Cynthia",
        "Jacob",
        "Kathleen",
        "Gary",
        "Amy",
        "Nicholas",
        "Angela",
        "Eric",
        "Shirley",
        "Jonathan",
        "Anna",
        "Stephen",
        "Brenda",
        "Larry",
        "Pamela",
        "Justin",
        "Emma",
        "Scott",
        "Nicole",
        "Brandon",
        "Helen",
        "Benjamin",
        "Samantha",
        "Samuel",
        "Katherine",
        "Gregory",
        "Christine",
        "Alexander",
        "Debra",
        "Frank",
        "Rachel",
        "Patrick",
        "Carolyn",
        "Raymond",
        "Janet",
        "Jack",
        "Catherine",
        "Dennis",
        "Maria",
        "Jerry",
        "Heather",
        "Tyler",
        "Diane",
        "Aaron",
        "Ruth",
        "Jose",
        "Julie",
        "Adam",
        "Olivia",
        "Nathan",
        "Joyce",
        "Henry",
        "Virginia",
        "Douglas",
        "Victoria",
        "Zachary",
        "Kelly",
        "Peter",
        "Lauren",
        "Kyle",
        "Christina",
        "Ethan",
        "Joan",
        "Walter",
        "Evelyn",
        "Noah",
        "Judith",
        "Jeremy",
        "Megan",
        "Christian",
        "Andrea",
        "Keith",
        "Cheryl",
        "Roger",
        "Hannah",
        "Terry",
        "Jacqueline",
        "Gerald",
        "Martha",
        "Harold",
        "Gloria",
        "Sean",
        "Teresa",
        "Austin",
        "Ann",
        "Carl",
        "Sara",
        "Arthur",
        "Madison",
        "Lawrence",
        "Frances",
        "Dylan",
        "Kathryn",
        "Jesse",
        "Janice",
        "Jordan",
        "Jean",
        "Bryan",
        "Abigail",
        "Billy",
        "Alice",
        "Joe",
        "Judy",
        "Bruce",
        "Sophia",
        "Gabriel",
        "Grace",
        "Logan",
        "Denise",
        "Albert",
        "Amber",
        "Willie",
        "Doris",
        "Alan",
        "Marilyn",
        "Juan",
        "Danielle",
        "Wayne",
        "Beverly",
        "Elijah",
        "Isabella",
        "Randy",
        "Theresa",
        "Roy",
        "Diana",
        "Vincent",
        "Natalie",
        "Ralph",
        "Brittany",
        "Eugene",
        "Charlotte",
        "Russell",
        "Marie",
        "Bobby",
        "Kayla",
        "Mason",
        "Alexis",
        "Philip",
        "Lori",
        "Louis",
        "Carlos",
        "Luis",
        "Miguel",
        "Wei",
        "Priya",
        "Ahmed",
        "Fatima",
        "Mohammed",
        "Aisha",
        "Hiroshi",
        "Yuki",
        "Olga",
        "Ivan",
    ]
)


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def has_email(text: str) -> bool:
    return EMAIL.search(text) is not None


def has_phone(text: str) -> bool:
    return PHONE.search(text) is not None


def has_ssn(text: str) -> bool:
    for m in SSN.finditer(text):
        area, group, serial = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if area not in (0, 666) and area < 900 and group != 0 and serial != 0:
            return True
    return False


def has_card(text: str) -> bool:
    for m in CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and digits.startswith(CARD_PREFIXES) and _luhn_ok(digits):
            return True
    return False


def has_ip(text: str) -> bool:
    return any(all(int(g) <= 255 for g in m.groups()) for m in IPV4.finditer(text))


def has_person(text: str) -> bool:
    return any(m.group(1) in FIRST_NAMES for m in PERSON.finditer(text))


RECOGNIZERS: dict[str, Callable[[str], bool]] = {
    "EMAIL_ADDRESS": has_email,
    "PHONE_NUMBER": has_phone,
    "US_SSN": has_ssn,
    "CREDIT_CARD": has_card,
    "IP_ADDRESS": has_ip,
    "PERSON": has_person,
}


def entities_in(text: str) -> list[str]:
    """Entity types found in ``text``."""
    return [name for name, found in RECOGNIZERS.items() if found(text)]
