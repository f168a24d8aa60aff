#!/usr/bin/python3
"""Writes the seed corpora fuzz/corpus/<fuzzer>/ (run from anywhere; idempotent).

The seeds are meaningful inputs: the contract's examples of every command, hostile
variants of them, the shipped email templates and the Mustache spec's constructs,
and hostile email header fields. Each file is named after what it holds."""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
UUID = "6f1c2e1a-7c1d-4b0e-9a57-0c2b9f7e4d11"


def write(fuzzer, name, data):
    d = os.path.join(HERE, "corpus", fuzzer)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8", "surrogatepass")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- decode: first byte the topic (a r m n s), then the message ----------------------

def cmd(type, payload, **env):
    c = {"command_id": UUID, "type": type, "shop_id": "shop-1",
         "issued_at": "2026-11-22T10:00:00Z", "actor": "staff:42",
         "import_id": "import-2026-11-22-a", "payload": payload}
    c.update(env)
    return json.dumps(c, ensure_ascii=False)


TOPIC = {"assign": "a", "revoke": "r", "migrate": "m", "notify": "n"}

CONTRACT = {
    "assign": {"company_id": "c-1", "customer": {"id": "cust-9"},
               "locations": [{"location_id": "loc-1", "role": "ordering_only"},
                             {"location_id": "loc-2", "role": "location_admin"}],
               "migrate_orders_to": "loc-1", "notify": True},
    "assign_by_email": {"company_id": "c-1",
                        "customer": {"email": "Ann@Example.com", "first_name": "Ann",
                                     "last_name": "Berg", "phone": "+46 70 123"},
                        "locations": []},
    "revoke": {"company_id": "c-1", "customer_id": "cust-9", "scope": "locations",
               "location_ids": ["loc-2"]},
    "revoke_company": {"company_id": "c-1", "customer_id": "cust-9", "scope": "company",
                       "remove_migrated_orders": True},
    "revoke_all": {"company_id": "c-1", "customer_id": "cust-9", "scope": "all_locations"},
    "migrate": {"company_id": "c-1", "location_id": "loc-1", "customer_id": "cust-9"},
    "notify": {"company_id": "c-1", "location_id": "loc-1", "customer_ids": ["cust-9", "cust-10"],
               "recipient": "customer", "staff_email": None, "preview": False, "resend_of": None},
    "notify_resend": {"company_id": "c-1", "customer_ids": [], "recipient": "staff",
                      "staff_email": "boss@example.com", "resend_of": UUID},
    "shop.upsert": {"name": "Nordic Tools", "account_url": "https://nordic.example/account",
                    "from_email": "hello@nordic.example", "staff_email": "staff@nordic.example",
                    "b2b_only": False},
    "company.upsert": {"company_id": "c-1", "name": "ACME",
                       "locations": [{"location_id": "loc-1", "name": "Depot"}]},
    "customer.upsert": {"customer_id": "cust-9", "email": "a@b.example", "first_name": "Ann",
                        "last_name": "Berg", "phone": None, "tags": ["vip", "VIP", "wholesale"]},
    "order.upsert": {"order_id": "o-1", "customer_id": "cust-9", "status": "open",
                     "company_id": None, "location_id": None,
                     "placed_at": "2026-11-22T10:00:00.123+01:00", "total": "12.50",
                     "currency": "EUR"},
    "order.upsert_b2b": {"order_id": "o-2", "customer_id": "cust-9", "status": "cancelled",
                         "company_id": "c-1", "location_id": "loc-1", "total": "-0.5"},
}


def template_payload():
    t = {}
    for part in ("subject", "text", "html"):
        with open(os.path.join(SRC, "config", "templates", "b2b-access.%s.mustache" % part)) as f:
            t[part] = f.read()
    return t


def decode_seeds():
    for name, payload in CONTRACT.items():
        type = name.split("_")[0]
        topic = TOPIC.get(type, "s")
        write("decode", "contract-" + name, topic + cmd(type, payload))
    write("decode", "contract-template.update", "s" + cmd("template.update", template_payload()))
    privacy = {"customer.merge": {"customer_id": "cust-1", "merge_customer_id": "cust-2"},
               "customer.data_request": {"customer_id": "cust-9"},
               "customer.data_request-email": {"email": "Ann@Example.com"},
               "customer.redact": {"email": "ann@example.com"},
               "shop.redact": {},
               "customer.upsert-stale": {"customer_id": "cust-9", "email": "a@b.example",
                                         "source_updated_at": "2026-12-01T10:00:00Z"}}
    for name, payload in privacy.items():
        write("decode", "contract-" + name, "s" + cmd(name.split("-")[0], payload))
    a = CONTRACT["assign"]
    hostile = {
        "invalid-utf8": b"a" + cmd("assign", a).encode().replace(b"cust-9", b"cust-\xff\xfe"),
        "overlong-utf8": b"a" + cmd("assign", a).encode().replace(b"cust-9", b"\xc0\xaf"),
        "surrogate-escape": "a" + cmd("assign", a).replace("cust-9", "\\ud800"),
        "nul-escape-in-id": "a" + cmd("assign", a).replace("cust-9", "cust\\u00009"),
        "nul-escape-in-key": "a" + cmd("assign", a).replace('"notify"', '"not\\u0000ify"'),
        "raw-nul-byte": b"a" + cmd("assign", a).encode().replace(b"cust-9", b"cust\x009"),
        "duplicate-key": "a" + cmd("assign", a).replace('"notify": true', '"notify": true, "notify": false'),
        "duplicate-command-id": "a" + cmd("assign", a).replace('"type"', '"command_id": "%s", "type"' % UUID),
        "number-for-string": "a" + cmd("assign", dict(a, company_id=12345)),
        "array-for-string": "a" + cmd("assign", dict(a, company_id=["c-1"])),
        "object-for-bool": "a" + cmd("assign", dict(a, notify={"x": 1})),
        "big-int": "a" + cmd("assign", a).replace('true', '123456789012345678901234567890'),
        "float-exp": "a" + cmd("assign", dict(a, notify=1e400 if False else 1.5e300)),
        "id-256": "a" + cmd("assign", dict(a, company_id="c" * 256)),
        "id-255-multibyte": "a" + cmd("assign", dict(a, company_id="\u00e9" * 255)),
        "sql-and-html": "s" + cmd("customer.upsert", dict(CONTRACT["customer.upsert"],
                                 first_name="Robert'); DROP TABLE customers;--",
                                 last_name="<script>alert(1)</script>")),
        "crlf-in-name": "s" + cmd("customer.upsert", dict(CONTRACT["customer.upsert"],
                                 first_name="Ann\r\nBcc: evil@example.com")),
        "crlf-in-email": "s" + cmd("customer.upsert", dict(CONTRACT["customer.upsert"],
                                  email="a@b.example\r\nBcc: evil@example.com")),
        "email-no-at": "s" + cmd("customer.upsert", dict(CONTRACT["customer.upsert"], email="no-at.example")),
        "email-unicode-domain": "s" + cmd("customer.upsert", dict(CONTRACT["customer.upsert"],
                                         email="anna@b\u00fccher.example")),
        "command-id-upper": "a" + cmd("assign", a).replace(UUID, UUID.upper()),
        "command-id-braced": "a" + cmd("assign", a).replace(UUID, "{%s}" % UUID),
        "wrong-topic": "n" + cmd("assign", a),
        "unknown-type": "a" + cmd("assign.v2", a),
        "bad-shop-id": "a" + cmd("assign", a, shop_id="shop 1/../2"),
        "bad-issued-at": "a" + cmd("assign", a, issued_at="2026-02-30T25:61:61Z"),
        "leap-second": "s" + cmd("order.upsert", dict(CONTRACT["order.upsert"], placed_at="2016-12-31T23:59:60Z")),
        "bad-total": "s" + cmd("order.upsert", dict(CONTRACT["order.upsert"], total="1e5")),
        "many-tags": "s" + cmd("customer.upsert", dict(CONTRACT["customer.upsert"],
                              tags=["t%d" % i for i in range(260)])),
        "dup-location": "a" + cmd("assign", dict(a, locations=[{"location_id": "l", "role": "ordering_only"}] * 2)),
        "payload-null": "a" + cmd("assign", None),
        "not-object": "a[1,2,3]",
        "just-a-string": 'a"' + UUID + '"',
        "empty": "a",
        "truncated": "a" + cmd("assign", a)[:57],
        "nested-50": "a" + cmd("assign", dict(a, extra="X")).replace('"X"', "[" * 50 + "]" * 50),
        "nested-10000": "a" + cmd("assign", dict(a, extra="X")).replace('"X"', "[" * 10000 + "]" * 10000),
        "nested-dup-path": "s" + cmd("company.upsert", {"company_id": "c", "name": "n",
                                     "locations": [{"location_id": "l", "name": "x"}]}).replace(
                                         '"name": "x"', '"name": "x", "n\\u00e9": 1, "n\\u00e9": 2'),
        "bom": b"a\xef\xbb\xbf" + cmd("assign", a).encode(),
        "whitespace-only": "a \t\r\n ",
    }
    for name, data in hostile.items():
        write("decode", "hostile-" + name, data)


# ---- mustache: first byte flags (bit 0: raw first; bits 1-3: small max_out / 64) -----

def mustache_seeds():
    for part in ("subject", "text", "html"):
        with open(os.path.join(SRC, "config", "templates", "b2b-access.%s.mustache" % part), "rb") as f:
            write("mustache", "default-" + part, b"\x0e" + f.read())
    seeds = {
        "interpolation": "Hello {{customer.first_name}} {{{customer.last_name}}} {{& company.name}}!",
        "dotted": "{{a.b.c.d}} {{a.b.c.a.b}} {{#a}}{{b.c.d}}{{/a}} {{a.x.y}}",
        "section-list": "{{#locations}}[{{name}}|{{role}}|{{role_name}}|{{.}}]{{/locations}}",
        "inverted": "{{^ea}}empty{{/ea}}{{^f}}false{{/f}}{{^z}}null{{/z}}{{^t}}no{{/t}}",
        "implicit-iterator": "{{#wide}}{{.}},{{/wide}}{{#list}}<{{.}}>{{/list}}",
        "nested-sections": "{{#list}}{{#.}}{{#.}}{{#.}}{{a.b.c}}{{/.}}{{/.}}{{/.}}{{/list}}",
        "numbers": "{{n}} {{neg}} {{pi}} {{big}} {{tiny}} {{t}} {{f}} {{z}} {{e}} {{eo}}",
        "comment": "a{{! a comment\nwith } and }} }}b\n  {{! standalone }}\nc",
        "delimiters": "{{=<% %>=}}<% shop.name %><%={{ }}=%>{{shop.name}}",
        "delimiters-odd": "{{=| |=}}|#locations||name||/locations||={{ }}=|",
        "standalone-crlf": "|\r\n{{#t}}\r\n  x\r\n{{/t}}\r\n|",
        "escapes": "{{amp}}{{shop.name}}{{{amp}}}",
        "unclosed-section": "{{#locations}}{{name}}",
        "mismatched-end": "{{#a}}{{/b}}",
        "unclosed-tag": "Hello {{name",
        "empty-name": "{{}}{{ }}",
        "bad-dotted": "{{a..b}}{{.a}}{{a.}}",
        "partial": "{{> header}}",
        "bad-delimiter": "{{= =}}{{=a=}}",
        "triple-mismatch": "{{{name}}",
        "deep-100": "{{#t}}" * 100 + "x" + "{{/t}}" * 100,
        "deep-101": "{{#t}}" * 101 + "x" + "{{/t}}" * 101,
        "blowup": "{{#wide}}{{#wide}}{{#wide}}{{#wide}}{{amp}}{{/wide}}{{/wide}}{{/wide}}{{/wide}}",
        "invalid-utf8": b"\xff\xfe{{shop.name}}\xc0\xaf",
        "nul-in-text": b"a\x00b{{shop.name}}\x00",
        "lone-braces": "{ } {{ }} }}} {{{ {{{{x}}}}",
    }
    for i, (name, t) in enumerate(seeds.items()):
        if isinstance(t, str):
            t = t.encode()
        flags = bytes([(i * 2) & 0x0f | (i & 1)])
        write("mustache", name, flags + t)


# ---- smtp headers: subject NUL from NUL to NUL to_name NUL message_id ----------------

def smtp_seeds():
    def fields(*f):
        return b"\x00".join(x.encode("utf-8", "surrogatepass") if isinstance(x, str) else x for x in f)
    nid = "<5b0c8e7e-3c9c-4f4a-9f0e-2f6d1f0f1a11@b2bd>"
    ok = ("Nordic Tools: you can now place B2B orders for ACME", "Nordic Tools <hello@nordic.example>",
          "ann@example.com", "Ann Berg", nid)
    seeds = {
        "plain": ok,
        "bare-from": ("Hi", "hello@nordic.example", "ann@example.com", "", "x@y"),
        "quoted-from": ("Hi", '"Nordic, Tools" <hello@nordic.example>', "ann@example.com", "", nid),
        "crlf-subject": ("Hi\r\nBcc: evil@example.com\r\n\r\nbody", *ok[1:]),
        "lf-subject": ("Hi\nX-Injected: 1", *ok[1:]),
        "cr-subject": ("Hi\rX-Injected: 1", *ok[1:]),
        "crlf-to-name": (ok[0], ok[1], ok[2], "Ann\r\nBcc: evil@example.com", nid),
        "crlf-to": (ok[0], ok[1], "ann@example.com\r\nBcc: evil@example.com", "", nid),
        "crlf-from": (ok[0], "Shop\r\nBcc: x@y <a@b>", ok[2], "", nid),
        "crlf-message-id": (ok[0], ok[1], ok[2], "", "<id\r\nBcc: evil@example.com@b2bd>"),
        "utf8-subject": ("V\u00e4lkommen till \u4e2d\u6587 \U0001F600 " * 6, *ok[1:]),
        "encoded-word-lookalike": ("=?UTF-8?B?SGk=?= not encoded", *ok[1:]),
        "long-ascii-subject": ("x" * 1200, *ok[1:]),
        "subject-900": ("y" * 900, *ok[1:]),
        "invalid-utf8-subject": (b"caf\xe9 \xff\xfe \xc0\xaf \xed\xa0\x80", *ok[1:]),
        "c1-controls": ("a\u0085b\u009bc\x7fd\te", *ok[1:]),
        "unicode-domain": (ok[0], ok[1], "anna@b\u00fccher.example", "Anna", nid),
        "unicode-local": (ok[0], "\u00c5sa <\u00e5sa@example.com>", "\u00e5sa@example.com", "", nid),
        "no-at": (ok[0], ok[1], "no-at.example", "", nid),
        "two-at": (ok[0], ok[1], "a@b@c", "", nid),
        "angle-to": (ok[0], ok[1], "<ann@example.com>", "", nid),
        "quoted-local": (ok[0], ok[1], '"ann smith"@example.com', "", nid),
        "html-name": (ok[0], ok[1], ok[2], '<script>alert("x")</script>', nid),
        "quote-backslash-name": (ok[0], '"Sh\\"op\\\\" <s@e.x>', ok[2], 'a "b" \\c\\', nid),
        "long-name": (ok[0], ok[1], ok[2], "N" * 500, nid),
        "utf8-name": (ok[0], "B\u00fccher & S\u00f6hne <b@e.x>", ok[2], "Zo\u00eb \u4e2d", nid),
        "msgid-no-at": (ok[0], ok[1], ok[2], "", "5b0c8e7e-3c9c-4f4a"),
        "msgid-junk": (ok[0], ok[1], ok[2], "", "<<>>@@ \t\"()[]"),
        "msgid-long": (ok[0], ok[1], ok[2], "", "a" * 300 + "@" + "b" * 300),
        "address-254": (ok[0], ok[1], "a" * 64 + "@" + "b" * 189, "", nid),
        "address-255": (ok[0], ok[1], "a" * 64 + "@" + "b" * 190, "", nid),
        "only-subject": ("just a subject",),
        "empty": ("",),
    }
    for name, f in seeds.items():
        write("smtp_headers", name, fields(*f))


if __name__ == "__main__":
    decode_seeds()
    mustache_seeds()
    smtp_seeds()
