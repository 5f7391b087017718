"""Email by SMTP (smtplib), with STARTTLS when LIS_SMTP_STARTTLS is on (the default)."""
from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from app.integrations._http import ProviderError


@dataclass(frozen=True)
class EmailClient:
    host: str
    port: int
    sender: str
    user: str = ""
    password: str = ""
    starttls: bool = True
    timeout: float = 15

    @classmethod
    def from_config(cls, config: Any) -> "EmailClient | None":
        if not (config.get("LIS_SMTP_HOST") and config.get("LIS_SMTP_FROM")):
            return None
        return cls(config["LIS_SMTP_HOST"], int(config.get("LIS_SMTP_PORT", 587)), config["LIS_SMTP_FROM"],
                   config.get("LIS_SMTP_USER", ""), config.get("LIS_SMTP_PASSWORD", ""),
                   bool(config.get("LIS_SMTP_STARTTLS", True)), config.get("LIS_NOTIFY_TIMEOUT", 15))

    def send(self, to: str, *, subject: str, text: str,
             attachments: list[tuple[str, bytes, str]] | None = None) -> str:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self.sender, to, subject
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(text)
        for filename, data, mime in attachments or []:
            maintype, _, subtype = mime.partition("/")
            message.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password)
                refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused:
            raise ProviderError("the mail server refused the recipient", retryable=False) from None
        except smtplib.SMTPResponseException as err:
            raise ProviderError(f"SMTP {err.smtp_code}", retryable=err.smtp_code >= 400 and err.smtp_code < 500,
                                status=err.smtp_code) from None
        except (smtplib.SMTPException, OSError) as err:
            raise ProviderError(f"SMTP failed: {type(err).__name__}", retryable=True) from None
        if refused:
            raise ProviderError("the mail server refused the recipient", retryable=False)
        return str(message["Message-ID"])
