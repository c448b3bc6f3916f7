"""The `email` channel: one SMTP submission per send(), with a plain-text and an HTML part.

Security is what `SMTP_SECURITY` says, never less: `starttls` refuses to go on (and never
sends AUTH or the message) when the server does not offer STARTTLS, unlike aiosmtplib's
opportunistic default; `tls` is implicit TLS; `none` is plain and refuses to send a
password in clear. Outcomes follow RFC 5321: a 4xx reply or a broken connection is
retryable, a 5xx reply is permanent. A message some recipients accepted is delivered (a
retry would duplicate it for them); the refused ones are logged. `Message-ID` is derived
from the delivery id, so a resend is recognisably the same mail.

The subject is `subject` from the channel (plain text; `{symbol}`, `{rule}` and `{title}`
are replaced), by default the message title, e.g. `LUMN · lumn-q4-miss`.
"""

from __future__ import annotations

import html
import logging
import re
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from pydantic import Field, SecretStr, field_validator

from service.config import Settings
from service.errors import DeliveryError
from service.figures import shown_values
from service.notify.base import ChannelConfig, Message
from service.notify.http import expect
from service.notify.plugin import ChannelType, NotifierContext
from service.rules.model import one_or_many_schema

if TYPE_CHECKING:  # ssl and the email package load with the first mail, not with the registry
    import ssl
    from email.message import EmailMessage

log = logging.getLogger(__name__)
_ADDRESS = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[^@\s<>,;:\"()\[\]\\]+$")
_MSGID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class EmailConfig(ChannelConfig):
    """A `type: email` channel: `to` (one address or a list) and an optional `subject`."""

    to: tuple[str, ...] = Field(json_schema_extra=one_or_many_schema)
    subject: str | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one address")
        for address in value:
            if not _ADDRESS.match(address):
                raise ValueError(f"{address!r} is not an email address (name@domain)")
        return tuple(dict.fromkeys(value))

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        if value is not None and any(ch in value for ch in "\r\n\0"):
            raise ValueError("must be one line")
        return value


@dataclass(frozen=True, slots=True)
class SmtpOptions:
    """Where and how to submit mail; `from_settings` reads the SMTP_* settings."""

    host: str | None
    port: int
    security: Literal["starttls", "tls", "none"] = "starttls"
    sender: str = "earnwatch@localhost"
    username: str | None = None
    password: SecretStr | None = None
    timeout: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpOptions:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_effective_port,
            security=settings.smtp_security,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            timeout=settings.smtp_timeout.total_seconds(),
        )


def subject_of(message: Message, template: str | None) -> str:
    """The Subject: the template with its placeholders replaced, folded to one line."""
    subject = message.title if template is None else template
    for name, value in (("symbol", message.symbol), ("rule", message.rule)):
        subject = subject.replace("{" + name + "}", value)
    subject = subject.replace("{title}", message.title)
    return " ".join(subject.split())


def build_email(
    message: Message, cfg: EmailConfig, *, sender: str, delivery_id: str
) -> EmailMessage:
    """The MIME message (multipart/alternative: text/plain, text/html); deterministic.
    Its values read as on every channel (figures.shown_values)."""
    from email.message import EmailMessage
    from email.utils import format_datetime

    values = shown_values(message.values)
    fired = message.fired_at.isoformat(timespec="seconds")
    text = "\n".join(
        [message.text, "", message.title, f"fired at {fired}", *(f"{k}: {v}" for k, v in values)]
    )
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>" for k, v in values
    )
    body = (
        f"<html><body><h2>{html.escape(message.title)}</h2>"
        f"<p>{html.escape(message.text)}</p><table>{rows}</table>"
        f"<p><small>fired at {html.escape(fired)} · earnwatch</small></p></body></html>"
    )
    domain = _MSGID_UNSAFE.sub("", sender.rpartition("@")[2].rstrip(">")) or "earnwatch.invalid"
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = ", ".join(cfg.to)
    mail["Subject"] = subject_of(message, cfg.subject)
    mail["Date"] = format_datetime(message.fired_at)
    mail["Message-ID"] = f"<{_MSGID_UNSAFE.sub('_', delivery_id)}.earnwatch@{domain}>"
    mail.set_content(text + "\n")
    mail.add_alternative(body, subtype="html")
    return mail


class EmailNotifier:
    """Submits one message per send() over a fresh SMTP connection."""

    kind: ClassVar[str] = "email"
    Config: ClassVar[type[ChannelConfig]] = EmailConfig

    def __init__(self, options: SmtpOptions, *, ssl_context: ssl.SSLContext | None = None):
        """`ssl_context` verifies the server (default: the system CAs). A send's total
        deadline is SMTP_TIMEOUT (`options.timeout`), as aiosmtplib's is per command;
        without SMTP_HOST every send is refused before any I/O, so 1 s bounds it (and
        the lease need not cover SMTP_TIMEOUT)."""
        self._options = options
        self._ssl_context = ssl_context
        self.deadline = options.timeout if options.host else 1.0

    def destination(self, config: ChannelConfig) -> str:
        """The SMTP server, whatever the recipients: every email channel shares it."""
        return f"smtp:{self._options.host or '-'}:{self._options.port}"

    async def send(self, message: Message, config: ChannelConfig, *, delivery_id: str) -> None:
        """Return once the server accepted the message; raise DeliveryError otherwise."""
        cfg, opts = expect(config, EmailConfig), self._options
        if not opts.host:
            raise DeliveryError("email: SMTP_HOST is not set", permanent=True)
        if opts.security == "none" and opts.password is not None:
            raise DeliveryError(
                "email: refusing to send SMTP_PASSWORD in clear with SMTP_SECURITY=none",
                permanent=True,
            )
        mail = build_email(message, cfg, sender=opts.sender, delivery_id=delivery_id)
        import ssl

        import aiosmtplib  # with the first mail, not with the registry

        smtp = aiosmtplib.SMTP(
            hostname=opts.host,
            port=opts.port,
            use_tls=opts.security == "tls",
            start_tls=False,
            tls_context=self._ssl_context,
            timeout=opts.timeout,
        )
        where = f"email via {opts.host}:{opts.port}"
        try:
            await smtp.connect()
            if opts.security == "starttls":
                await smtp.ehlo()
                if not smtp.supports_extension("starttls"):
                    raise DeliveryError(
                        f"{where}: server does not offer STARTTLS (SMTP_SECURITY=starttls); "
                        "nothing sent",
                        permanent=True,
                    )
                await smtp.starttls()
            if opts.username is not None:
                password = opts.password.get_secret_value() if opts.password else ""
                await smtp.login(opts.username, password)
            refused, _ = await smtp.send_message(mail, recipients=list(cfg.to))
            with suppress(aiosmtplib.SMTPException):
                await smtp.quit()
        except DeliveryError:
            raise
        except (aiosmtplib.SMTPException, ssl.SSLError, OSError) as exc:
            raise _delivery_error(where, exc) from None
        finally:
            if smtp.is_connected:
                smtp.close()
        if refused:
            log.warning(
                "%s: delivered to %d of %d recipients; refused: %s",
                where,
                len(cfg.to) - len(refused),
                len(cfg.to),
                ", ".join(f"{rcpt} ({reply.code})" for rcpt, reply in refused.items()),
            )

    async def aclose(self) -> None:
        """Nothing to close: each send uses its own connection."""


def _delivery_error(where: str, exc: BaseException) -> DeliveryError:
    """RFC 5321 classes: 4xx and broken connections retry, 5xx and TLS failures do not."""
    import ssl

    import aiosmtplib

    tls = exc if isinstance(exc, ssl.SSLError) else None
    cause = exc.__cause__ or exc.__context__
    if tls is None and isinstance(cause, ssl.SSLError):
        tls = cause
    if tls is not None:
        reason = tls.reason or type(tls).__name__
        if isinstance(tls, ssl.SSLCertVerificationError):
            reason = f"certificate verify failed ({tls.verify_message})"
        return DeliveryError(f"{where}: TLS failed: {reason}", permanent=True)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        replies = "; ".join(f"{r.recipient}: {r.code} {_line(r.message)}" for r in exc.recipients)
        return DeliveryError(
            f"{where}: all recipients refused: {replies}",
            permanent=all(code >= 500 for code in codes),
            status=max(codes) if codes else None,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        what = "login failed: " if isinstance(exc, aiosmtplib.SMTPAuthenticationError) else ""
        return DeliveryError(
            f"{where}: {what}{exc.code} {_line(exc.message)}",
            permanent=exc.code >= 500,
            status=exc.code,
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return DeliveryError(f"{where}: not supported: {_line(exc.message)}", permanent=True)
    return DeliveryError(f"{where}: {type(exc).__name__}", permanent=False)


def _line(text: str) -> str:
    return " ".join(text.split())[:300]


def _build(context: NotifierContext) -> EmailNotifier:
    """The SMTP server comes from the settings (SMTP_*), not from the rule file."""
    options = SmtpOptions.from_settings(context.settings)
    return EmailNotifier(options, ssl_context=context.smtp_ssl_context)


CHANNEL: Final = ChannelType(
    notifier=EmailNotifier,
    url_fields=frozenset(),
    secret_fields=frozenset(),
    build=_build,
    example={"to": ["desk@example.com"], "subject": "{symbol}: {rule}"},
)
