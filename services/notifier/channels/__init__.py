"""notifier's delivery channels: a signed webhook and e-mail. Each call is one try of one delivery
and never raises for the receiver's problems; it says what came of it (Attempt)."""
from services.notifier.channels.email import MailItem, SmtpServer, compose, send_mail
from services.notifier.channels.outcome import Attempt
from services.notifier.channels.webhook import new_webhook_secret, post_webhook, webhook_body

__all__ = ["Attempt", "MailItem", "SmtpServer", "compose", "new_webhook_secret", "post_webhook", "send_mail",
           "webhook_body"]
