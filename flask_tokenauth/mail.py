"""The account mails (verify an address, reset a password, change an
address, sign in by email) and how they leave the app.

Every flow renders its mail from templates (see "Mail templates" in the
documentation, docs/mail.md) into one :class:`Message` and hands it to the
app's sender after the response, in a worker thread of the process (app
context pushed, no request).  Which sender is ``TOKENAUTH_MAIL_BACKEND``'s
choice: the app's Flask-Mail or Flask-Mailman, the standard library's
:mod:`smtplib` with the ``MAIL_*`` keys those read, a development logger,
or your own callable.

The sender contract (``TOKENAUTH_MAIL_SENDER``)
-----------------------------------------------

A callable ``send(message: Message) -> None``:

- it runs after the response, in the outbox thread, inside an app context
  of the app (``current_app`` works, ``request`` does not);
- returning means "sent" (signal ``mail_sent``); raising means "failed":
  the exception is logged (its type and text, never the message) and sent
  as ``mail_failed``; the client's answer was given long before;
- it should return quickly: the outbox holds at most 1,000 waiting mails
  per process, and delivers them one after another.  To hand the mail to a
  queue, put :meth:`Message.as_dict` (``str``, ``list``, ``dict``,
  ``None``: JSON-ready) on it and rebuild the message in the worker with
  :meth:`Message.from_dict`.  With Celery and Flask-Mail::

      from flask_tokenauth.mail import Message

      @celery.task
      def send_account_mail(data: dict) -> None:
          message = Message.from_dict(data)
          mail.send(flask_mail.Message(        # or smtplib, an API client...
              subject=message.subject, recipients=message.recipients,
              body=message.body, html=message.html, sender=message.sender,
          ))

      app.config["TOKENAUTH_MAIL_SENDER"] = (
          lambda message: send_account_mail.delay(message.as_dict())
      )

  With RQ: ``queue.enqueue(send_account_mail, message.as_dict())``.

The body carries one-time links: whoever reads the queue can use them
until they expire, so keep it as private as the mail itself.

.. versionadded:: 0.1
"""

from __future__ import annotations

from ._mail import Message as Message

__all__ = ["Message"]
