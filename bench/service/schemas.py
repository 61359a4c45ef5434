"""What the API accepts and answers: public fields only, bounded to fit the columns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, StringConstraints, model_validator

# bench_user.name is varchar(100); an email address is at most 254 characters (RFC 5321), so
# EmailStr always fits bench_user.email, varchar(255).
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: EmailStr


class UserUpdate(BaseModel):
    """A partial update: name and/or email; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: EmailStr | None = None

    @model_validator(mode="after")
    def _some_value_given(self) -> UserUpdate:
        given = self.model_dump(exclude_unset=True)
        if not given:
            raise ValueError("give name and/or email")
        if None in given.values():
            raise ValueError("name and email cannot be null")
        return self

    def changes(self) -> dict[str, str]:
        """The fields given, by name (never null once validated)."""
        return self.model_dump(exclude_unset=True)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    email: str
    created_at: datetime
