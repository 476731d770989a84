"""E-mail through Airflow's SMTP connection (the SMTP provider's hook): how alerts and
reports reach people. The connection (``OPS_SMTP_CONN_ID``) holds the server, the login
and the sender, so no SMTP secret is a setting of this project."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

from ops_warehouse.settings import Settings

DEFAULT_FROM = "ops-warehouse@localhost"


class SmtpNotConfigured(Exception):
    """The Airflow SMTP connection ``settings.smtp_conn_id`` does not exist."""


def send_email_message(settings: Settings, message: EmailMessage) -> list[str]:
    """Send one built message through the Airflow SMTP connection (the SMTP provider's hook)
    to the addresses in its To header; return them.

    The sender is the connection's ``from_email`` unless the message names one. Raises
    ``SmtpNotConfigured`` when the connection does not exist, and whatever the server or
    the network raised otherwise: callers decide whether to retry, log or give up."""
    from email.utils import getaddresses

    from airflow.providers.smtp.hooks.smtp import SmtpHook

    recipients = [address for _, address in getaddresses(message.get_all("To", []))]
    if not recipients:
        raise ValueError("the message has no To address")
    try:
        hook = SmtpHook(smtp_conn_id=settings.smtp_conn_id)
        hook.get_conn()  # looks the connection up and connects
    except Exception as exc:
        if "not found" in str(exc) or "isn't defined" in str(exc):
            raise SmtpNotConfigured(
                f"Airflow connection {settings.smtp_conn_id!r} is not configured "
                f"(set OPS_SMTP_CONN_ID or AIRFLOW_CONN_{settings.smtp_conn_id.upper()})"
            ) from exc
        raise
    with hook:  # closes the connection
        if message["From"] is None:
            message["From"] = hook.from_email or DEFAULT_FROM
        if message["Date"] is None:
            message["Date"] = formatdate(localtime=True)
        # the hook builds its own html-only messages; ours have parts of their own, so they
        # go through the connection's client as they are
        hook._smtp_client.send_message(message, to_addrs=recipients)
    return recipients
