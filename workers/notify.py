"""RQ jobs for notifications (queue 'notify'): deliver one message, and the periodic sweep
that queues due retries and settles rows a killed worker left 'sending'."""
from __future__ import annotations


def deliver(notification_id: int) -> str:
    """Send one message (idempotent: see notifications.deliver)."""
    from app.services import notifications

    return notifications.deliver(notification_id)


def sweep() -> dict[str, int]:
    from app.services import notifications

    return notifications.sweep()


def reapply_webhook(delivery_id: int, attempt: int) -> str:
    """Apply a stored WhatsApp webhook again (it named a message whose id was not stored yet)."""
    from app.services import notifications

    return notifications.apply_whatsapp(delivery_id, attempt=attempt)
