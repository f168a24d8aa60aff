#!/usr/bin/python3
"""A scriptable SMTP server for tests and the demo (Debian's python3-aiosmtpd).

    smtp_server.py [--host 127.0.0.1] [--port 0 | --fd FD] --dir DIR [--control-port 0]
                   [--tls-cert PEM --tls-key PEM [--require-starttls]] [--auth USER:PASSWORD]

Listens for SMTP on HOST:PORT (0 picks a free port) and stores every accepted
message in DIR, maildir-like:

    DIR/new/<name>          the message exactly as received (bytes after DATA)
    DIR/meta/<name>.json    {"name", "mail_from", "rcpt_tos", "peer", "size",
                             "mail_at" (time of its MAIL FROM: when the send
                             started), "received_at", "tls" (the session was
                             upgraded with STARTTLS), "auth_user" (or null)}
                             (written before the message appears in new/, so a
                             reader that sees new/<name> finds it)

With --tls-cert and --tls-key it offers STARTTLS (with --require-starttls it
refuses every command but EHLO, NOOP, QUIT and STARTTLS in clear, 530); with
--auth it requires AUTH (PLAIN or LOGIN, over TLS only) with that user and password
before MAIL FROM (a wrong one: 535).

<name> sorts in arrival order (<unix time in ns>.<sequence>.eml). Files are
written to DIR/tmp first, then renamed.

Once listening it prints, flushed, on stdout:

    smtp=127.0.0.1:<port>
    control=127.0.0.1:<control port>

and runs until SIGTERM or SIGINT (exit 0).

Control channel: a line protocol on the control port, one command per line, one
reply line per command, "ok[ <detail>]" or "error <message>":

    ping                          -> ok
    fail-next N CODE [TEXT]       answer the DATA of the next N messages with CODE
                                  (e.g. 451 or 554); they are not stored
    fail-rcpt ADDR CODE [TEXT]    answer RCPT TO:<ADDR> (case-insensitive) with CODE,
                                  until "clear"; a message is stored only for the
                                  recipients that were accepted
    drop-next N [connect|data]    for the next N connections (connect) or messages
                                  (data, the default: after the whole message was
                                  received), close the connection without a reply
    delay MS                      wait MS milliseconds before answering each DATA
    hold                          hold every DATA reply (the message is received,
                                  the client waits for the answer) until "release"
    held                          -> ok <number of DATA replies held now>
    release                       answer the held DATA as usual and stop holding
    clear                         forget all of the above (and release)
    stats                         -> ok accepted=A refused=R dropped=D rcpt_refused=F
    reset-stats                   set those counters to 0
    count                         -> ok <number of messages in DIR/new>
    busy                          -> ok <number of DATA commands being answered now>
                                  (0 once a delayed DATA has been answered)

CODE must be 400..599. A refused or dropped message is counted, never stored.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time

from aiosmtpd.smtp import SMTP


class State:
    def __init__(self, directory):
        self.dir = directory
        self.seq = 0
        self.busy = 0  # DATA commands being answered (not a statistic: never reset)
        self.clear()
        self.reset_stats()

    def clear(self):
        self.fail_next = []  # list of (code, text), one per message
        self.fail_rcpt = {}  # lower-cased address -> (code, text)
        self.drop_connect = 0
        self.drop_data = 0
        self.delay_ms = 0
        self.release()

    def release(self):
        if getattr(self, "released", None) is not None:
            self.released.set()
        self.released = asyncio.Event()
        self.released.set()
        self.held = getattr(self, "held", 0)

    def reset_stats(self):
        self.accepted = 0
        self.refused = 0
        self.dropped = 0
        self.rcpt_refused = 0

    def store(self, envelope, session):
        peer = session.peer
        self.seq += 1
        name = "%d.%06d.eml" % (time.time_ns(), self.seq)
        data = envelope.original_content
        if data is None:
            data = envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        meta = {
            "name": name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": list(peer) if isinstance(peer, (tuple, list)) else str(peer),
            "size": len(data),
            "mail_at": getattr(envelope, "mail_at", None),
            "received_at": time.time(),
            "tls": session.ssl is not None,
            "auth_user": getattr(session, "auth_user", None),
        }
        tmp = os.path.join(self.dir, "tmp", name)
        with open(tmp + ".json", "w") as f:
            json.dump(meta, f)
        os.rename(tmp + ".json", os.path.join(self.dir, "meta", name + ".json"))
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.dir, "new", name))
        return name


def reply_line(code, text, default):
    return "%d %s" % (code, text or default)


class Handler:
    def __init__(self, state):
        self.state = state

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.mail_at = time.time()
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        rule = self.state.fail_rcpt.get(address.lower())
        if rule:
            self.state.rcpt_refused += 1
            return reply_line(rule[0], rule[1], "Recipient refused (scripted)")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        st = self.state
        st.busy += 1
        try:
            return await self.answer_DATA(server, session, envelope)
        finally:
            st.busy -= 1

    async def answer_DATA(self, server, session, envelope):
        st = self.state
        if st.delay_ms:
            await asyncio.sleep(st.delay_ms / 1000.0)
        if not st.released.is_set():
            st.held += 1
            try:
                await st.released.wait()
            finally:
                st.held -= 1
        if st.drop_data > 0:
            st.drop_data -= 1
            st.dropped += 1
            if server.transport is not None:
                server.transport.abort()
            return "421 Dropped (scripted)"
        if st.fail_next:
            code, text = st.fail_next.pop(0)
            st.refused += 1
            return reply_line(code, text, "Message refused (scripted)")
        name = st.store(envelope, session)
        st.accepted += 1
        return "250 OK queued as %s" % name


class ScriptedSMTP(SMTP):
    def __init__(self, handler, state, **kw):
        super().__init__(handler, **kw)
        self._state = state

    def connection_made(self, transport):
        super().connection_made(transport)
        if self._state.drop_connect > 0:
            self._state.drop_connect -= 1
            self._state.dropped += 1
            transport.abort()


def authenticator_for(user, password):
    """aiosmtpd's authenticator: accepts exactly user and password."""
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server, session, envelope, mechanism, auth_data):
        if (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
                and auth_data.password == password.encode()):
            session.auth_user = user
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)
    return check


def parse_code(s):
    code = int(s)
    if not 400 <= code <= 599:
        raise ValueError("CODE must be 400..599")
    return code


def control_command(state, line):
    parts = line.split()
    if not parts:
        return "error empty command"
    cmd, args = parts[0], parts[1:]
    try:
        if cmd == "ping":
            return "ok"
        if cmd == "fail-next":
            n, code = int(args[0]), parse_code(args[1])
            if n < 0:
                raise ValueError("N must be >= 0")
            text = " ".join(args[2:]) or None
            state.fail_next.extend([(code, text)] * n)
            return "ok"
        if cmd == "fail-rcpt":
            addr, code = args[0], parse_code(args[1])
            state.fail_rcpt[addr.lower()] = (code, " ".join(args[2:]) or None)
            return "ok"
        if cmd == "drop-next":
            n = int(args[0])
            stage = args[1] if len(args) > 1 else "data"
            if n < 0 or stage not in ("connect", "data"):
                raise ValueError("usage: drop-next N [connect|data]")
            if stage == "connect":
                state.drop_connect += n
            else:
                state.drop_data += n
            return "ok"
        if cmd == "delay":
            ms = int(args[0])
            if ms < 0:
                raise ValueError("MS must be >= 0")
            state.delay_ms = ms
            return "ok"
        if cmd == "hold":
            state.released.clear()
            return "ok"
        if cmd == "held":
            return "ok %d" % state.held
        if cmd == "release":
            state.release()
            return "ok"
        if cmd == "clear":
            state.clear()
            return "ok"
        if cmd == "stats":
            return "ok accepted=%d refused=%d dropped=%d rcpt_refused=%d" % (
                state.accepted, state.refused, state.dropped, state.rcpt_refused)
        if cmd == "reset-stats":
            state.reset_stats()
            return "ok"
        if cmd == "busy":
            return "ok %d" % state.busy
        if cmd == "count":
            return "ok %d" % len(os.listdir(os.path.join(state.dir, "new")))
        return "error unknown command %s" % cmd
    except (IndexError, ValueError) as e:
        return "error bad arguments: %s" % (e or "missing argument")


async def serve_control(state, reader, writer):
    try:
        while True:
            line = await reader.readline()
            if not line:
                break
            reply = control_command(state, line.decode("utf-8", "replace").strip())
            writer.write((reply + "\n").encode())
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main_async(args):
    for sub in ("new", "tmp", "meta", "cur"):
        os.makedirs(os.path.join(args.dir, sub), exist_ok=True)
    state = State(args.dir)
    handler = Handler(state)
    loop = asyncio.get_running_loop()

    tls = {}
    if args.tls_cert:
        import ssl
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        tls = {"tls_context": ctx, "require_starttls": args.require_starttls}
    if args.auth:
        user, _, password = args.auth.partition(":")
        tls.update(auth_required=True, authenticator=authenticator_for(user, password))

    def factory():
        return ScriptedSMTP(handler, state, hostname="b2bd-test-smtp",
                            enable_SMTPUTF8=True, decode_data=False, timeout=60, **tls)

    if args.fd is not None:
        # a socket bound by whoever started this server (passed open): until now
        # connections to its port were refused, as with a server that is down
        import socket
        sock = socket.socket(fileno=args.fd)
        smtp = await loop.create_server(factory, sock=sock)
    else:
        smtp = await loop.create_server(factory, host=args.host, port=args.port)
    ctl = await asyncio.start_server(
        lambda r, w: serve_control(state, r, w), host=args.host, port=args.control_port)
    smtp_port = smtp.sockets[0].getsockname()[1]
    ctl_port = ctl.sockets[0].getsockname()[1]
    print("smtp=%s:%d" % (args.host, smtp_port))
    print("control=%s:%d" % (args.host, ctl_port), flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    smtp.close()
    ctl.close()
    try:
        await asyncio.wait_for(smtp.wait_closed(), 2)
    except (asyncio.TimeoutError, Exception):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--control-port", type=int, default=0)
    p.add_argument("--fd", type=int, default=None,
                   help="listen on this bound, inherited socket instead of --host/--port")
    p.add_argument("--dir", required=True)
    p.add_argument("--tls-cert", help="PEM certificate (chain): offer STARTTLS")
    p.add_argument("--tls-key", help="PEM private key of --tls-cert")
    p.add_argument("--require-starttls", action="store_true",
                   help="refuse to work in clear (needs --tls-cert)")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH with these")
    args = p.parse_args()
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
