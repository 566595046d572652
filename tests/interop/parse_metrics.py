"""Parses a Prometheus scrape (stdin) with the reference parser, prometheus_client's, and
prints a JSON summary: {family: {"type": T, "samples": [[name, labels, value], ...]}}.
Exits 1 with the parser's message when the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

try:
    out = {}
    for family in text_string_to_metric_families(sys.stdin.read()):
        out[family.name] = {
            "type": family.type,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
except Exception as e:  # the parser raises ValueError and others
    print(json.dumps({"error": str(e)}))
    sys.exit(1)
print(json.dumps(out))
