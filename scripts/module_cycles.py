#!/usr/bin/env python3
"""Lists the import cycles between the crate's source files.

Each file under src/ is a module; a `use crate::a::b` (or `crate::a::b`
anywhere in the code, or `super::x`) is an edge to the file that defines
the named item: a name a module re-exports (`pub use child::Item`) is
followed to where it is defined, and uses of a parent's own items count
like any other. Test modules are left out. Prints every strongly connected
set of two or more files (an import circle) and exits 1 when there is one,
unless the set is named in ALLOWED with the reason it may stay.
"""

import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# Cycles allowed to stay, each through an interface injected at start-up:
# a frozenset of module paths -> why.
ALLOWED = {}

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\}", re.S)


def modules():
    """module path (tuple) -> file path, for every .rs file under src."""
    out = {}
    for root, _, files in os.walk(SRC):
        for f in files:
            if not f.endswith(".rs"):
                continue
            full = os.path.join(root, f)
            rel = os.path.relpath(full, SRC)[:-3].split(os.sep)
            if rel[-1] in ("mod", "lib", "main"):
                rel = rel[:-1]
            out[tuple(rel)] = full
    return out


REEXPORT = re.compile(r"\bpub\s+use\s+((?:self::|super::|crate::)?[A-Za-z_][A-Za-z0-9_:]*?)(?:::\{([^}]*)\}|::([A-Za-z_][A-Za-z0-9_]*))\s*;")


def reexports(mods):
    """(module, name) -> the module a `pub use` there takes `name` from."""
    out = {}
    for mod, path in mods.items():
        text = strip_comments(open(path, encoding="utf-8").read())
        for prefix, group, single in REEXPORT.findall(text):
            parts = [p for p in prefix.split("::") if p]
            if parts[0] == "crate":
                base = ()
                parts = parts[1:]
            elif parts[0] == "super":
                base = mod[:-1]
                parts = parts[1:]
            elif parts[0] == "self":
                base = mod
                parts = parts[1:]
            else:
                base = mod
            names = [single] if single else [n.strip().split(" as ")[-1].strip() for n in group.split(",")]
            target = base + tuple(parts)
            if target not in mods:
                continue
            for n in names:
                if n and n != "self":
                    out[(mod, n)] = target
    return out


def resolve(mods, again, here, kind, parts):
    """The module defining what `kind::parts` names from module `here`."""
    if kind == "crate":
        base = ()
    else:
        base = here[:-1]
    full = base + tuple(parts)
    for n in range(len(full), 0, -1):
        if full[:n] in mods:
            target = full[:n]
            if n < len(full) and (target, full[n]) in again:
                return again[(target, full[n])]
            return target
    return None


def strip_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def edges(mods):
    again = reexports(mods)
    graph = {m: set() for m in mods}
    for mod, path in mods.items():
        if path.endswith("main.rs"):
            continue  # the binary, not the library's module tree
        text = strip_comments(open(path, encoding="utf-8").read())
        text = re.sub(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{.*", "", text, flags=re.S)
        text = REEXPORT.sub("", text)  # followed through `again` instead
        targets = []
        # Glob imports use the module they glob.
        for kind, tail in re.findall(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\*", text):
            targets.append((kind, [p for p in tail.split("::") if p] + ["*"]))
        for kind, tail in PATH.findall(text):
            targets.append((kind, [p for p in tail.split("::") if p]))
        for kind, tail, group in USE_GROUP.findall(text):
            prefix = [p for p in tail.split("::") if p]
            for item in re.split(r",", group):
                item = item.strip().split(" as ")[0].strip()
                head = re.match(r"[A-Za-z_][A-Za-z0-9_]*", item)
                if head and head.group(0) != "self":
                    targets.append((kind, prefix + [head.group(0)]))
        # Paths relative to this module: `child::item`, `use child::{..}`.
        for head in set(re.findall(r"(?<![:\w])([a-z_][a-z0-9_]*)::", text)):
            if mod + (head,) in mods:
                graph[mod].add(mod + (head,))
        for kind, parts in targets:
            target = resolve(mods, again, mod, kind, parts)
            if target and target != mod:
                graph[mod].add(target)
    return graph


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = set()
            while True:
                w = stack.pop()
                on.discard(w)
                scc.add(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(scc)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def name(m):
    return "::".join(m) or "crate"


def main():
    mods = modules()
    graph = edges(mods)
    found = cycles(graph)
    bad = 0
    for scc in sorted(found, key=len, reverse=True):
        key = frozenset(name(m) for m in scc)
        why = ALLOWED.get(key)
        label = "allowed: " + why if why else "CYCLE"
        print(f"{label} ({len(scc)} modules): {', '.join(sorted(key))}")
        if not why:
            bad += 1
    if not found:
        print(f"no module cycle among {len(mods)} modules")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
