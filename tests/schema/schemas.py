"""The wire contract's JSON Schemas (topics/schemas/), for tests.

    import schemas
    schemas.validate("result", msg)          # raises jsonschema.ValidationError
    schemas.validate(schemas.kind_for_command(cmd["type"]), cmd)
    schemas.errors("access", event)          # -> list of readable messages ([] if valid)

Kinds: each command type ("assign", "shop.upsert", ...), "envelope" (any command),
"result", "access", "notification", "dead-letter" (a dead letter's headers as a
dict of str), "shop.settings", "customer.data_export", "trace-context" (the W3C Trace Context
headers a command may carry and b2bd's messages then carry, as a dict of str). Works with Debian's python3-jsonschema 4.10 and with later releases.
"""
import json
import os
import warnings

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("B2BD_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
TOPICS_DIR = os.path.join(SOURCE_DIR, "topics")
SCHEMA_DIR = os.path.join(TOPICS_DIR, "schemas")

COMMAND_TYPES = ("assign", "revoke", "migrate", "notify", "shop.upsert", "company.upsert",
                 "customer.upsert", "order.upsert", "template.update", "customer.merge",
                 "customer.data_request", "customer.redact", "shop.redact", "suspend", "resume")
SYNC_TYPES = COMMAND_TYPES[4:13]
# The command topic (suffix after the prefix) each command type belongs to (its own topic;
# the bulk topic, commands.bulk, takes every type as well).
TOPIC_OF_TYPE = {t: ("commands.sync" if t in SYNC_TYPES else
                     "commands.revoke" if t in ("suspend", "resume") else "commands." + t)
                 for t in COMMAND_TYPES}
BULK_TOPIC = "commands.bulk"

FILES = {t: "command.%s.schema.json" % t for t in COMMAND_TYPES}
FILES.update({
    "envelope": "command.envelope.schema.json",
    "result": "result.schema.json",
    "access": "access.schema.json",
    "notification": "notification.schema.json",
    "notification.sent": "notification.schema.json",
    "notification.failed": "notification.schema.json",
    "dead-letter": "dead-letter.schema.json",
    "shop.settings": "shop-settings.schema.json",
    "customer.data_export": "data-export.schema.json",
    "common": "common.schema.json",
    "trace-context": "trace-context.schema.json",
})
KINDS = tuple(COMMAND_TYPES) + ("envelope", "result", "access", "notification", "dead-letter",
                                "shop.settings", "customer.data_export", "trace-context")

Validator = jsonschema.Draft202012Validator
_cache = {}


def load_all():
    """All schemas of topics/schemas/, by file name."""
    if "all" not in _cache:
        out = {}
        for name in sorted(os.listdir(SCHEMA_DIR)):
            if name.endswith(".json"):
                with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
                    out[name] = json.load(f)
        _cache["all"] = out
    return _cache["all"]


def schema(kind):
    """The schema (a dict) of a kind, or of a file name."""
    name = FILES.get(kind, kind)
    try:
        return load_all()[name]
    except KeyError:
        raise KeyError("no schema for kind %r" % (kind,)) from None


def validator(kind):
    key = ("v", kind)
    if key not in _cache:
        s = schema(kind)
        docs = [x for x in load_all().values() if "$id" in x]
        fc = Validator.FORMAT_CHECKER
        try:  # jsonschema >= 4.18
            import referencing
            import referencing.jsonschema
            registry = referencing.Registry().with_resources(
                (x["$id"], referencing.Resource.from_contents(
                    x, default_specification=referencing.jsonschema.DRAFT202012)) for x in docs)
            _cache[key] = Validator(s, registry=registry, format_checker=fc)
        except ImportError:  # Debian's 4.10
            store = {x["$id"]: x for x in docs}
            resolver = jsonschema.RefResolver(base_uri=s.get("$id", ""), referrer=s, store=store)
            _cache[key] = Validator(s, resolver=resolver, format_checker=fc)
    return _cache[key]


def kind_for_command(type_name):
    """The kind that validates a whole command of this type; KeyError for an unknown type."""
    if type_name not in COMMAND_TYPES:
        raise KeyError("not a command type: %r" % (type_name,))
    return type_name


def validate(kind, message):
    """Raises jsonschema.ValidationError (the most relevant error) if message is invalid."""
    v = validator(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        err = jsonschema.exceptions.best_match(v.iter_errors(message))
    if err is not None:
        raise err


def errors(kind, message):
    """Readable messages of every error (empty list if the message is valid)."""
    v = validator(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        errs = sorted(v.iter_errors(message), key=lambda e: list(e.absolute_path))
    return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "<root>", e.message)
            for e in errs]


def is_valid(kind, message):
    return not errors(kind, message)


def load_manifest():
    with open(os.path.join(TOPICS_DIR, "manifest.json"), encoding="utf-8") as f:
        return json.load(f)
