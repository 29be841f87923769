"""Request and response bodies: strict at the boundary, so bad input never reaches the database."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Self

from annotated_types import Ge, Le
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    RootModel,
    Strict,
    StringConstraints,
    model_validator,
)

from service import rules
from service.imports import FORMATS


def _content(text: str) -> str:
    limit = rules.content_limit.get()
    if len(rules.storable(text).encode()) > limit:
        raise ValueError(f"must be at most {limit} bytes of UTF-8")
    return text


def _digits(value: object) -> object:
    # Path and query ids are digits only: " 1", "1.0", "1_0" and "+1" name nothing.
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written in digits")
    return value


Storable = AfterValidator(rules.storable)
Username = Annotated[
    str,
    StringConstraints(min_length=rules.USERNAME_MIN, max_length=rules.USERNAME_MAX, pattern=rules.USERNAME_PATTERN),
]
Password = Annotated[str, StringConstraints(min_length=rules.PASSWORD_MIN, max_length=rules.PASSWORD_MAX), Storable]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=rules.TITLE_MAX), Storable]
Content = Annotated[str, AfterValidator(_content)]
Role = Literal[rules.ROLES]  # type: ignore[valid-type]
Name = Annotated[str, StringConstraints(max_length=rules.NAME_MAX), Storable]
ModelName = Annotated[str, StringConstraints(max_length=rules.MODEL_MAX), Storable]
MetadataKey = Annotated[str, StringConstraints(min_length=1, max_length=rules.METADATA_KEY_MAX), Storable]
MetadataValue = Annotated[str, StringConstraints(max_length=rules.METADATA_VALUE_MAX), Storable]
Metadata = Annotated[dict[MetadataKey, MetadataValue], Field(max_length=rules.METADATA_KEYS_MAX)]
# An id in a path or query: digits only, 1 to MAX_ID.
Id = Annotated[int, Ge(1), Le(rules.MAX_ID), BeforeValidator(_digits)]
# A count in a query: digits only. (The validator comes last, so that the bounds stay in the
# JSON schema as minimum and maximum.)
PageSize = Annotated[int, Ge(1), Le(rules.PAGE_MAX), BeforeValidator(_digits)]
Offset = Annotated[int, Ge(0), Le(rules.MAX_ID), BeforeValidator(_digits)]
BatchSize = Annotated[int, Ge(1), Le(rules.BATCH_MAX), BeforeValidator(_digits)]
# An id in a JSON body: a JSON integer, never a string or a float.
BodyId = Annotated[int, Strict(), Ge(1), Le(rules.MAX_ID)]


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
    parent_id: BodyId | None = Field(
        default=None,
        description="The message this one follows. Left out: the chat's current leaf; null: a new root",
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "user", "content": "你好, what is FastAPI?"}]})

    def columns(self) -> dict[str, Any]:
        return self.model_dump(include=MESSAGE_COLUMNS)


MESSAGE_COLUMNS = {"role", "content", "name", "model", "metadata"}


class ChatMessage(MessageCreate):
    """A message of a new chat: `id` and `parent_id` name other messages of the same list
    (as an export writes them), mapped to new ids; a message without `parent_id` follows
    the one before it."""

    id: BodyId | None = None


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
    parent_id: int | None = Field(description="The message this one answers or follows; null for a root")
    sibling_ids: list[int] = Field(description="The messages with the same parent, itself included, oldest first")
    role: Role
    content: str
    name: str | None
    model: str | None
    metadata: dict[str, str]
    created_at: datetime


class MessageList(RootModel[list[MessagePublic]]):
    pass


class MessageBatch(BaseModel):
    messages: Annotated[list[MessageCreate], Field(min_length=1, max_length=rules.BATCH_MAX)]
    parent_id: BodyId | None = Field(
        default=None,
        description="The first message's parent (left out: the chat's current leaf; null: a new root); "
        "each following message is the child of the one before. The messages' own `parent_id` is ignored",
    )


class Page(BaseModel):
    """A page of results, OpenAI-style: the ids of its first and last item bound the next request."""

    @classmethod
    def of(cls, rows: Sequence[Any], limit: int) -> Self:
        """The first `limit` of `rows` (one more was read to tell whether more follow)."""
        data = list(rows[:limit])
        return cls(
            data=data,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
            has_more=len(rows) > limit,
        )


class MessagePage(Page):
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


class SearchPage(Page):
    data: list[SearchHit]
    first_id: str | None
    last_id: str | None
    has_more: bool


class ChatCreate(BaseModel):
    title: Title
    metadata: Metadata = {}
    messages: Annotated[list[ChatMessage], Field(max_length=rules.BATCH_MAX)] = []
    current_message_id: BodyId | None = Field(
        default=None, description="The `id` of one of `messages` to show (its newest leaf); default: the last"
    )

    model_config = ConfigDict(json_schema_extra={"examples": [{"title": "Trip to Kyoto"}]})


class ChatUpdate(BaseModel):
    title: Title = None  # type: ignore[assignment]
    pinned: bool = None  # type: ignore[assignment]
    archived: bool = None  # type: ignore[assignment]
    metadata: Metadata = None  # type: ignore[assignment]
    current_message_id: BodyId = Field(
        default=None,  # type: ignore[assignment]
        description="Show the branch through this message: the chat's current leaf becomes its newest leaf",
    )

    model_config = ConfigDict(extra="forbid")


class ChatPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    pinned: bool
    archived: bool
    metadata: dict[str, str]
    current_message_id: int | None = Field(description="The leaf the chat shows; null when it has no messages")
    created_at: datetime
    updated_at: datetime


class TrashedChat(ChatPublic):
    trashed_at: datetime = Field(description="When it was moved to the trash; it is deleted TRASH_DAYS later")


class ChatWithMessages(ChatPublic):
    messages: list[MessagePublic]


class ChatTurn(BaseModel):
    role: Role
    content: str
    name: str | None = None


class OpenAIExport(BaseModel):
    """A chat as the `messages` of a chat-completions request."""

    messages: list[ChatTurn]


class SkippedConversationPublic(BaseModel):
    index: int = Field(description="The conversation's place in the export, from 0")
    source_id: str | None = Field(description="Its id in the export, when it has one")
    reason: str


class ImportResult(BaseModel):
    format: Literal[(*FORMATS, "empty")] = Field(description="The export's format, told by its content")  # type: ignore[valid-type]
    chats: list[ChatPublic]
    messages: int
    skipped_messages: int
    skipped_conversations: int
    skipped_conversation_details: list[SkippedConversationPublic] = Field(
        description=f"The first {rules.SKIPPED_LISTED} conversations skipped, with the reason"
    )


class Deleted(BaseModel):
    ok: Literal[True] = True


class DeletedChats(BaseModel):
    deleted: int


# A time as sent (any offset), kept in UTC.
UtcTime = Annotated[AwareDatetime, AfterValidator(lambda value: value.astimezone(UTC))]


class BulkFilter(BaseModel):
    archived: bool | None = None
    older_than: UtcTime | None = Field(default=None, description="Chats last active before this time")
    metadata: Metadata = Field(default={}, description="Chats with each of these metadata pairs")

    model_config = ConfigDict(extra="forbid")


class BulkRequest(BaseModel):
    ids: Annotated[list[BodyId], Field(min_length=1, max_length=rules.BATCH_MAX)] | None = None
    filter: BulkFilter | None = None
    action: Literal[rules.BULK_ACTIONS]  # type: ignore[valid-type]

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"ids": [1, 2], "action": "archive"}]})

    @model_validator(mode="after")
    def ids_or_filter(self) -> Self:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("send either `ids` or `filter`")
        return self


class BulkResult(BaseModel):
    ids: list[int] = Field(description="The chats the action applied to")
    not_found: list[int] = Field(description="Ids that name none of your chats the action applies to")


class ChangePublic(BaseModel):
    kind: Literal[rules.CHANGE_KINDS]  # type: ignore[valid-type]
    id: int
    chat_id: int
    change: Literal[rules.CHANGE_TYPES]  # type: ignore[valid-type]
    at: datetime


class ChangePage(BaseModel):
    data: list[ChangePublic]
    cursor: str = Field(description="`since` of the next call")
    has_more: bool


Scope = Literal[rules.SCOPES]  # type: ignore[valid-type]


class ApiKeyCreate(BaseModel):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=rules.NAME_MAX), Storable]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(rules.SCOPES))]
    expires_at: UtcTime | None = None

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "sync script", "scopes": ["read"]}]}
    )

    @model_validator(mode="after")
    def read_comes_with_write(self) -> Self:
        if "read" not in self.scopes or len(set(self.scopes)) != len(self.scopes):
            raise ValueError('scopes must be ["read"] or ["read", "write"]')
        if self.expires_at is not None and self.expires_at <= datetime.now(UTC):
            raise ValueError("expires_at must be in the future")
        return self


class ApiKeyPublic(BaseModel):
    id: int
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    name: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="The key itself: shown this once, then never again")


class Welcome(BaseModel):
    message: str
