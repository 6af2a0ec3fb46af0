"""A real SMTP server for the email channel tests (aiosmtpd).

Usage: smtp_server.py --port N --tls none|starttls|implicit [--cert F --key F]
                      [--user U --password P] --out FILE
Each accepted message is appended to FILE as one JSON line
{"mail_from", "rcpt_tos", "data", "auth_user", "tls"}; prints "ready" when listening.
"""
import argparse
import asyncio
import json
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls", choices=["none", "starttls", "implicit"], default="none")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            with open(a.out, "a", encoding="utf-8") as f:
                f.write(json.dumps({
                    "mail_from": envelope.mail_from,
                    "rcpt_tos": envelope.rcpt_tos,
                    "data": envelope.content.decode("utf-8", "replace"),
                    "auth_user": (session.auth_data.login.decode()
                                  if isinstance(session.auth_data, LoginPassword) else None),
                    "tls": session.ssl is not None or a.tls == "implicit",
                }) + "\n")
            return "250 2.0.0 queued as test-" + str(abs(hash(envelope.content)) % 100000)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login.decode() == a.user
              and auth_data.password.decode() == a.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    ctx = None
    if a.tls != "none":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    kwargs = dict(hostname="127.0.0.1", port=a.port)
    if a.user:
        # with implicit TLS aiosmtpd does not know the socket is TLS: only STARTTLS sessions
        # need its check
        kwargs.update(authenticator=authenticator, auth_require_tls=a.tls == "starttls",
                      auth_required=True)
    if a.tls == "starttls":
        kwargs.update(tls_context=ctx, require_starttls=True)
    elif a.tls == "implicit":
        kwargs.update(ssl_context=ctx)
    c = Controller(Handler(), **kwargs)
    c.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    finally:
        c.stop()


if __name__ == "__main__":
    sys.exit(main())
