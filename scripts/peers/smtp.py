"""An SMTP server for the tests, on aiosmtpd (installed by scripts/test-peers).

Every message it accepts is written to DIR as N.json: the envelope (mail
from, recipients) and the message parsed by Python's email package (headers,
text and HTML bodies decoded). With --user and --password it requires AUTH
(PLAIN or LOGIN) and refuses other credentials with 535. With --cert and
--key it speaks TLS: STARTTLS, required (--tls starttls), or TLS from the
first byte (--tls implicit).

    python smtp.py --port 2525 --dir /tmp/mail [--user u --password p]
                   [--cert server.crt --key server.key --tls starttls|implicit]
"""
import argparse
import asyncio
import email
import email.policy
import json
import os
import ssl

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keep:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "headers": {k: str(v) for k, v in message.items()},
            "text": text.get_content() if text is not None else None,
            "html": html.get_content() if html is not None else None,
        }
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:06}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(record, f)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Message accepted"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--user")
    parser.add_argument("--password")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--tls", choices=["starttls", "implicit"])
    args = parser.parse_args()

    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == args.user
            and auth_data.password.decode() == args.password
        )
        return AuthResult(success=ok, handled=False)

    options = {}
    if args.user:
        # With TLS from the first byte aiosmtpd does not know the session is
        # encrypted (it tracks STARTTLS only), so it must not insist on it.
        options = dict(authenticator=authenticate, auth_required=True, auth_require_tls=args.tls == "starttls")
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            options.update(ssl_context=context)
    controller = Controller(Keep(args.dir), hostname="127.0.0.1", port=args.port, **options)
    controller.start()
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
