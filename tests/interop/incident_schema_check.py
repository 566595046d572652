"""Validates STIX objects against the OASIS Incident Core JSON schemas (issue 18).

Usage: incident_schema_check.py FIXTURES_DIR < objects.json

FIXTURES_DIR is crates/concord/tests/fixtures/incident-core (see its README.md). stdin holds
a JSON list of STIX objects; each `incident` is checked against the Incident Core extension's
schema and each `task` against the Task SDO's, with their `$ref`s to cti-stix2-json-schemas
resolved from the local copies (no network). Prints one JSON document: per object its id,
the schema and the errors (path and message); exits 1 when any object fails, 0 otherwise.

The Python `jsonschema` package (with `referencing`) is already pinned in
tests/interop/requirements.txt for stix2-validator, so this check adds no dependency; the
Rust `jsonschema` crate would have added its own tree to every test build.
"""

import copy
import json
import os
import sys

import jsonschema
import referencing
import referencing.jsonschema

TASK = "task-extension-definition--2074a052-8be4-4932-849e-f5e7798e0030.json"
INCIDENT = "incident-core-extension-definition--ef765651-680c-498d-9894-99799f2fa126.json"
# "Optional Common Properties" of the Task SDO in the suite's prose (§2.4) that the schema's
# closed property list forgets (fixtures README): added, nothing else changed.
TASK_COMMON = ["created_by_ref", "revoked", "confidence", "lang", "object_marking_refs",
               "granular_markings"]


def main():
    root = sys.argv[1]
    schemas = os.path.join(root, "stix2-json-schemas")

    def retrieve(uri):
        # https://raw.githubusercontent.com/oasis-open/cti-stix2-json-schemas/stix2.1/schemas/X
        marker = "/schemas/"
        if "cti-stix2-json-schemas" not in uri or marker not in uri:
            raise referencing.exceptions.NoSuchResource(ref=uri)
        rel = uri.split(marker, 1)[1]
        with open(os.path.join(schemas, rel)) as f:
            contents = json.load(f)
        return referencing.Resource.from_contents(
            contents, default_specification=referencing.jsonschema.DRAFT202012)

    registry = referencing.Registry(retrieve=retrieve)

    def load(name):
        with open(os.path.join(root, name)) as f:
            return json.load(f)

    task = load(TASK)
    patched = copy.deepcopy(task)
    for p in TASK_COMMON:
        patched["allOf"][1]["properties"].setdefault(p, {})
    incident = load(INCIDENT)
    validators = {
        "task": (TASK, jsonschema.Draft7Validator(patched, registry=registry)),
        "incident": (INCIDENT, jsonschema.Draft7Validator(incident, registry=registry)),
    }
    objects = json.load(sys.stdin)
    results = []
    failed = 0
    for o in objects:
        t = o.get("type")
        if t not in validators:
            continue
        name, v = validators[t]
        errors = [{"path": "/".join(str(x) for x in e.absolute_path), "message": e.message}
                  for e in v.iter_errors(o)]
        failed += bool(errors)
        results.append({"id": o.get("id"), "schema": name, "errors": errors})
    print(json.dumps({"checked": len(results), "failed": failed, "results": results,
                      "task_schema_patched_with": TASK_COMMON}))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
