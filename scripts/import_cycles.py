#!/usr/bin/env python3
"""Import circles between the files of one Rust crate.

    scripts/import_cycles.py CRATE_SRC [--within DIR]... [--graph]

CRATE_SRC is a crate's source root (`src`, `kyc/src`, `gateway/src`). Every `.rs` file is a node;
an edge A -> B means A names an item of B through a path (`use crate::x::y`, `super::y`,
`self::y`, or the same paths inline in code). A `mod b;` declaration is not an edge: declaring a
child is not importing from it. `#[cfg(test)]` modules in separate `tests.rs` files are nodes like
any other; inline `mod tests { ... }` blocks at the end of a file are skipped (test code may look
at its parent).

It prints each strongly connected component of more than one file (a circle) and exits 1 when
there is one. With `--within DIR` (relative to CRATE_SRC, repeatable) only circles made entirely
of files under DIR count: `--within api` answers "does any file inside src/api import back from
a file that imports it". `--graph` prints every edge.

The resolution is textual (no macro expansion, no glob imports followed): a path resolves to the
deepest module file that exists, so `crate::api::error::ApiError` is an edge to `api/error.rs`
and `crate::identity::Identity` an edge to `identity/mod.rs`.
"""

import os
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """Removes comments, string and char literals (keeps line structure roughly)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 8]) and (i == 0 or not text[i - 1].isalnum()):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 1 if text[i + 1] != "\\" else i + 2)
            i = j + 1
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def drop_inline_tests(text):
    """Cuts `#[cfg(test)] mod name { ... }` blocks (inline unit tests)."""
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+" + IDENT + r"\s*\{", text)
        if not m:
            return text
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        text = text[: m.start()] + text[i:]


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+as\s+" + IDENT, "", tree)  # `x as y` names x
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    if cur:
        parts.append(cur)
    out = []
    for p in parts:
        out.extend(expand_use(prefix + p))
    return out


class Crate:
    def __init__(self, root):
        self.root = os.path.normpath(root)
        self.files = {}  # module path tuple -> file
        for top in ("lib.rs", "main.rs"):
            if os.path.exists(os.path.join(self.root, top)):
                self.files[()] = os.path.join(self.root, top)
                break
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                if not name.endswith(".rs"):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), self.root)[:-3].split(os.sep)
                if rel in (["lib"], ["main"]) or rel[0] == "bin":
                    continue
                if rel[-1] == "mod":
                    rel = rel[:-1]
                self.files[tuple(rel)] = os.path.join(dirpath, name)

    def module_of(self, path):
        for mod, f in self.files.items():
            if f == path:
                return mod
        raise KeyError(path)

    def resolve(self, here, segments):
        """The file a path names, or None (outside the crate)."""
        if not segments:
            return None
        head, rest = segments[0], segments[1:]
        if head == "crate":
            base = ()
        elif head == "self":
            base = here
        elif head == "super":
            base = here
            while rest is not None and head == "super":
                base = base[:-1]
                if rest and rest[0] == "super":
                    head, rest = rest[0], rest[1:]
                else:
                    break
        else:
            return None
        path = base
        best = self.files.get(base)
        for seg in rest:
            path = path + (seg,)
            if path in self.files:
                best = self.files[path]
            else:
                break
        return best

    def module_path(self, here, segments):
        """The module a `use` path names exactly (every segment a module), or None."""
        if not segments or segments[0] not in ("crate", "self", "super"):
            return None
        base = () if segments[0] == "crate" else here
        rest = segments[1:]
        if segments[0] == "super":
            base = here[:-1]
            while rest and rest[0] == "super":
                base, rest = base[:-1], rest[1:]
        path = base + tuple(rest)
        return path if path in self.files else None

    def edges(self):
        graph = {f: set() for f in self.files.values()}
        for mod, f in self.files.items():
            with open(f, encoding="utf-8") as fh:
                text = drop_inline_tests(strip(fh.read()))
            # The module a file's `self::`/`super::` are relative to is the file's own module.
            paths = []
            aliases = {}  # a name `use` binds to a module of this crate -> that module
            # `mod child;` binds `child` (declaring it is no edge; naming an item through it is).
            for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*;", text):
                if mod + (m.group(1),) in self.files:
                    aliases[m.group(1)] = mod + (m.group(1),)
            for m in re.finditer(r"\buse\s+([^;]+);", text):
                for p in expand_use(m.group(1)):
                    paths.append(p)
                    segs = [s for s in p.split("::") if s]
                    name = segs[-1] if segs else ""
                    if name == "self":
                        segs, name = segs[:-1], segs[-2] if len(segs) > 1 else ""
                    target = self.module_path(mod, segs)
                    if target is not None and name:
                        aliases[name] = target
            for m in re.finditer(r"(?<![:\w])(?:crate|super|self)(?:::" + IDENT + r")+", text):
                paths.append(m.group(0))
            for m in re.finditer(r"(?<![:\w])(" + IDENT + r")((?:::" + IDENT + r")+)", text):
                if m.group(1) in aliases:
                    rest = [s for s in m.group(2).split("::") if s]
                    paths.append(("crate",) + aliases[m.group(1)] + tuple(rest))
            for p in paths:
                segs = p if isinstance(p, tuple) else [s for s in p.split("::") if s and s != "*"]
                target = self.resolve(mod, list(segs))
                if target and target != f:
                    graph[f].add(target)
        return graph


def circles(graph):
    """Tarjan's strongly connected components with more than one node."""
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
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main(argv):
    args, within, show = [], [], False
    it = iter(argv)
    for a in it:
        if a == "--within":
            within.append(next(it))
        elif a == "--graph":
            show = True
        elif a in ("-h", "--help"):
            print(__doc__)
            return 0
        else:
            args.append(a)
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    crate = Crate(args[0])
    graph = crate.edges()
    if within:
        dirs = [os.path.join(crate.root, d) + os.sep for d in within]
        keep = {f for f in graph if any(f.startswith(d) or f == d[:-1] + ".rs" for d in dirs)}
        graph = {f: {t for t in ts if t in keep} for f, ts in graph.items() if f in keep}
    if show:
        for f in sorted(graph):
            for t in sorted(graph[f]):
                print(f"{f} -> {t}")
    found = circles(graph)
    for comp in found:
        print(f"circle of {len(comp)} files:")
        for f in comp:
            back = sorted(t for t in graph[f] if t in comp)
            print(f"  {f} -> {', '.join(back)}")
    if not found:
        scope = ", ".join(within) if within else "the crate"
        print(f"no import circles in {scope} ({len(graph)} files)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
