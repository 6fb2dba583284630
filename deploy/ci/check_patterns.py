"""The text patterns of deploy/openapi.json under Python's `re` (what
Schemathesis generates from), against cases whose answer the node's text
rule gives (trim Unicode White_Space, then: a required text is not blank,
no control character remains)."""
import json
import re
import sys

spec = json.load(open(sys.argv[1]))
schemas = spec["components"]["schemas"]
required = re.compile(schemas["PostingCreate"]["properties"]["title"]["pattern"])
optional = re.compile(schemas["PostingCreate"]["properties"]["wage"]["pattern"])

# (text, accepted as a required text, accepted as an optional text)
cases = [
    ("a", True, True),
    ("  a b  ", True, True),
    ("\t招聘\u3000", True, True),
    ("\u00a0x\u2028", True, True),
    ("", False, True),
    ("   ", False, True),
    ("\t\n", False, True),
    ("a\tb", False, False),
    ("a\x00", False, False),
    ("\x1c", False, False),  # Python's \s would take it for whitespace; Rust's trim does not
    ("\x85", False, True),  # NEL is White_Space (trimmed)
    ("a\x9fb", False, False),
]
bad = []
for text, want_required, want_optional in cases:
    if bool(required.fullmatch(text)) != want_required:
        bad.append(f"required text pattern: {text!r} should be {'accepted' if want_required else 'refused'}")
    if bool(optional.fullmatch(text)) != want_optional:
        bad.append(f"optional text pattern: {text!r} should be {'accepted' if want_optional else 'refused'}")
node_id = re.compile(schemas["NodeId"]["pattern"])
for text, ok in [("gz", True), ("gz/guiyang/a-1", True), ("gz/", False), ("Gz", False), ("/".join(["a"] * 9), False)]:
    if bool(node_id.fullmatch(text)) != ok:
        bad.append(f"NodeId pattern: {text!r} should be {'accepted' if ok else 'refused'}")
posting = re.compile(schemas["PostingId"]["pattern"])
for text, ok in [("gz.guiyang_p12", True), ("gz_p0", False), ("gz_w1", False), ("gz_p01", False)]:
    if bool(posting.fullmatch(text)) != ok:
        bad.append(f"PostingId pattern: {text!r} should be {'accepted' if ok else 'refused'}")
for line in bad:
    print(line, file=sys.stderr)
if bad:
    sys.exit(1)
print(f"{len(cases) + 9} pattern cases hold")
