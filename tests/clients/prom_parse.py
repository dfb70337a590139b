"""Parses Prometheus text (the file named on the command line) with
prometheus_client's parser, which raises on malformed text, and prints one
JSON object: each family's type, help text and the sum of its samples
(for a histogram, of its _count samples)."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

with open(sys.argv[1], encoding="utf-8") as f:
    text = f.read()
families = {}
for family in text_string_to_metric_families(text):
    if family.type == "histogram":
        total = sum(s.value for s in family.samples if s.name.endswith("_count"))
    else:
        total = sum(s.value for s in family.samples)
    families[family.name] = {
        "type": family.type,
        "help": family.documentation,
        "total": total,
        "samples": len(family.samples),
    }
print(json.dumps(families))
