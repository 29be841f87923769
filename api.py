"""All versioned routes under /v1."""

from fastapi import APIRouter

import auth
import chat

api_router = APIRouter()
# Routes are matched one by one in the order they were added, and each costs this FastAPI
# a regex and its own bookkeeping: the chat routes, which take nearly every request, first.
# Every chat route also takes an API key; one without the `write` scope may only read.
KEY_SCOPE = {403: {"description": "An API key without the `write` scope, used to change something"}}
api_router.include_router(chat.router, prefix="/v1/chats", tags=["chats"], responses=KEY_SCOPE)
api_router.include_router(auth.router, prefix="/v1/auth", tags=["auth"])
