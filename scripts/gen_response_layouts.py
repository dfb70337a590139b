#!/usr/bin/env python3
"""Writes src/wire/response_layouts.rs: the field layout of every upstream
response the proxy decodes, read from kafka-protocol's own generated
decoders, so the bounded walker in src/wire/bounded.rs checks exactly the
counts the decoder will later trust.

Usage: scripts/gen_response_layouts.py KAFKA_PROTOCOL_SRC_DIR > src/wire/response_layouts.rs
Rerun whenever the kafka-protocol version changes.
"""
import re
import sys

# (ApiKey variant, file stem, top-level struct)
MESSAGES = [
    ("AddOffsetsToTxn", "add_offsets_to_txn_response", "AddOffsetsToTxnResponse"),
    ("AddPartitionsToTxn", "add_partitions_to_txn_response", "AddPartitionsToTxnResponse"),
    ("ApiVersions", "api_versions_response", "ApiVersionsResponse"),
    ("CreatePartitions", "create_partitions_response", "CreatePartitionsResponse"),
    ("CreateTopics", "create_topics_response", "CreateTopicsResponse"),
    ("DeleteTopics", "delete_topics_response", "DeleteTopicsResponse"),
    ("DescribeCluster", "describe_cluster_response", "DescribeClusterResponse"),
    ("DescribeConfigs", "describe_configs_response", "DescribeConfigsResponse"),
    ("DescribeGroups", "describe_groups_response", "DescribeGroupsResponse"),
    ("EndTxn", "end_txn_response", "EndTxnResponse"),
    ("Fetch", "fetch_response", "FetchResponse"),
    ("FindCoordinator", "find_coordinator_response", "FindCoordinatorResponse"),
    ("Heartbeat", "heartbeat_response", "HeartbeatResponse"),
    ("InitProducerId", "init_producer_id_response", "InitProducerIdResponse"),
    ("JoinGroup", "join_group_response", "JoinGroupResponse"),
    ("LeaveGroup", "leave_group_response", "LeaveGroupResponse"),
    ("ListGroups", "list_groups_response", "ListGroupsResponse"),
    ("ListOffsets", "list_offsets_response", "ListOffsetsResponse"),
    ("Metadata", "metadata_response", "MetadataResponse"),
    ("OffsetCommit", "offset_commit_response", "OffsetCommitResponse"),
    ("OffsetFetch", "offset_fetch_response", "OffsetFetchResponse"),
    ("OffsetForLeaderEpoch", "offset_for_leader_epoch_response", "OffsetForLeaderEpochResponse"),
    ("Produce", "produce_response", "ProduceResponse"),
    ("SaslAuthenticate", "sasl_authenticate_response", "SaslAuthenticateResponse"),
    ("SaslHandshake", "sasl_handshake_response", "SaslHandshakeResponse"),
    ("SyncGroup", "sync_group_response", "SyncGroupResponse"),
    ("TxnOffsetCommit", "txn_offset_commit_response", "TxnOffsetCommitResponse"),
]

ALL = frozenset(range(32))
FIXED = {"Int8": 1, "Int16": 2, "UInt16": 2, "Int32": 4, "Int64": 8, "Float64": 8,
         "Boolean": 1, "Uuid": 16}


def cond_set(text):
    """The versions (0..31) a decoder condition holds for."""
    s = ALL
    for part in text.split("&&"):
        m = re.fullmatch(r"\s*version\s*(>=|<=|==|!=|<|>)\s*(\d+)\s*", part)
        if not m:
            raise SystemExit(f"unknown condition: {text!r}")
        op, n = m.group(1), int(m.group(2))
        s = s & frozenset(v for v in ALL if eval(f"{v} {op} {n}"))
    return s


def primitive(expr):
    if expr in FIXED:
        return f"Kind::Fixed({FIXED[expr]})"
    if expr in ("String", "CompactString"):
        return f"Kind::String {{ compact: {str(expr == 'CompactString').lower()} }}"
    if expr in ("Bytes", "CompactBytes"):
        return f"Kind::Bytes {{ compact: {str(expr == 'CompactBytes').lower()} }}"
    return None


def kind(expr, struct_of):
    p = primitive(expr)
    if p:
        return p
    if expr == "Struct":
        return f"Kind::Struct(&{struct_of()})"
    m = re.fullmatch(r"(Compact)?Array\(types::(\w+)\)", expr)
    if m:
        inner = kind(m.group(2), struct_of)
        return f"Kind::Array {{ compact: {str(bool(m.group(1))).lower()}, of: &{inner} }}"
    raise SystemExit(f"unknown decoder: {expr}")


def mask(versions):
    return "0x%08x" % sum(1 << v for v in versions)


def parse_file(text):
    structs = {}
    for m in re.finditer(r"pub struct (\w+) \{(.*?)\n\}", text, re.S):
        fields = dict(re.findall(r"pub (\w+): ([^\n]+),", m.group(2)))
        structs[m.group(1)] = fields
    decoders = {}
    for m in re.finditer(r"impl Decodable for (\w+) \{\n(.*?)\n\}\n", text, re.S):
        decoders[m.group(1)] = m.group(2)
    return structs, decoders


def element_type(rust_type):
    t = rust_type
    while True:
        m = re.fullmatch(r"(?:Vec|Option)<(.+)>", t)
        if not m:
            return t.split("::")[-1]
        t = m.group(1)


def walk_decoder(name, body, structs, emit_struct):
    """Reads one generated decode function: its version range, its fields
    in order with the versions and encoding of each, its tagged fields and
    the versions that carry a tagged-field section."""
    lo_hi = re.search(r"if version < (\d+) \|\| version > (\d+) \{", body)
    versions = (int(lo_hi.group(1)), int(lo_hi.group(2)))
    fields = []  # (field, [(set, kind)])
    tagged = []  # (tag, set, kind)
    flexible = frozenset()
    stack = []  # entries: ("if", parent, cond) | ("tag", n) | ("other",)
    current = None
    tag = None

    def active():
        s = ALL
        for e in stack:
            if e[0] == "if":
                s = s & e[2]
        return s

    lines = body.split("\n")
    start = next(i for i, l in enumerate(lines) if "specified version not supported" in l) + 2
    for raw in lines[start:]:
        line = re.sub(r'"[^"]*"', '""', raw).replace(" { version }", "")
        stripped = line.strip()
        if stripped.startswith("Ok(Self"):
            break
        m = re.match(r"(?:let (?:mut )?)?(\w+) =", stripped)
        if m and m.group(1) not in ("tag", "size", "num_tagged_fields", "unknown_value"):
            current = m.group(1)
        if "num_tagged_fields = types::UnsignedVarInt" in stripped:
            flexible = active()
            continue
        dm = re.search(r"types::(.+?)\.decode\(buf\)\?", stripped)
        if dm and "UnsignedVarInt" not in dm.group(1):
            in_tag = [e for e in stack if e[0] == "tag"]
            field_type = structs[name].get(current)
            k = kind(dm.group(1), lambda: emit_struct(element_type(field_type)))
            if in_tag:
                tagged.append((in_tag[-1][1], active(), k))
            else:
                for f in fields:
                    if f[0] == current:
                        f[1].append((active(), k))
                        break
                else:
                    fields.append((current, [(active(), k)]))
        # Braces, in order.
        if stripped.startswith("} else {"):
            e = stack.pop()
            if e[0] != "if":
                raise SystemExit(f"{name}: else after {e}")
            stack.append(("if", e[1], e[1] - e[2]))
            continue
        opens, closes = stripped.count("{"), stripped.count("}")
        for _ in range(closes):
            stack.pop()
        if opens:
            im = re.search(r"\bif (version[^{]*)\{$", stripped)
            am = re.match(r"(\d+) => \{$", stripped)
            if opens != 1:
                raise SystemExit(f"{name}: cannot read line {raw!r}")
            if im:
                stack.append(("if", active(), cond_set(im.group(1))))
            elif am:
                stack.append(("tag", int(am.group(1))))
            else:
                stack.append(("other",))
    return versions, fields, tagged, flexible


def main():
    src = sys.argv[1]
    out = []
    done = {}

    def const_name(stem, struct):
        snake = re.sub(r"(?<!^)(?=[A-Z])", "_", struct).upper()
        return f"{stem.upper()}__{snake}"

    tables = []
    for api, stem, top in MESSAGES:
        with open(f"{src}/messages/{stem}.rs") as f:
            structs, decoders = parse_file(f.read())

        def emit(struct, stem=stem, structs=structs, decoders=decoders):
            cname = const_name(stem, struct)
            if cname in done:
                return cname
            done[cname] = True
            versions, fields, tagged, flexible = walk_decoder(
                struct, decoders[struct], structs, emit)
            lines = [f"pub static {cname}: Layout = Layout {{",
                     f'    name: "{struct}",',
                     f"    versions: ({versions[0]}, {versions[1]}),",
                     f"    flexible: {mask(flexible)},",
                     "    fields: &["]
            for fname, alts in fields:
                encodings = ", ".join(f"({mask(s)}, {k})" for s, k in alts)
                lines.append(f'        Field {{ name: "{fname}", alts: &[{encodings}] }},')
            lines.append("    ],")
            if tagged:
                lines.append("    tagged: &[")
                for t, s, k in tagged:
                    lines.append(f"        Tagged {{ tag: {t}, versions: {mask(s)}, kind: {k} }},")
                lines.append("    ],")
            else:
                lines.append("    tagged: &[],")
            lines.append("};")
            out.append("\n".join(lines))
            return cname

        tables.append((api, emit(top)))

    print("// @generated by scripts/gen_response_layouts.py from kafka-protocol 0.18.0's")
    print("// decoders: the field layout each decoder reads. Do not edit by hand.")
    print()
    print("use kafka_protocol::messages::ApiKey;")
    print()
    print("use super::layout::{Field, Kind, Layout, Tagged};")
    print()
    print("/// The layout of each response the proxy decodes, by API.")
    print("pub fn response_layout(api: ApiKey) -> Option<&'static Layout> {")
    print("    match api {")
    for api, cname in tables:
        print(f"        ApiKey::{api} => Some(&{cname}),")
    print("        _ => None,")
    print("    }")
    print("}")
    print()
    print("\n\n".join(out))


main()
