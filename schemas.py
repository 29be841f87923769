"""Request and response bodies: strict at the boundary, so bad input never reaches the database."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, RootModel, StringConstraints

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
Name = Annotated[str, StringConstraints(max_length=64), AfterValidator(_storable)]
ModelName = Annotated[str, StringConstraints(max_length=100), AfterValidator(_storable)]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_storable)]
MetadataValue = Annotated[str, StringConstraints(max_length=512), AfterValidator(_storable)]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)]

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
    refresh_token: str


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(max_length=1000)]


class AccountUpdate(BaseModel):
    email: Annotated[EmailStr, AfterValidator(str.lower)] = None  # type: ignore[assignment]


class PasswordChange(BaseModel):
    current_password: Password
    new_password: Password


class AccountDeletion(BaseModel):
    password: Password


class MessageCreate(BaseModel):
    role: Role
    content: Content
    name: Name | None = None
    model: ModelName | None = None
    metadata: Metadata = {}

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "user", "content": "你好, what is FastAPI?"}]})


# In the update bodies a field may be left out, but not set to null: its default is
# None, which (as a default) is never validated against the non-null type.
class MessageUpdate(BaseModel):
    content: Content = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]

    # A field that cannot be changed (role, name...) is refused rather than silently ignored.
    model_config = ConfigDict(extra="forbid")


class MessagePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    chat_id: int
    role: Role
    content: str
    name: str | None
    model: str | None
    metadata: dict[str, str]
    created_at: datetime


class MessageList(RootModel[list[MessagePublic]]):
    pass


class MessageBatch(BaseModel):
    messages: Annotated[list[MessageCreate], Field(min_length=1, max_length=1000)]


class MessagePage(BaseModel):
    data: list[MessagePublic]
    first_id: int | None
    last_id: int | None
    has_more: bool


class SearchHit(BaseModel):
    id: str = Field(description="m<message id>, or c<chat id> for a chat whose title matches")
    chat_id: int
    chat_title: str
    message_id: int | None
    role: Role | None
    snippet: str = Field(description="HTML: the text escaped, the matching words in <mark>")
    created_at: datetime


class SearchPage(BaseModel):
    data: list[SearchHit]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ChatCreate(BaseModel):
    title: Title
    metadata: Metadata = {}
    messages: Annotated[list[MessageCreate], Field(max_length=1000)] = []

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Trip to Kyoto"}]})


class ChatUpdate(BaseModel):
    title: Title = None  # type: ignore[assignment]
    pinned: bool = None  # type: ignore[assignment]
    archived: bool = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]

    model_config = ConfigDict(extra="forbid")


class ChatPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    pinned: bool
    archived: bool
    metadata: dict[str, str]
    created_at: datetime
    updated_at: datetime


class ChatWithMessages(ChatPublic):
    messages: list[MessagePublic]


class ChatTurn(BaseModel):
    role: Role
    content: str
    name: str | None = None


class OpenAIExport(BaseModel):
    """A chat as the `messages` of a chat-completions request."""

    messages: list[ChatTurn]


class ImportResult(BaseModel):
    chats: list[ChatPublic]
    messages: int
    skipped_messages: int
    skipped_conversations: int


class Deleted(BaseModel):
    ok: Literal[True] = True


class DeletedChats(BaseModel):
    deleted: int


class Welcome(BaseModel):
    message: str
