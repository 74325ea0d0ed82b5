"""Who may use the dashboard, for which tenant, and the checks every action
passes.

Tokens: ``TOKEN`` is the operator's (every tenant's jobs), ``TENANT=TOKEN``
a tenant's (that tenant's jobs only; another's behave as if they did not
exist). Either written after ``ro:`` (``ro:TOKEN``, ``ro:TENANT=TOKEN``) may
only read: it sees what the same token without ``ro:`` would, and every
action (POST) it sends is refused with 403, changing nothing; the page hides
the action buttons from it. Locations, their thumbnails and the workers are
the library's, not a tenant's: every token sees them (a tenant's token
queues an index of any location, for its own tenant).

A request proves a token with ``Authorization: Bearer TOKEN`` (scripts) or
with the cookie the login page sets (the browser: an ``EventSource``
cannot send headers). With no token at all the server is open, which
``phasekit serve`` allows on a loopback address only.

Actions (POST) must also carry ``X-CSRF-Token``: a value derived from the
server's secret and the caller's credential, embedded in the page and given
by ``GET /api/session``. A cross-site page can neither read it (no CORS
headers are ever sent) nor send a custom header without a preflight this
server never approves; a request whose ``Origin`` or ``Sec-Fetch-Site``
says it comes from another site is refused whatever it carries. A request
authenticated by its ``Authorization`` header needs no CSRF token: a
browser never adds that header on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from ..errors import InvalidInputError
from ._http import ApiError

#: The cookie holding the browser's token (HttpOnly, SameSite=Strict).
COOKIE = "phasekit_token"
#: The header an action's CSRF token travels in.
CSRF_HEADER = "x-csrf-token"
#: Tokens shorter than this are refused: they could be guessed.
MIN_TOKEN = 16
#: What a token spec starts with when the token may only read.
READ_ONLY_PREFIX = "ro:"


class Tokens(dict[str, str | None]):
    """The server's tokens, each mapped to its tenant (None: every tenant),
    and which of them may only read (:attr:`read_only`)."""

    def __init__(
        self, grants: Mapping[str, str | None] | None = None, read_only: Iterable[str] = ()
    ) -> None:
        super().__init__(grants or {})
        self.read_only: set[str] = set(read_only)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request acts for."""

    #: The tenant whose jobs it sees and acts on; None: every tenant's.
    tenant: str | None
    #: The token it proved ("" on an open server): CSRF tokens derive from it.
    credential: str
    #: Authenticated by its Authorization header (no ambient credential).
    bearer: bool
    #: Its token may only read: every action is refused (403).
    read_only: bool = False


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or ``localhost``): a server
    bound there is reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, it may be reachable


def parse_tokens(specs: Iterable[str]) -> Tokens:
    """Token specs (``TOKEN`` for the operator, ``TENANT=TOKEN`` for a
    tenant, either after ``ro:`` to read only) as a map from token to tenant
    (None: every tenant) whose :attr:`Tokens.read_only` holds the read-only
    ones; InvalidInputError for a short token, a bad tenant name, or one
    token given twice with different rights."""
    from ..jobs._scope import check_tenant

    tokens = Tokens()
    for spec in specs:
        tenant: str | None = None
        token = spec.strip()
        read_only = token.startswith(READ_ONLY_PREFIX)
        if read_only:
            token = token[len(READ_ONLY_PREFIX) :].strip()
        if "=" in token:
            name, token = token.split("=", 1)
            tenant = check_tenant(name.strip())
            token = token.strip()
        if len(token) < MIN_TOKEN:
            raise InvalidInputError(
                f"a token must be at least {MIN_TOKEN} characters (a random one: "
                "python -c 'import secrets; print(secrets.token_urlsafe())')"
            )
        if token in tokens and tokens[token] != tenant:
            raise InvalidInputError("one token is given for two tenants")
        if token in tokens and (token in tokens.read_only) != read_only:
            raise InvalidInputError("one token is given both read-only (ro:) and not")
        tokens[token] = tenant
        if read_only:
            tokens.read_only.add(token)
    return tokens


class Access:
    """The server's tokens and secret: authenticates requests and checks
    actions."""

    def __init__(
        self,
        tokens: Mapping[str, str | None],
        secret: bytes | None = None,
        read_only: Iterable[str] = (),
    ) -> None:
        self._tokens = dict(tokens)
        self._read_only = frozenset(read_only)
        unknown = self._read_only - set(self._tokens)
        if unknown:
            raise InvalidInputError(f"{len(unknown)} read-only token(s) not among the tokens")
        # Per server start: CSRF tokens of an earlier run stop working.
        self._secret = secret if secret is not None else secrets.token_bytes(32)

    @property
    def open(self) -> bool:
        """True when no token is needed (a loopback-only server)."""
        return not self._tokens

    def check_token(self, token: str) -> tuple[bool, str | None]:
        """Whether ``token`` is one of the server's, and the tenant it is for
        (None: every tenant). Compared in constant time."""
        known, tenant, _ = self._grant(token)
        return known, tenant

    def _grant(self, token: str) -> tuple[bool, str | None, bool]:
        """Whether ``token`` is known, its tenant and whether it may only
        read; every token compared, in constant time each."""
        known_token, found, read_only = False, None, False
        candidate = token.encode("utf-8", "surrogateescape")
        for known, tenant in self._tokens.items():
            if hmac.compare_digest(known.encode("utf-8", "surrogateescape"), candidate):
                known_token, found, read_only = True, tenant, known in self._read_only
        return known_token, found, read_only

    def authenticate(self, request: Request) -> Principal | None:
        """Who ``request`` acts for; None if it proves no token the server knows."""
        if self.open:
            return Principal(None, "", bearer=False)
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            known, tenant, read_only = self._grant(value.strip())
            if not known:
                return None
            return Principal(tenant, value.strip(), bearer=True, read_only=read_only)
        cookie = request.cookies.get(COOKIE)
        if cookie:
            known, tenant, read_only = self._grant(cookie)
            if known:
                return Principal(tenant, cookie, bearer=False, read_only=read_only)
        return None

    def require(self, request: Request) -> Principal:
        """:meth:`authenticate`, or 401."""
        principal = self.authenticate(request)
        if principal is None:
            raise ApiError(401, "a token is needed: Authorization: Bearer TOKEN, or log in")
        return principal

    def csrf_token(self, principal: Principal) -> str:
        """The CSRF token of ``principal``'s credential on this server."""
        message = b"csrf\0" + principal.credential.encode("utf-8", "surrogateescape")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check_action(self, request: Request, principal: Principal) -> None:
        """403 unless ``request`` may change something: its token may do
        more than read, it does not come from another site, and (unless it
        authenticated by its header) it carries its CSRF token."""
        if principal.read_only:
            raise ApiError(403, "this token may only read: actions are refused")
        refuse_cross_site(request)
        if principal.bearer:
            return
        sent = request.headers.get(CSRF_HEADER, "")
        expected = self.csrf_token(principal).encode()
        if not hmac.compare_digest(sent.encode("utf-8", "replace"), expected):
            raise ApiError(403, f"missing or wrong {CSRF_HEADER} header (see GET /api/session)")


def refuse_cross_site(request: Request) -> None:
    """403 for a request a browser says comes from another site or origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise ApiError(403, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin is not None:
        own = f"{request.url.scheme}://{request.headers.get('host', '')}"
        if origin.lower() != own.lower():
            raise ApiError(403, f"cross-origin request refused (Origin: {origin})")
