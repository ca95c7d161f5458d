"""Body schemas of every event type in the after-sales domain.

Each body is a message declared with `@event_type("name", tag=...)`; tags 0x100-0x1FF are
reserved for event bodies. `validate()` checks every stateless rule and names the field.
"""

from __future__ import annotations

from .errors import Code, ValidationError
from .events import EventBody, event_type
from .types import Hash32


@event_type("rating.submit", tag=0x1A0)
class RatingSubmit(EventBody):
    ticket_id: Hash32
    score: int
    comment_hash: Hash32 | None

    def validate(self) -> None:
        if not 1 <= self.score <= 5:
            raise ValidationError(Code.FIELD_OUT_OF_RANGE, f"a score is 1..5, got {self.score}", field="score")
