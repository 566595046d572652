#!/usr/bin/env python3
"""Rebuilds the test data under tests/data from the full public data set (see README.md).

    python3 tests/data/subset.py SOURCE_DIR

SOURCE_DIR is the full collection (the folder README.md describes; not part of the
repository). The tests never run this script; it records how each subset was cut.
"""
import gzip, json, os, shutil, sys

src = sys.argv[1]
dst = os.path.dirname(os.path.abspath(__file__))


def s(p):
    return os.path.join(src, p)


def d(p):
    os.makedirs(os.path.dirname(os.path.join(dst, p)), exist_ok=True)
    return os.path.join(dst, p)


def copy(p):
    shutil.copyfile(s(p), d(p))


def gz_bytes(data, p):
    # mtime 0: the same input gives the same bytes, so a rerun changes nothing in git.
    with open(d(p), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(data)


def gz(p):
    gz_bytes(open(s(p), "rb").read(), p + ".gz")


def copytree(p):
    for root, _, files in os.walk(s(p)):
        for f in files:
            copy(os.path.relpath(os.path.join(root, f), src))


def head_gz(p, n, out=None):
    """First n records of a gzip log (Zeek TSV keeps its header and its #close line)."""
    lines = gzip.open(s(p), "rb").read().splitlines(keepends=True)
    head = [l for l in lines if l.startswith(b"#")][:8]
    recs = [l for l in lines if not l.startswith(b"#")][:n]
    tail = [l for l in lines[-1:] if l.startswith(b"#close")]
    gz_bytes(b"".join(head + recs + tail), out or p)


# STIX: whole files, gzip.
for f in ["stix/attack/mobile-attack-17.1.json", "stix/capec/capec-3.9-stix21.json",
          "stix/atlas/stix-atlas-5.6.0.json"]:
    gz(f)
# ATT&CK for ICS: the file the quickstart ships (the same bytes, so git stores it once).
shutil.copyfile(os.path.join(dst, "../../crates/concord/assets/ics-attack-18.1.json.gz"),
                d("stix/attack/ics-attack-18.1.json.gz"))
for dd in ["stix/attack", "stix/capec", "stix/atlas", "stix/oasis"]:
    for f in os.listdir(s(dd)):
        if f.startswith("LICENSE"):
            copy(f"{dd}/{f}")
for dd in ["stix/atlas/opencti-bundles", "stix/oasis/json-schemas-examples",
           "stix/oasis/cti-documentation", "stix/oasis/common-objects"]:
    copytree(dd)
copy("stix/oasis/python-stix2-test-objects.json")

# Patterns: whole (OASIS BSD-3-Clause, like the examples).
copytree("patterns")
copy("stix/oasis/LICENSE-OASIS-BSD3.txt")
shutil.copyfile(d("stix/oasis/LICENSE-OASIS-BSD3.txt"), d("patterns/LICENSE-OASIS-BSD3.txt"))

# MISP: the ESET events whole (gzip), the feed whole, describeTypes, the warninglists.
for f in sorted(os.listdir(s("misp/eset-events"))):
    gz(f"misp/eset-events/{f}")
for f in os.listdir(s("misp")):
    if f.startswith("LICENSE"):
        copy(f"misp/{f}")
copytree("misp/feed-eset-sshdoor")
copy("misp/format/describeTypes.json")
# The two lists of more than 500 kB (public-dns-v4, dynamic-dns) keep their first 2,000
# entries and the well-known public resolvers the tests name; every other list is whole.
KEEP = {"8.8.8.8", "8.8.4.4", "1.1.1.1", "9.9.9.9"}
TRIM = {"public-dns-v4", "dynamic-dns"}
for name in sorted(os.listdir(s("misp/warninglists"))):
    p = f"misp/warninglists/{name}/list.json"
    if not os.path.exists(s(p)):
        continue
    j = json.load(open(s(p)))
    if name in TRIM:
        j["list"] = j["list"][:2000] + [v for v in j["list"][2000:] if v in KEEP]
    with open(d(p), "w") as f:
        json.dump(j, f, separators=(",", ":"), ensure_ascii=False)
        f.write("\n")

# IOC lists: a subset of files, each whole.
MALTRAIL = ["mass_scanner_cidr.txt", "malware/apt_lazarus.txt", "malware/apt_cosmicduke.txt",
            "malware/android_clayrat.txt", "malware/snatch.txt", "malicious/metasploit.txt",
            "malicious/generic_tds.txt", "malicious/ek_rig.txt", "suspicious/web_shells.txt",
            "suspicious/onion.txt", "suspicious/port_proxy.txt", "suspicious/crypto_mining.txt"]
for f in MALTRAIL:
    gz(f"ioc/maltrail/{f}")
copy("ioc/maltrail/LICENSE-maltrail.txt")
for f in ["c2-iocs.txt", "hash-iocs.txt"]:
    gz(f"ioc/signature-base/{f}")
for f in ["LICENSE-DRL-1.1.txt", "README.txt"]:
    copy(f"ioc/signature-base/{f}")
for f in sorted(os.listdir(s("ioc/eset-hashes"))):
    if f.startswith(("agrius__", "ace_cryptor__", "amavaldo__", "LICENSE")):
        copy(f"ioc/eset-hashes/{f}")

# Logs: the first records of each Zeek log (gzip), the OTRF log whole (gzip).
for f, n in [("dns.log.gz", 5000), ("dns.json.gz", 5000), ("ssl.log.gz", 3000),
             ("x509.log.gz", 300), ("smtp.log.gz", 200), ("notice.log.gz", 100)]:
    head_gz(f"logs/zeek-wrccdc-2018/{f}", n)
copy("logs/zeek-wrccdc-2018/LICENSE-CC-BY-SA-4.0.txt")
gz("logs/zeek-otrf-apt29-day1/combined_zeek.log")
for f in os.listdir(s("logs/zeek-otrf-apt29-day1")):
    if f.startswith("LICENSE"):
        copy(f"logs/zeek-otrf-apt29-day1/{f}")

# STIX 2.0 (for the refusal test): the first 40 objects of the assembled Enterprise bundle.
b = json.load(gzip.open(s("stix/attack/enterprise-attack-18.1-stix20-assembled.json.gz")))
b["objects"] = b["objects"][:40]
gz_bytes(json.dumps(b, indent=1).encode(), "stix/attack/enterprise-attack-18.1-stix20-first40.json.gz")
