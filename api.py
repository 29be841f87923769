"""All versioned routes under /v1."""

from fastapi import APIRouter

import auth
import chat

api_router = APIRouter()
api_router.include_router(auth.router, prefix="/v1/auth", tags=["auth"])
api_router.include_router(chat.router, prefix="/v1/chats", tags=["chats"])
