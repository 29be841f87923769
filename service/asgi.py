"""What the request middleware read from an ASGI scope once the app has answered it."""

from collections.abc import Sequence

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute
from starlette.types import Scope

# Requests that matched no route: one label for all, whatever path they asked for.
UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RouteTemplates:
    """The full path template of the route that answered a request (`/v1/chats/{chat_id}`),
    never the path itself. The route in the scope is the one its router declared, which
    knows only its own part of the path (`/{chat_id}`): the app's routes give the whole."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes
        self.templates: dict[int, str] | None = None

    def __call__(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            # A mount (the static files) leaves no route, only the path it took in root_path.
            mount = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
            return f"{mount}/{{path}}" if mount else UNMATCHED
        if self.templates is None:
            # Read at the first request, once every route is in place.
            self.templates = {
                id(context.original_route): context.path_format for context in iter_route_contexts(self.routes)
            }
        return self.templates.get(id(route)) or getattr(route, "path", UNMATCHED)


def request_method(scope: Scope) -> str:
    """The method, or OTHER for any a client made up (each would be a series of its own)."""
    return scope["method"] if scope["method"] in METHODS else "OTHER"
