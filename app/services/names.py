"""Name folding for search: case, accents, punctuation and common Indian spelling variants.

"Lakshmi" and "Laxmi", "Mohammed" and "Muhammad", "Preeti" and "Priti", "Sri"/"Shree" fold
to the same key, so a receptionist finds the patient however the name was spelt last time.
Names in Indian scripts are kept in their script (lower-cased where the script has case).
"""
from __future__ import annotations

import re
import unicodedata

# Order matters: longer patterns first. Applied to Latin-script words only.
_VARIANTS: list[tuple[str, str]] = [
    ("ksh", "x"), ("chh", "c"), ("ch", "c"), ("sh", "s"), ("zh", "j"), ("z", "j"),
    ("ph", "f"), ("th", "t"), ("dh", "d"), ("bh", "b"), ("kh", "k"), ("gh", "g"), ("jh", "j"),
    ("w", "v"), ("q", "k"), ("ck", "k"),
    ("ee", "i"), ("ea", "i"), ("ii", "i"), ("y", "i"), ("oo", "u"), ("ou", "u"), ("aa", "a"),
    ("o", "u"), ("e", "i"),
]
_DOUBLE = re.compile(r"([a-z])\1+")


def _fold_latin_word(word: str) -> str:
    for pattern, replacement in _VARIANTS:
        word = word.replace(pattern, replacement)
    word = _DOUBLE.sub(r"\1", word)
    if len(word) > 3 and word.endswith("a"):
        word = word[:-1]  # Ramesha / Ramesh, Krishna / Krishn
    return word


def fold_word(word: str) -> str:
    """fold() of one word already lower-case, unaccented Latin letters: the same key,
    without fold()'s Unicode work (name search folds a hundred typing-slip candidates)."""
    return _fold_latin_word(word)


def _strip_accents(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    # Only Latin combining marks are dropped: in Indian scripts the vowel signs are
    # combining characters too, and they are part of the name.
    stripped = "".join(c for c in decomposed if not (unicodedata.combining(c) and "\u0300" <= c <= "\u036f"))
    return unicodedata.normalize("NFC", stripped)  # recompose Indian-script vowel signs


def clean_display_name(raw: str) -> str:
    """The name as it will be stored and shown: NFC, single spaces, no control characters."""
    text = unicodedata.normalize("NFC", raw or "")
    text = "".join(c for c in text if unicodedata.category(c)[0] != "C")
    return " ".join(text.split())


def fold(name: str) -> str:
    """The search key of a name (also applied to what is typed in the search box)."""
    text = _strip_accents(clean_display_name(name)).lower().replace("'", "").replace("\u2019", "")
    # Keep letters, marks (Indian vowel signs are marks) and digits; the rest separates words.
    text = "".join(c if unicodedata.category(c)[0] in "LMN" else " " for c in text)
    words = []
    for word in text.split():
        if word in {"mr", "mrs", "ms", "dr", "smt", "baby", "master"}:
            continue  # honorifics are not part of the name
        words.append(_fold_latin_word(word) if word.isascii() else word)
    return " ".join(words)
