"""A pack's own declaration: who owns it, its version, and the categories it adds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from casebook.sdk.models import add_categories

PACK_ATTRIBUTE = "PACK"


@dataclass(frozen=True)
class Pack:
    """Put `PACK = Pack(owner="payments-sre")` in a pack's `__init__.py`.

    `owner` is the default owner of every analyzer in the pack (an analyzer's own `owner=`
    wins); `categories` extends the closed vocabulary of cause categories, explicitly, so a
    typo in a finding's category is still an error.
    """

    owner: str | None = None
    version: str | None = None
    categories: tuple[str, ...] = field(default_factory=tuple)

    def __init__(self, owner: str | None = None, version: str | None = None,
                 categories: Iterable[str] = ()):
        object.__setattr__(self, "owner", owner)
        object.__setattr__(self, "version", version)
        object.__setattr__(self, "categories", tuple(categories))
        add_categories(self.categories)
