"""E-mail: one notification as one message, or several as one digest, handed to the deployment's
SMTP server (settings smtp_*)."""
from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib

from services.notifier.channels.outcome import Attempt


@dataclass(frozen=True)
class MailItem:
    subject: str
    body: str
    link: str | None = None


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    starttls: bool
    timeout: float

    @classmethod
    def from_settings(cls, settings) -> SmtpServer:
        if not settings.smtp_host:
            raise ValueError("smtp_host is not set: e-mail is not offered as a channel")
        return cls(settings.smtp_host, settings.smtp_port, settings.smtp_username, settings.smtp_password,
                   settings.smtp_starttls, settings.smtp_timeout_seconds)


DIGEST_SUBJECT = {"zh": "防贫监测：{n} 条待办与通知", "en": "Fangpin: {n} notifications"}


def compose(sender: str, to: str, items: list[MailItem], language: str = "zh") -> EmailMessage:
    """One item: that message. Several: one digest (摘要) listing each item's subject, body and link."""
    if not items:
        raise ValueError("a message needs at least one item")
    message = EmailMessage()  # the default policy: UTF-8 text, RFC 2047 headers for Chinese subjects
    message["From"] = sender
    message["To"] = to
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    if len(items) == 1:
        message["Subject"] = _one_line(items[0].subject)
        message.set_content(_text(items[0]))
    else:
        message["Subject"] = DIGEST_SUBJECT.get(language, DIGEST_SUBJECT["en"]).format(n=len(items))
        message.set_content("\n\n".join(f"{n}. {_one_line(item.subject)}\n{_text(item)}"
                                        for n, item in enumerate(items, start=1)))
    return message


def _text(item: MailItem) -> str:
    return f"{item.body}\n\n{item.link}\n" if item.link else f"{item.body}\n"


def _one_line(subject: str) -> str:
    return " ".join(subject.split())  # a line break in a header would be refused (or smuggle a header)


async def send_mail(server: SmtpServer, message: EmailMessage) -> Attempt:
    """Hand the message to the server. Its 4xx, a refused connection or a timeout: retry; its 5xx: refused."""
    try:
        refusals, response = await aiosmtplib.send(
            message, hostname=server.host, port=server.port, username=server.username, password=server.password,
            start_tls=server.starttls, timeout=server.timeout)
    except aiosmtplib.SMTPRecipientsRefused as exc:
        return _by_code(min(r.code for r in exc.recipients), "; ".join(f"{r.code} {r.message}" for r in exc.recipients))
    except aiosmtplib.SMTPResponseException as exc:  # sender, data, auth, helo refused
        return _by_code(exc.code, f"{exc.code} {exc.message}")
    except (TimeoutError, aiosmtplib.SMTPTimeoutError):
        return Attempt("retry", f"timeout after {server.timeout} s")
    except (aiosmtplib.SMTPException, OSError) as exc:
        # Connection refused or lost, or the server lacks STARTTLS or AUTH (a setting to fix): try again later.
        return Attempt("retry", f"{type(exc).__name__}: {exc}"[:300])
    except ValueError as exc:  # an address that cannot be sent, e.g. non-ASCII without SMTPUTF8
        return Attempt("refused", str(exc)[:300])
    if refusals:  # some recipients of several refused
        return _by_code(min(r.code for r in refusals.values()), "; ".join(f"{to}: {r}" for to, r in refusals.items()))
    return Attempt("delivered", str(response)[:300])


def _by_code(code: int, detail: str) -> Attempt:
    return Attempt("retry" if 400 <= code < 500 else "refused", detail[:300])
