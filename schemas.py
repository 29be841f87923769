"""Request and response bodies: strict at the boundary, so bad input never reaches the database."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, StringConstraints

from config import settings


def _storable(text: str) -> str:
    # PostgreSQL cannot store NUL in text and no database can store a lone surrogate:
    # refusing both here keeps every backend alike.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return text


def _content(text: str) -> str:
    if len(_storable(text).encode()) > settings.max_content_bytes:
        raise ValueError(f"must be at most {settings.max_content_bytes} bytes of UTF-8")
    return text


Username = Annotated[str, StringConstraints(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), AfterValidator(_storable)]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), AfterValidator(_storable)
]
Content = Annotated[str, AfterValidator(_content)]
Role = Literal["system", "user", "assistant"]

# Ids are 64-bit; anything larger cannot name a row and is refused as invalid input.
MAX_ID = 2**63 - 1


class UserCreate(BaseModel):
    email: Annotated[EmailStr, AfterValidator(str.lower)]
    username: Username
    password: Password

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "alice@example.com", "username": "alice", "password": "correct horse battery"}]
        }
    )


class UserLogin(BaseModel):
    username: Username
    password: Password


class UserPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    username: str
    created_at: datetime


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


class ChatCreate(BaseModel):
    title: Title

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Trip to Kyoto"}]})


class ChatPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    created_at: datetime
    updated_at: datetime


class MessageCreate(BaseModel):
    role: Role
    content: Content

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "user", "content": "你好, what is FastAPI?"}]})


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    chat_id: int
    role: Role
    content: str
    created_at: datetime


class ChatWithMessages(ChatPublic):
    messages: list[MessagePublic]


class Deleted(BaseModel):
    ok: Literal[True] = True


class Welcome(BaseModel):
    message: str
