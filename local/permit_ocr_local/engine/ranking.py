"""How good a read of a card is: which of the places the card may be is taken, and when to stop looking."""

from __future__ import annotations

from .layout import Field

Rank = tuple[int, int]

MIN_FIELDS = 3  # fewer readable fields than this and it is not a permit
# without its title read, a card is a permit only when most of a permit's fields read: a passport page's
# machine-readable line gives a letter and 8 digits, a count-like pair and a name-like word
MIN_UNTITLED = 5
GOOD = (1, 7)  # a read with its title and this many fields seen is taken at once: no other candidate is read
FAIR = (1, 5)  # ... and one with its title and this many is taken after MAX_READS candidates were read
MAX_READS = 3


def titled(fields: dict[str, Field]) -> bool:
    """The printed title was read (a type inferred from the number has no box: it was not seen)."""
    title = fields.get("permitType")
    return title is not None and title.quad is not None


def complete(fields: dict[str, Field]) -> bool:
    """Enough fields seen on the card for a permit: MIN_FIELDS with the title read, MIN_UNTITLED without."""
    return sum(f.quad is not None for f in fields.values()) >= (MIN_FIELDS if titled(fields) else MIN_UNTITLED)


def rank(fields: dict[str, Field], is_complete: bool) -> Rank:
    """How good a read is: a complete one with its title over one with the title alone, then the fields seen
    on the card and not in doubt (a period mended by the span rule or a value picked among rivals says less
    that this is the card: counted, it made a read of the wrong part of a page good enough to stop looking)."""
    return int(is_complete and titled(fields)), sum(f.quad is not None and not f.doubted for f in fields.values())
