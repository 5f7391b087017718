"""Settings, read from the environment only.

Every setting an operator can change is listed here with its default and documented in
docs/OPERATIONS.md. Secrets (SECRET_KEY, provider keys) never have a default in production.
"""
from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent
DEFAULT_INSTANCE = PROJECT_ROOT / "instance"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def sqlalchemy_url(database_url: str) -> str:
    """Operators give a plain postgresql:// URL; SQLAlchemy needs the psycopg 3 driver named."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix):]
    raise ValueError("DATABASE_URL must be a postgresql:// URL (PostgreSQL is the only database)")


def limiter_storage_url(redis_url: str) -> str:
    """The `limits` library spells a unix-socket Redis as redis+unix://."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def _dev_secret_key(instance: Path) -> str:
    """Outside production a random key is kept under instance/ so sessions survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


class Config:
    """Flask configuration. Build it with Config.from_env(); tests use TestConfig."""

    TESTING = False
    # Flask / sessions
    SECRET_KEY: str = ""
    SESSION_COOKIE_NAME = "lis_session"
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = True
    PERMANENT_SESSION_LIFETIME = timedelta(hours=12)
    # The session lasts 12 h from login (a shift) instead of being re-signed and re-sent on
    # every response: less work per request, and a forgotten desk session still ends.
    SESSION_REFRESH_EACH_REQUEST = False
    REMEMBER_COOKIE_DURATION = timedelta(seconds=0)  # no "remember me" on shared desks
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    # Database
    SQLALCHEMY_DATABASE_URI: str = ""
    # hide_parameters: a database error's text must not carry patients' data into the logs.
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": 5, "max_overflow": 5, "hide_parameters": True}
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    REDIS_URL: str = ""
    # CSRF: tokens do not expire within a session (a desk screen stays open all day)
    WTF_CSRF_TIME_LIMIT = None
    WTF_CSRF_SSL_STRICT = True
    # Rate limits (Flask-Limiter on Redis)
    RATELIMIT_STORAGE_URI: str = ""
    RATELIMIT_STRATEGY = "moving-window"
    RATELIMIT_HEADERS_ENABLED = True
    RATELIMIT_KEY_PREFIX = "lis-rl"
    # If Redis is unreachable, count in memory per process rather than fail the request;
    # the database lockout keeps guarding accounts either way.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # Compression
    COMPRESS_MIMETYPES = [
        "text/html", "text/css", "application/javascript", "text/javascript",
        "application/json", "application/problem+json", "image/svg+xml", "text/plain",
    ]
    COMPRESS_ALGORITHM = ["br", "gzip"]
    COMPRESS_MIN_SIZE = 500
    COMPRESS_BR_LEVEL = 5
    # LIS settings (documented in docs/OPERATIONS.md)
    LIS_ENV = "development"
    LIS_LOGIN_RATE_LIMIT = "5 per minute"
    LIS_LOCKOUT_THRESHOLD = 10
    LIS_LOCKOUT_MINUTES = 15
    LIS_MIN_PASSWORD_LENGTH = 10
    LIS_LOG_LEVEL = "INFO"
    LIS_LOG_JSON = True
    LIS_PROXY_COUNT = 0
    # The largest discount each role may give, as a percent of the order total.
    LIS_DISCOUNT_LIMITS = {"reception": 10, "billing": 25, "admin": 100}
    LIS_QUEUES = ("default", "ingest", "reports", "notify", "recon", "einvoice")
    LIS_INSTANCE_PATH = str(DEFAULT_INSTANCE)
    # Key for the Aadhaar de-duplication hash. Set it in production and never change it
    # (changing it hides earlier duplicates); without it, SECRET_KEY is used.
    LIS_IDENTITY_HASH_KEY = ""
    # Reports: the address patients and doctors reach (printed in each report's QR code for
    # the public verification page), and how often one client may ask that page.
    LIS_PUBLIC_URL = "http://127.0.0.1:8000"
    LIS_VERIFY_RATE_LIMIT = "20 per minute"
    LIS_VERIFY_MAX_UPLOAD = 10 * 1024 * 1024  # bytes of a PDF presented for checking
    # Notifications (app/services/notifications.py; docs/OPERATIONS.md). A channel whose settings
    # are empty is "unconfigured": its messages go to the visible outbox, nothing is sent.
    LIS_WHATSAPP_API_URL = "https://graph.facebook.com/v21.0"
    LIS_WHATSAPP_TOKEN = ""
    LIS_WHATSAPP_PHONE_ID = ""
    LIS_WHATSAPP_APP_SECRET = ""  # verifies X-Hub-Signature-256 on status webhooks
    LIS_WHATSAPP_VERIFY_TOKEN = ""  # the hub.verify_token chosen when subscribing the webhook
    LIS_WHATSAPP_LANGUAGE = "en"
    LIS_SMS_URL = ""
    LIS_SMS_API_KEY = ""
    LIS_SMS_ENTITY_ID = ""  # DLT principal entity id
    LIS_SMS_SENDER = ""  # DLT header (6 characters)
    # DLT template ids as registered, "event=id,event=id" (the texts are in notifications.TEMPLATES)
    LIS_SMS_TEMPLATE_IDS: dict[str, str] = {}
    LIS_SMTP_HOST = ""
    LIS_SMTP_PORT = 587
    LIS_SMTP_USER = ""
    LIS_SMTP_PASSWORD = ""
    LIS_SMTP_STARTTLS = True
    LIS_SMTP_FROM = ""
    LIS_NOTIFY_TIMEOUT = 15  # seconds per provider request
    LIS_PATIENT_LINK_DAYS = 7  # how long a signed report link in an SMS stays valid
    LIS_WEBHOOK_RATE_LIMIT = "600 per minute"
    # Razorpay (india.md §3.3). Empty keys = gateway not configured: the billing pages say so
    # and no link can be made. The API base is a setting so tests and staging can point the
    # official SDK at a local server.
    RAZORPAY_API_BASE = "https://api.razorpay.com"
    RAZORPAY_KEY_ID = ""
    RAZORPAY_KEY_SECRET = ""
    RAZORPAY_WEBHOOK_SECRET = ""
    # GST e-invoicing through an IRP or GSP (india.md §1). Credentials are the GSP/IRP API user.
    IRP_API_BASE = "https://einv-apisandbox.nic.in"
    IRP_CLIENT_ID = ""
    IRP_CLIENT_SECRET = ""
    IRP_USERNAME = ""
    IRP_PASSWORD = ""
    IRP_GSTIN = ""  # the GSTIN the API user is registered for (defaults to the organization's)
    LIS_PROVIDER_TIMEOUT = 20  # seconds per gateway / IRP request

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        cfg = cls()
        cfg.LIS_ENV = env.get("LIS_ENV", "development")
        production = cfg.LIS_ENV == "production"
        cfg.LIS_INSTANCE_PATH = env.get("LIS_INSTANCE_PATH", str(DEFAULT_INSTANCE))
        secret = env.get("SECRET_KEY", "")
        if not secret:
            if production:
                raise RuntimeError("SECRET_KEY must be set when LIS_ENV=production")
            secret = _dev_secret_key(Path(cfg.LIS_INSTANCE_PATH))
        cfg.SECRET_KEY = secret
        database_url = env.get("DATABASE_URL", "")
        redis_url = env.get("REDIS_URL", "")
        if not database_url or not redis_url:
            raise RuntimeError(
                "DATABASE_URL and REDIS_URL must be set (wsgi.py starts embedded servers when they are not)"
            )
        cfg.SQLALCHEMY_DATABASE_URI = sqlalchemy_url(database_url)
        cfg.REDIS_URL = redis_url
        cfg.RATELIMIT_STORAGE_URI = limiter_storage_url(redis_url)
        # Cookies are Secure in production (TLS terminates at nginx); plain http on a dev box.
        cfg.SESSION_COOKIE_SECURE = _bool(env.get("LIS_SECURE_COOKIES"), production)
        cfg.LIS_LOGIN_RATE_LIMIT = env.get("LIS_LOGIN_RATE_LIMIT", cls.LIS_LOGIN_RATE_LIMIT)
        cfg.LIS_LOCKOUT_THRESHOLD = int(env.get("LIS_LOCKOUT_THRESHOLD", cls.LIS_LOCKOUT_THRESHOLD))
        cfg.LIS_LOCKOUT_MINUTES = int(env.get("LIS_LOCKOUT_MINUTES", cls.LIS_LOCKOUT_MINUTES))
        cfg.LIS_LOG_LEVEL = env.get("LIS_LOG_LEVEL", cls.LIS_LOG_LEVEL)
        cfg.LIS_LOG_JSON = _bool(env.get("LIS_LOG_JSON"), True)
        cfg.LIS_PROXY_COUNT = int(env.get("LIS_PROXY_COUNT", "1" if production else "0"))
        if env.get("LIS_DISCOUNT_LIMITS"):  # "reception=10,billing=25,admin=100"
            cfg.LIS_DISCOUNT_LIMITS = {role.strip(): int(pct) for role, pct in
                                       (pair.split("=") for pair in env["LIS_DISCOUNT_LIMITS"].split(","))}
        cfg.LIS_IDENTITY_HASH_KEY = env.get("LIS_IDENTITY_HASH_KEY", "")
        cfg.LIS_PUBLIC_URL = env.get("LIS_PUBLIC_URL", cls.LIS_PUBLIC_URL).rstrip("/")
        cfg.LIS_VERIFY_RATE_LIMIT = env.get("LIS_VERIFY_RATE_LIMIT", cls.LIS_VERIFY_RATE_LIMIT)
        cfg.LIS_VERIFY_MAX_UPLOAD = int(env.get("LIS_VERIFY_MAX_UPLOAD", cls.LIS_VERIFY_MAX_UPLOAD))
        for name in ("LIS_WHATSAPP_TOKEN", "LIS_WHATSAPP_PHONE_ID", "LIS_WHATSAPP_APP_SECRET",
                     "LIS_WHATSAPP_VERIFY_TOKEN", "LIS_WHATSAPP_LANGUAGE", "LIS_SMS_URL", "LIS_SMS_API_KEY",
                     "LIS_SMS_ENTITY_ID", "LIS_SMS_SENDER", "LIS_SMTP_HOST", "LIS_SMTP_USER", "LIS_SMTP_PASSWORD",
                     "LIS_SMTP_FROM", "LIS_WEBHOOK_RATE_LIMIT"):
            setattr(cfg, name, env.get(name, getattr(cls, name)))
        cfg.LIS_WHATSAPP_API_URL = env.get("LIS_WHATSAPP_API_URL", cls.LIS_WHATSAPP_API_URL).rstrip("/")
        cfg.LIS_SMS_TEMPLATE_IDS = {k.strip(): v.strip() for k, v in (
            pair.split("=", 1) for pair in env.get("LIS_SMS_TEMPLATE_IDS", "").split(",") if "=" in pair)}
        cfg.LIS_SMTP_PORT = int(env.get("LIS_SMTP_PORT", cls.LIS_SMTP_PORT))
        cfg.LIS_SMTP_STARTTLS = _bool(env.get("LIS_SMTP_STARTTLS"), True)
        cfg.LIS_NOTIFY_TIMEOUT = int(env.get("LIS_NOTIFY_TIMEOUT", cls.LIS_NOTIFY_TIMEOUT))
        cfg.LIS_PATIENT_LINK_DAYS = int(env.get("LIS_PATIENT_LINK_DAYS", cls.LIS_PATIENT_LINK_DAYS))
        for name in ("RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET", "IRP_CLIENT_ID",
                     "IRP_CLIENT_SECRET", "IRP_USERNAME", "IRP_PASSWORD", "IRP_GSTIN"):
            setattr(cfg, name, env.get(name, getattr(cls, name)))
        cfg.RAZORPAY_API_BASE = env.get("RAZORPAY_API_BASE", cls.RAZORPAY_API_BASE).rstrip("/")
        cfg.IRP_API_BASE = env.get("IRP_API_BASE", cls.IRP_API_BASE).rstrip("/")
        cfg.LIS_PROVIDER_TIMEOUT = int(env.get("LIS_PROVIDER_TIMEOUT", cls.LIS_PROVIDER_TIMEOUT))
        pool = int(env.get("LIS_DB_POOL_SIZE", "5"))
        cfg.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": pool, "max_overflow": pool,
                                         "hide_parameters": True}
        return cfg


class TestConfig(Config):
    """Overrides for the test suite: real PostgreSQL and Redis, but no cookie Secure flag
    (the test client speaks plain http) and a login limit high enough for many tests."""

    TESTING = True
    SESSION_COOKIE_SECURE = False
    LIS_LOGIN_RATE_LIMIT = "1000 per minute"
    LIS_LOG_JSON = False
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "hide_parameters": True}
