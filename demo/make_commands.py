#!/usr/bin/python3
"""Turns demo/customers.csv into the demo's commands, as JSON Lines.

sync.jsonl: the shop, its company with three locations, and a profile for every row
that has a customer_id (the others are created by `assign`, found by email).
assign.jsonl: one `assign` per row. Command ids are derived from the content, so
sending the files again changes nothing (the daemon answers with the stored results).
"""
import csv
import json
import sys
import uuid

SHOP, COMPANY = "nordic-tools", "c-nordic-build"
NS = uuid.UUID("5b2b0d00-0000-4000-8000-000000000000")


def cmd(kind, payload, salt):
    return {"command_id": str(uuid.uuid5(NS, f"{kind}:{salt}")), "type": kind,
            "shop_id": SHOP, "actor": "demo", "import_id": "demo-import-1",
            "payload": payload}


def main(csv_path, out_dir):
    rows = list(csv.DictReader(open(csv_path, encoding="utf-8")))
    sync = [cmd("shop.upsert", {"name": "Nordic Tools", "account_url": "https://nordic-tools.example/account",
                                "from_email": "hello@nordic-tools.example",
                                "staff_email": "staff@nordic-tools.example", "b2b_only": False}, "shop"),
            cmd("company.upsert", {"company_id": COMPANY, "name": "Nordic Build AS",
                                   "locations": [{"location_id": "loc-oslo", "name": "Oslo HQ"},
                                                 {"location_id": "loc-bergen", "name": "Bergen depot"},
                                                 {"location_id": "loc-trondheim", "name": "Trondheim site"}]},
                "company")]
    assign = []
    for r in rows:
        if r["customer_id"]:
            sync.append(cmd("customer.upsert", {"customer_id": r["customer_id"], "email": r["email"],
                                                "first_name": r["first_name"], "last_name": r["last_name"],
                                                "phone": r["phone"], "tags": ["demo"]}, r["customer_id"]))
            customer = {"id": r["customer_id"]}
        else:
            customer = {"email": r["email"], "first_name": r["first_name"],
                        "last_name": r["last_name"], "phone": r["phone"]}
        assign.append(cmd("assign", {"company_id": COMPANY, "customer": customer,
                                     "locations": [{"location_id": r["location_id"], "role": r["role"]}],
                                     "notify": r["notify"] == "true"},
                          r["email"]))
    for name, items in (("sync.jsonl", sync), ("assign.jsonl", assign)):
        with open(f"{out_dir}/{name}", "w", encoding="utf-8") as f:
            for c in items:
                f.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"demo: {len(sync)} sync commands, {len(assign)} assign commands")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
