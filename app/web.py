"""The web shell: fingerprinted static files, security headers, error pages, htmx helpers."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from types import FunctionType, MethodType
from collections.abc import MutableMapping
from typing import Any

from flask import Flask, current_app, get_flashed_messages, render_template, request, url_for
from flask.globals import _cv_request, request_ctx
from flask.templating import Environment
from jinja2.runtime import Context
from flask_wtf.csrf import CSRFError
from htmx_flask.requests import HtmxAwareRequest
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.http import parse_cookie
from werkzeug.utils import cached_property

from app.api.problems import is_api_request, problem_response
from app.observability import REQUEST_ID_ENVIRON_KEY
from app.signing import SessionInterface, csrf_token

ONE_YEAR = 365 * 24 * 3600
_MAX_URLS = 8192  # addresses kept per process; cleared whole when full


@lru_cache(maxsize=512)
def _file_digest(path: str, mtime: float) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def static_digest(app: Flask, filename: str) -> str | None:
    """The content digest of a static file, for its URL. Computed once per process; in
    debug mode the file's mtime is checked so edits show at once."""
    path = Path(app.static_folder or "") / filename
    try:
        if app.debug:
            return _file_digest(str(path), path.stat().st_mtime)
        return _file_digest(str(path), 0.0)
    except OSError:
        return None


def fixed_url(endpoint: str, filename: str | None = None, **values: Any) -> str:
    """url_for with a static file's name as its second argument, for templates:
    `fixed_url('static', 'css/app.css')`. Like every url_for, it is built once per process
    (LisFlask.url_for)."""
    if filename is not None:
        values["filename"] = filename
    return url_for(endpoint, **values)


# Sent with every answer unless a view set its own (_AnswerHeaders).
_SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
)
_SECURITY_HEADER_NAMES = tuple(name.lower() for name, _ in _SECURITY_HEADERS)


class _AnswerHeaders:
    """WSGI middleware for the headers every answer carries: the security headers (unless
    a view set its own), `Vary: Accept-Encoding, HX-Request` (htmx asks the same address
    for a fragment that a plain request gets as a page), and the caching rule: pages are never stored
    (they show patient and money data), a static file asked for with its digest (`?v=`)
    is cached for a year; and the request id (observability), so a user's report of a
    failure can be found in the logs. Written into the plain header list as the answer starts: through
    Werkzeug's Headers in an after-request hook each addition was validated and each
    presence check scanned the list, ~4 % of a small page's CPU for constant headers."""

    def __init__(self, wsgi_app: Any, static_url_path: str):
        self.wsgi_app = wsgi_app
        self.static_prefix = static_url_path.rstrip("/") + "/"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        fingerprinted = (environ.get("PATH_INFO", "").startswith(self.static_prefix)
                         and "&v=" in "&" + environ.get("QUERY_STRING", ""))

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            names = [name.lower() for name, _ in headers]
            headers.extend(header for header, lower in zip(_SECURITY_HEADERS, _SECURITY_HEADER_NAMES)
                           if lower not in names)
            _vary(headers, names)
            request_id = environ.get(REQUEST_ID_ENVIRON_KEY)
            if request_id:
                headers.append(("X-Request-ID", request_id))
            if fingerprinted:
                _replace(headers, names, "cache-control", "Cache-Control", f"public, max-age={ONE_YEAR}, immutable")
            elif "content-type" in names and headers[names.index("content-type")][1].startswith("text/html"):
                _replace(headers, names, "cache-control", "Cache-Control", "no-store")
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


def _vary(headers: list[tuple[str, str]], names: list[str]) -> None:
    """One Vary field (some caches read only the first) naming Accept-Encoding (compressed
    or not, web.compress) and HX-Request besides whatever the answer varies on already."""
    if "vary" not in names:
        headers.append(("Vary", _VARY))
        return
    at = names.index("vary")
    name, value = headers[at]
    lower = value.lower()
    missing = [token for token in ("Accept-Encoding", "HX-Request") if token.lower() not in lower]
    if missing:
        headers[at] = (name, ", ".join([value, *missing]))


_VARY = "Accept-Encoding, HX-Request"


def _replace(headers: list[tuple[str, str]], names: list[str], lower: str, name: str, value: str) -> None:
    headers[:] = [header for header, n in zip(headers, names) if n != lower] + headers[len(names):]
    headers.append((name, value))


def flashed_messages() -> list[tuple[str, str]]:
    """get_flashed_messages(with_categories=True), for the layout: it asks on every page,
    and most pages have none to show, which the request context says directly."""
    context = request_ctx._get_current_object()
    if context.flashes is None and "_flashes" not in context.session:
        return []
    return get_flashed_messages(with_categories=True)


class _Context(Context):
    """Jinja's template context, calling plain functions directly. Jinja routes every call
    in a template (`{{ csrf_token() }}`, `{{ page_chrome() }}`) through Context.call, which
    first asks the function and its `__call__` whether they want the context passed in:
    two attribute lookups that fail by raising, about 3k instructions per call. A plain
    function or method without Jinja's marker (pass_context and friends set
    `jinja_pass_arg`) wants nothing passed; anything else goes the usual way."""

    def call(__self, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's own signature
        kind = type(__obj)
        if ((kind is FunctionType and "jinja_pass_arg" not in __obj.__dict__)
                or (kind is MethodType and type(__obj.__func__) is FunctionType
                    and "jinja_pass_arg" not in __obj.__func__.__dict__)):
            if kwargs:  # Jinja's own bookkeeping, for context-taking callables only
                kwargs.pop("_block_vars", None)
                kwargs.pop("_loop_vars", None)
            try:
                return __obj(*args, **kwargs)
            except StopIteration:  # as Jinja: undefined, not an escaping StopIteration
                return __self.environment.undefined("value was undefined because a callable raised a"
                                                    " StopIteration exception")
        return super().call(__obj, *args, **kwargs)


class _JinjaEnvironment(Environment):
    context_class = _Context

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as a plain dict, not Jinja's ChainMap over the environment's.
        Every render, and every include, copies its template's globals into a new context:
        from a ChainMap that is a Python-level walk of every name (~10 µs, a quarter of
        rendering the layout), from a dict a copy in C. The difference is that a global
        added after a template was loaded would not reach it; all are added in create_app()
        before any template loads, as Jinja asks ("avoid modifying any globals after a
        template is loaded")."""
        return {**self.globals, **(d or {})}


class LisRequest(HtmxAwareRequest):
    """htmx-flask's request (request.htmx), reading cookies from the environ's Cookie field
    directly. Werkzeug finds that field by walking every header of the request (about a
    third of opening the session); a WSGI server folds repeated Cookie fields into that
    one, so the result is the same."""

    @cached_property
    def cookies(self) -> Any:
        return parse_cookie(self.environ.get("HTTP_COOKIE", ""), cls=self.dict_storage_class)


class LisFlask(Flask):
    jinja_environment = _JinjaEnvironment
    # Templates kept in a plain dict, not Jinja's default 400-entry LRU: the app's templates
    # are a fixed set, and each LRU lookup (three per page: the page, its layout, an
    # include) takes a lock and searches and reorders a deque.
    jinja_options = {**Flask.jinja_options, "cache_size": -1}

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._sync_callables: dict[Any, Any] = {}
        self._urls: dict[tuple[Any, ...], str] = {}
        self._fixed_endpoints: dict[str, bool] = {}
        self._context_processors: dict[tuple[str, ...], list[Any]] = {}

    def ensure_sync(self, func: Any) -> Any:
        """Flask's check, remembered per callable. Flask asks it of every hook, context
        processor and view on every request (about 20 per page), and each answer takes
        inspect.iscoroutinefunction a handful of calls to find; the answer never changes."""
        try:
            return self._sync_callables[func]
        except KeyError:
            sync = self._sync_callables[func] = super().ensure_sync(func)
            return sync
        except TypeError:  # an unhashable callable
            return super().ensure_sync(func)

    def update_template_context(self, context: dict[str, Any]) -> None:
        """Flask's, with the context processors that apply to a blueprint worked out once.
        Flask walks the app's and each blueprint's lists on every render, and every
        blueprint's list starts with Flask's default processor (g, request, session), so
        a portal page ran it twice; here each processor runs once, in Flask's order, and
        the values passed to render_template still win."""
        request_ctx = _cv_request.get(None)
        blueprints = request_ctx.request.blueprints if request_ctx is not None else []
        processors = self._context_processors.get(tuple(blueprints))
        if processors is None:
            processors = []
            for name in (None, *reversed(blueprints)):
                for func in self.template_context_processors.get(name, ()):
                    if func not in processors:
                        processors.append(func)
            processors = self._context_processors[tuple(blueprints)] = [self.ensure_sync(f) for f in processors]
        given = context.copy()
        for processor in processors:
            context.update(processor())
        context.update(given)

    def url_for(self, /, endpoint: str, *, _anchor: str | None = None, _method: str | None = None,
                _scheme: str | None = None, _external: bool | None = None, **values: Any) -> str:
        """Flask's url_for, remembered per endpoint, arguments and script root within a request.

        A page builds a dozen addresses (its links, the htmx poll, a row's review link), and
        Werkzeug's router spends ~60k instructions on each: about 2 % of a dashboard per call
        (docs/PERFORMANCE.md, "Per-call costs"). The address is a pure function of the
        endpoint, its arguments, the script root and the app's URL defaults, so once built
        it is kept. Built afresh every time: outside a request, in debug mode, with an
        anchor, method, scheme or external address, for a relative endpoint, an endpoint
        whose blueprint has URL defaults (the patient portal's organization comes from the
        request), or unhashable arguments."""
        request_ctx = _cv_request.get(None)
        if (request_ctx is None or self.debug or _anchor or _method or _scheme or _external
                or not self._url_is_fixed(endpoint)):
            return super().url_for(endpoint, _anchor=_anchor, _method=_method, _scheme=_scheme,
                                   _external=_external, **values)
        key = (endpoint, request_ctx.request.environ.get("SCRIPT_NAME", ""), *values.items())
        try:
            url = self._urls.get(key)
        except TypeError:  # a list of values for one argument, say
            return super().url_for(endpoint, **values)
        if url is None:
            url = super().url_for(endpoint, **values)
            if len(self._urls) >= _MAX_URLS:
                self._urls.clear()
            self._urls[key] = url
        return url

    def _url_is_fixed(self, endpoint: str) -> bool:
        """No request-dependent URL defaults apply to the endpoint (app-wide ones, the
        static files' digest, are fixed for the process)."""
        fixed = self._fixed_endpoints.get(endpoint)
        if fixed is None:
            blueprints = {name for name in self.url_default_functions if name is not None}
            fixed = not endpoint.startswith(".") and not any(
                endpoint.startswith(name + ".") for name in blueprints)
            self._fixed_endpoints[endpoint] = fixed
        return fixed

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        # A URL carrying the content digest never changes meaning: cache it for a year.
        if request.args.get("v"):
            return ONE_YEAR
        return 300


def init_web(app: Flask) -> None:
    """Called after CSRFProtect.init_app, so the csrf_token given to templates here replaces
    the one it gives (a context processor: later ones win)."""
    app.jinja_env.globals["fixed_url"] = fixed_url
    app.jinja_env.globals["flashed_messages"] = flashed_messages
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.context_processor(lambda: {"csrf_token": csrf_token})
    app.session_interface = SessionInterface()
    app.request_class = LisRequest  # after htmx.init_app, which sets its own

    @app.url_defaults
    def _fingerprint_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            digest = static_digest(app, values["filename"])
            if digest:
                values["v"] = digest

    app.wsgi_app = _AnswerHeaders(app.wsgi_app, app.static_url_path or "/static")  # type: ignore[method-assign]

    def _error(code: int, title: str, detail: str) -> tuple[Any, int]:
        if is_api_request():
            return problem_response(code, title, detail)
        template = "errors/fragment.html" if getattr(request, "htmx", False) else "errors/page.html"
        return render_template(template, code=code, title=title, detail=detail), code

    @app.errorhandler(CSRFError)
    def _csrf(err: CSRFError) -> tuple[Any, int]:
        return _error(400, "Form expired", "The form was not accepted (security token missing or expired). "
                      "Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(err: HTTPException) -> Any:
        if err.code is None or err.code < 400:
            return err
        messages = {
            403: ("Not allowed", "Your role does not give access to this page."),
            404: ("Not found", "There is nothing here. Check the address or go back to your dashboard."),
            405: ("Method not allowed", "This address does not accept that kind of request."),
            429: ("Too many attempts", "Too many requests in a short time. Wait a minute and try again."),
        }
        title, detail = messages.get(err.code, (err.name, err.description or ""))
        response = _error(err.code, title, detail)
        if err.code == 429 and err.get_response().headers.get("Retry-After"):
            body, code = response
            return body, code, {"Retry-After": err.get_response().headers["Retry-After"]}
        return response

    @app.errorhandler(Exception)
    def _unexpected(err: Exception) -> tuple[Any, int]:
        current_app.logger.exception("unhandled error")
        from app.extensions import db

        db.session.rollback()
        return _error(500, "Something went wrong", "The error was logged with its request id. "
                      "Nothing you entered was saved; please try again.")
