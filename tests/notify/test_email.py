"""The email channel against a real aiosmtpd on 127.0.0.1: content, reply codes, and
STARTTLS / implicit TLS / AUTH as SMTP_SECURITY says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from service.errors import DeliveryError
from service.notify.base import Message
from service.notify.email import EmailConfig, EmailNotifier, SmtpOptions
from tests.servers import SmtpServer, TlsFiles

pytestmark = pytest.mark.anyio
TO = EmailConfig(to=("me@example.com", "ops@example.com"))


def options(server: SmtpServer, **extra: Any) -> SmtpOptions:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "sender": "earnwatch@example.org",
        "timeout": 5.0,
    }
    return SmtpOptions(**(base | extra))


async def test_a_message_arrives_with_its_recipients_subject_and_both_parts(
    message: Message,
) -> None:
    with SmtpServer() as server:
        await EmailNotifier(options(server)).send(message, TO, delivery_id="dlv_7")
    [mail] = server.messages
    assert mail.rcpt_tos == ("me@example.com", "ops@example.com")
    parsed = mail.parsed
    assert parsed["From"] == "earnwatch@example.org"
    assert parsed["To"] == "me@example.com, ops@example.com"
    assert parsed["Subject"] == "LUMN · lumn-q4-miss"
    assert parsed["Message-ID"] == "<dlv_7.earnwatch@example.org>"
    assert parsed["Date"]
    assert parsed.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_content() for p in parsed.walk() if not p.is_multipart()}
    assert "LUMN missed: EPS -0.05 vs 0.02" in parts["text/plain"]
    assert "eps_actual: -0.05" in parts["text/plain"]
    assert "<h2>LUMN · lumn-q4-miss</h2>" in parts["text/html"]


async def test_the_message_id_is_the_same_on_every_retry(message: Message) -> None:
    with SmtpServer(rcpt_replies=["451 4.3.0 try later"]) as server:
        notifier = EmailNotifier(options(server))
        cfg = EmailConfig.model_validate({"to": "me@example.com"})
        with pytest.raises(DeliveryError) as caught:
            await notifier.send(message, cfg, delivery_id="dlv_8")
        await notifier.send(message, cfg, delivery_id="dlv_8")
        await notifier.send(message, cfg, delivery_id="dlv_8")
    assert not caught.value.permanent and caught.value.status == 451
    assert {m.parsed["Message-ID"] for m in server.messages} == {"<dlv_8.earnwatch@example.org>"}


async def test_a_451_on_data_is_retryable(message: Message) -> None:
    server = SmtpServer(data_replies=["451 4.3.0 queue full"])
    with server, pytest.raises(DeliveryError, match="451") as caught:
        await EmailNotifier(options(server)).send(message, TO, delivery_id="d")
    assert not caught.value.permanent and server.messages == []


async def test_a_550_for_every_recipient_is_permanent_and_nothing_is_delivered(
    message: Message,
) -> None:
    replies = ["550 5.1.1 user unknown"] * 2
    server = SmtpServer(rcpt_replies=replies)
    with server, pytest.raises(DeliveryError, match="user unknown") as caught:
        await EmailNotifier(options(server)).send(message, TO, delivery_id="d")
    assert caught.value.permanent and server.messages == []


async def test_one_refused_recipient_of_three_still_delivers_to_the_other_two(
    message: Message, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = EmailConfig(to=("a@example.com", "b@example.com", "c@example.com"))
    with SmtpServer(rcpt_replies=["250 OK", "550 5.1.1 user unknown"]) as server:
        await EmailNotifier(options(server)).send(message, cfg, delivery_id="d")
    [mail] = server.messages
    assert mail.rcpt_tos == ("a@example.com", "c@example.com")
    assert "b@example.com (550)" in caplog.text


async def test_starttls_with_login_delivers_and_auth_happens_only_over_tls(
    message: Message, tls_files: TlsFiles
) -> None:
    server = SmtpServer(
        tls=tls_files.server_context(), require_starttls=True, users={"bot": "pw-123"}
    )
    with server:
        notifier = EmailNotifier(
            options(server, security="starttls", username="bot", password=SecretStr("pw-123")),
            ssl_context=tls_files.client_context(),
        )
        await notifier.send(message, TO, delivery_id="d")
    assert server.auth_attempts == [("bot", True)]
    assert [m.tls for m in server.messages] == [True]


async def test_starttls_against_a_server_without_it_fails_permanently_with_no_auth_and_no_mail(
    message: Message,
) -> None:
    with SmtpServer(users={"bot": "pw-123"}) as server:  # offers AUTH, not STARTTLS
        notifier = EmailNotifier(
            options(server, security="starttls", username="bot", password=SecretStr("pw-123"))
        )
        with pytest.raises(DeliveryError, match="STARTTLS") as caught:
            await notifier.send(message, TO, delivery_id="d")
    assert caught.value.permanent
    assert server.auth_attempts == [] and server.messages == []


async def test_implicit_tls_delivers(message: Message, tls_files: TlsFiles) -> None:
    with SmtpServer(implicit_tls=tls_files.server_context()) as server:
        notifier = EmailNotifier(
            options(server, security="tls"), ssl_context=tls_files.client_context()
        )
        await notifier.send(message, TO, delivery_id="d")
    assert len(server.messages) == 1


async def test_an_untrusted_certificate_is_a_permanent_failure_and_nothing_is_sent(
    message: Message, tls_files: TlsFiles
) -> None:
    with SmtpServer(implicit_tls=tls_files.server_context()) as server:
        notifier = EmailNotifier(options(server, security="tls"))  # system CAs only
        with pytest.raises(DeliveryError, match="certificate verify failed") as caught:
            await notifier.send(message, TO, delivery_id="d")
    assert caught.value.permanent and server.messages == []


async def test_a_wrong_password_is_permanent_and_the_password_is_not_in_the_error(
    message: Message, tls_files: TlsFiles
) -> None:
    server = SmtpServer(tls=tls_files.server_context(), users={"bot": "right"})
    with server:
        notifier = EmailNotifier(
            options(server, security="starttls", username="bot", password=SecretStr("SENTINELpw")),
            ssl_context=tls_files.client_context(),
        )
        with pytest.raises(DeliveryError, match="login failed") as caught:
            await notifier.send(message, TO, delivery_id="d")
    assert caught.value.permanent and caught.value.status == 535
    assert "SENTINELpw" not in str(caught.value) and server.messages == []


async def test_a_password_is_never_sent_in_clear_with_security_none(message: Message) -> None:
    with SmtpServer(users={"bot": "pw"}) as server:
        notifier = EmailNotifier(options(server, username="bot", password=SecretStr("pw")))
        with pytest.raises(DeliveryError, match="in clear") as caught:
            await notifier.send(message, TO, delivery_id="d")
    assert caught.value.permanent and server.auth_attempts == []


async def test_a_refused_connection_is_retryable(message: Message) -> None:
    server = SmtpServer()  # never started: nothing listens on its port
    with pytest.raises(DeliveryError) as caught:
        await EmailNotifier(options(server)).send(message, TO, delivery_id="d")
    assert not caught.value.permanent


async def test_no_smtp_host_is_a_permanent_failure(message: Message) -> None:
    with pytest.raises(DeliveryError, match="SMTP_HOST") as caught:
        await EmailNotifier(SmtpOptions(host=None, port=25)).send(message, TO, delivery_id="d")
    assert caught.value.permanent


async def test_header_injection_through_the_rule_or_symbol_adds_no_header_or_recipient(
    message: Message,
) -> None:
    evil = replace(message, rule="x\r\nBcc: evil@example.com", title="T\r\nBcc: evil@example.com")
    cfg = EmailConfig(to=("me@example.com",), subject="{symbol} {rule}")
    with SmtpServer() as server:
        await EmailNotifier(options(server)).send(evil, cfg, delivery_id="d")
    [mail] = server.messages
    assert mail.rcpt_tos == ("me@example.com",)
    assert mail.parsed["Bcc"] is None
    assert mail.parsed["Subject"] == "LUMN x Bcc: evil@example.com"


async def test_the_html_part_escapes_markup(message: Message) -> None:
    with SmtpServer() as server:
        await EmailNotifier(options(server)).send(
            replace(message, text="<script>alert(1)</script>"), TO, delivery_id="d"
        )
    html = next(p for p in server.messages[0].parsed.walk() if p.get_content_type() == "text/html")
    body = html.get_content()
    assert "<script>" not in body and "&lt;script&gt;" in body


def test_to_accepts_one_address_or_a_list_and_refuses_a_non_address() -> None:
    assert EmailConfig.model_validate({"to": "me@example.com"}).to == ("me@example.com",)
    assert EmailConfig.model_validate({"to": ["a@x.io", "b@x.io"]}).to == ("a@x.io", "b@x.io")
    for bad in ([], "not-an-address", ["a@x.io", "b@x.io\r\nBcc: c@x.io"]):
        with pytest.raises(ValidationError):
            EmailConfig.model_validate({"to": bad})
