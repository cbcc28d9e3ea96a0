#!/usr/bin/env python3
"""Tests of benches/accuracy_report.py's rules for partial run records (standard library
only; `make test` runs them): a section regenerated from part of its records would silently
drop rows that were measured, so such a section is carried over from the existing document,
marked, and says which records are missing; with no records at all the document keeps every
measured table; regenerating twice changes nothing.

The records written here are minimal stand-ins with the fields the generator reads, not
results."""
import json
import os
import subprocess
import sys
import tempfile
import unittest

GENERATOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "accuracy_report.py")
UNKNOWN = "## Anomaly types nobody labeled (paper Sec. IV-E)"
PEERS = "## Peers on identical splits"
CARRIED = "_Carried over from the previous version of this document"


def previous_doc():
    """A document as an earlier full run left it: each section with a measured row."""
    return "\n".join([
        "# Detection quality", "",
        PEERS, "", "| dataset | runs |", "|---|---|", "| measured peers row | 10 |", "",
        UNKNOWN, "", "| setting | runs |", "|---|---|", "| measured unsw known 6 row | 5 |", "",
    ]) + "\n"


def record(path):
    run = {"metrics": [{"variant": "default", "auc_roc": 0.9, "auc_pr": 0.5}]}
    run["per_type"] = [{"anomaly_type": 2, "metrics": run["metrics"]}]
    with open(path, "w") as f:
        json.dump({"data": "stand-in.npz", "report": {"runs": [run], "per_type": []}}, f)


def generate(out_dir, doc):
    subprocess.run([sys.executable, GENERATOR, out_dir, doc], check=True, capture_output=True)
    with open(doc) as f:
        return f.read()


def section(text, heading):
    body = text.split(heading, 1)[1]
    return body.split("\n## ", 1)[0]


class PartialRecords(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "records")
        os.makedirs(self.out)
        self.doc = os.path.join(self.tmp.name, "ACCURACY.md")
        with open(self.doc, "w") as f:
            f.write(previous_doc())

    def tearDown(self):
        self.tmp.cleanup()

    def test_no_records_keeps_every_measured_table(self):
        text = generate(self.out, self.doc)
        for heading, row in [(PEERS, "measured peers row"), (UNKNOWN, "measured unsw known 6 row")]:
            body = section(text, heading)
            self.assertIn(row, body)
            self.assertIn(CARRIED, body)

    def test_a_partial_unknown_type_set_is_carried_over_not_shrunk(self):
        # Only one of the five default unknown-type settings, with its peers.
        record(os.path.join(self.out, "annthyroid-known1.json"))
        record(os.path.join(self.out, "peers-annthyroid-known1.json"))
        text = generate(self.out, self.doc)
        body = section(text, UNKNOWN)
        self.assertIn("measured unsw known 6 row", body)
        self.assertIn(CARRIED, body)
        self.assertNotIn("annthyroid, known type 1", body)

    def test_a_section_with_no_earlier_version_names_the_missing_records(self):
        with open(self.doc, "w") as f:
            f.write("# Detection quality\n")
        record(os.path.join(self.out, "annthyroid-known1.json"))
        text = generate(self.out, self.doc)
        body = section(text, UNKNOWN)
        self.assertIn("missing from the run records: ", body)
        missing = body.split("missing from the run records: ", 1)[1].split("._", 1)[0].split(", ")
        self.assertIn("unsw-known6.json", missing)
        self.assertIn("peers-annthyroid-known1.json", missing)
        self.assertNotIn("annthyroid-known1.json", missing)

    def test_the_literal_recipe_reads_only_its_own_datasets(self):
        # pipelines/experiment.sh runs --scaling minmax on three datasets, not on nslkdd or
        # unsw_nb15: the table has a row for each of the three and asks for no other record.
        for key in ("spambase", "arrhythmia", "annthyroid"):
            record(os.path.join(self.out, key + "-minmax.json"))
        body = section(generate(self.out, self.doc), "## Literal recipe")
        self.assertNotIn("missing from the run records", body)
        rows = [line for line in body.splitlines() if line.startswith("| ") and "runs" not in line]
        self.assertEqual([r.split(" |")[0][2:].split(",")[0].split(" (")[0] for r in rows],
                         ["spambase", "arrhythmia", "annthyroid"])

    def test_regenerating_changes_nothing(self):
        record(os.path.join(self.out, "annthyroid-known1.json"))
        first = generate(self.out, self.doc)
        second = generate(self.out, self.doc)
        self.assertEqual(first, second)


if __name__ == "__main__":
    unittest.main()
