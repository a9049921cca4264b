//! The dependency rule of `src/lib.rs` ("Layout"), checked from the source.
//!
//! Every `crate::…`, `super::…` and child-module path in `src/` (comments
//! and string literals removed) is resolved to the file that defines the
//! module it names. Then:
//! 1. a top-level module imports only modules of lower layers (and leaves
//!    import no other module at all);
//! 2. the authenticators under `auth/` import none of each other;
//! 3. no files form an import cycle, inside a module or across modules;
//! 4. every top-level module has a layer: a new module must be placed.
//!
//! Run alone with `cargo test --test layering`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Layers, top to bottom. A module may import modules of later entries.
const LAYERS: &[&[&str]] = &[
    &["main", "lib"],
    &["app"],
    &["migrate"],
    &["server"],
    &["config"],
    &["route"],
    &["auth"],
    &["services"],
    &["openstack"],
    &["upstream"],
    &["tls"],
    &["oidc"],
    &["voms"],
    &["pki"],
    &["session"],
    &["http"],
];

/// Leaves: below every layer, and independent of each other.
const LEAVES: &[&str] = &[
    "identity", "conn", "metrics", "logging", "problem", "secret", "crypto", "shutdown", "kv",
    "memory",
];

/// Authenticators: siblings that must not know each other.
const AUTHENTICATORS: &[&str] = &["x509", "bearer", "websso"];

type ModPath = Vec<String>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/auth/x509/mod.rs` → `["auth", "x509"]`; `src/lib.rs` → `[]`.
fn module_of(file: &Path) -> ModPath {
    let rel = file.strip_prefix(src_dir()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    if stem == "main" {
        return vec!["main".into()];
    }
    parts
}

/// Source text without comments, string and char literals, so that paths
/// in docs or messages are not taken for imports.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'r'
            && (b[i..].starts_with(b"r\"") || b[i..].starts_with(b"r#"))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // Raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while j < b.len() && b[j] == b'#' {
                hashes += 1;
                j += 1;
            }
            if j < b.len() && b[j] == b'"' {
                let end: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                j += 1;
                while j < b.len() && !b[j..].starts_with(&end) {
                    j += 1;
                }
                i = j + end.len();
                out.push_str("\"\"");
            } else {
                out.push('r');
                i += 1;
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\''
            && i + 2 < b.len()
            && (b[i + 2] == b'\'' || (b[i + 1] == b'\\' && b[i + 3..].contains(&b'\'')))
        {
            // A char literal ('x', '\n', '\''), not a lifetime.
            let mut j = i + 1;
            if b[j] == b'\\' {
                j += 2;
            } else {
                j += 1;
            }
            while j < b.len() && b[j] != b'\'' {
                j += 1;
            }
            i = j + 1;
            out.push_str("' '");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// The code without `#[cfg(test)]` items: a test module's `super` is the
/// module it tests, and test code is not part of the module graph.
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "#[cfg(test)]".len()..];
        // The item ends at its first `;` (a `mod x;` or a `use`) or at the
        // brace that closes its block.
        let semi = after.find(';');
        let brace = after.find('{');
        match (semi, brace) {
            (Some(s), Some(b)) if s < b => rest = &after[s + 1..],
            (_, Some(b)) => {
                let mut depth = 0;
                let mut end = after.len();
                for (i, c) in after[b..].char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + i + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                rest = &after[end..];
            }
            (Some(s), None) => rest = &after[s + 1..],
            (None, None) => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// Every path the code uses: `crate::a::b`, `super::super::c`, `self::d`,
/// and the paths inside `use` groups, each as a list of segments.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    // `use` statements, with their groups expanded.
    for stmt in code.split(';') {
        if let Some(body) = use_body(stmt) {
            expand(&flatten(body), &mut Vec::new(), &mut out);
        }
    }
    // Paths in expressions and types.
    let bytes = code.as_bytes();
    for start in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(pos) = code[from..].find(start) {
            let at = from + pos;
            from = at + start.len();
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b':')
            {
                continue;
            }
            let tail: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            // `crate::a::{b, c}`: a group, which the `use` pass expands.
            if tail.ends_with("::") {
                continue;
            }
            let segs: Vec<String> = tail
                .split("::")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            out.push(segs);
        }
    }
    out
}

/// A `use` body without white space, renames written `path@name`.
fn flatten(body: &str) -> String {
    body.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" as ", "@")
        .replace(' ', "")
}

/// The path part of the last `use` item in a `;`-terminated chunk.
fn use_body(chunk: &str) -> Option<&str> {
    let b = chunk.as_bytes();
    let mut found = None;
    let mut from = 0;
    while let Some(pos) = chunk[from..].find("use") {
        let at = from + pos;
        from = at + 3;
        let before_ok = at == 0 || !(b[at - 1].is_ascii_alphanumeric() || b[at - 1] == b'_');
        let after_ok = b.get(at + 3).is_some_and(|c| c.is_ascii_whitespace());
        if before_ok && after_ok {
            found = Some(at + 3);
        }
    }
    found.map(|i| chunk[i..].trim())
}

/// Expands `a::{b, c::{d, e}}` into `a::b`, `a::c::d`, `a::c::e`.
fn expand(s: &str, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut depth = 0;
    let mut parts = Vec::new();
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c);
            }
            '}' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        if let Some(open) = p.find('{') {
            let head = &p[..open];
            let inner = &p[open + 1..p.len() - 1];
            let n = prefix.len();
            prefix.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            expand(inner, prefix, out);
            prefix.truncate(n);
        } else {
            let path = p.split('@').next().unwrap_or(p);
            let mut full = prefix.clone();
            full.extend(
                path.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
            out.push(full);
        }
    }
}

struct Tree {
    /// Module path → file.
    files: BTreeMap<ModPath, PathBuf>,
    /// Per module: names it re-exports (`pub use a::b::Name`) → that path.
    reexports: BTreeMap<ModPath, BTreeMap<String, Vec<String>>>,
}

/// `pub use` items of a file: visible name → path.
fn reexports(code: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for stmt in code.split(';') {
        let t = stmt.trim_start();
        let Some(i) = t.find("pub use ").or_else(|| t.find("pub(crate) use ")) else {
            continue;
        };
        // Only a `pub use` that starts the chunk's last line group.
        let Some(body) = use_body(&t[i..]) else {
            continue;
        };
        let mut items = Vec::new();
        expand_named(&flatten(body), &mut Vec::new(), &mut items);
        for (name, path) in items {
            if name != "*" && name != "self" {
                out.insert(name, path);
            }
        }
    }
    out
}

/// Like [`expand`], keeping the name each item is visible under.
fn expand_named(s: &str, prefix: &mut Vec<String>, out: &mut Vec<(String, Vec<String>)>) {
    let mut paths = Vec::new();
    expand(s, prefix, &mut paths);
    // Renames: `a::b as c` is expanded as `a::b`; recover `c` from the text.
    let renames: BTreeMap<String, String> = s
        .split([',', '{', '}'])
        .filter_map(|item| item.split_once('@'))
        .map(|(path, name)| {
            let last = path.rsplit("::").next().unwrap_or(path).trim().to_string();
            (last, name.trim().to_string())
        })
        .collect();
    for p in paths {
        let last = p.last().cloned().unwrap_or_default();
        let name = renames.get(&last).cloned().unwrap_or(last);
        out.push((name, p));
    }
}

impl Tree {
    /// The deepest module file a path from `here` names, if it is in this
    /// crate; `None` for other crates and the standard library.
    fn resolve(&self, here: &ModPath, path: &[String]) -> Option<ModPath> {
        self.resolve_from(here, path, 0)
    }

    fn resolve_from(&self, here: &ModPath, path: &[String], depth: usize) -> Option<ModPath> {
        let mut base: ModPath;
        let mut rest = path;
        match path.first().map(String::as_str) {
            Some("crate") => {
                base = vec![];
                rest = &path[1..];
            }
            Some("self") => {
                base = here.clone();
                rest = &path[1..];
            }
            Some("super") => {
                base = here.clone();
                while rest.first().map(String::as_str) == Some("super") {
                    assert!(
                        base.pop().is_some(),
                        "{}: `super` leaves the crate",
                        here.join("::")
                    );
                    rest = &rest[1..];
                }
            }
            Some(first) => {
                // A child module named without a prefix (`use child::X`).
                let mut child = here.clone();
                child.push(first.to_string());
                if !self.files.contains_key(&child) {
                    return None;
                }
                base = here.clone();
            }
            None => return None,
        }
        for (i, seg) in rest.iter().enumerate() {
            let mut next = base.clone();
            next.push(seg.clone());
            if self.files.contains_key(&next) {
                base = next;
                continue;
            }
            // A name the module re-exports: the file that defines it.
            if let Some(target) = self.reexports.get(&base).and_then(|r| r.get(seg))
                && depth < 8
            {
                let mut path = target.clone();
                path.extend(rest[i + 1..].iter().cloned());
                if let Some(t) = self.resolve_from(&base, &path, depth + 1) {
                    return Some(t);
                }
            }
            break;
        }
        Some(base)
    }
}

fn layer_of(top: &str) -> Option<usize> {
    if LEAVES.contains(&top) {
        return Some(LAYERS.len());
    }
    LAYERS.iter().position(|l| l.contains(&top))
}

/// File-level edges: importer → imported, both as module paths.
fn edges() -> (Tree, BTreeMap<ModPath, BTreeSet<ModPath>>) {
    let mut files = Vec::new();
    rs_files(&src_dir(), &mut files);
    let tree = Tree {
        files: files.iter().map(|f| (module_of(f), f.clone())).collect(),
        reexports: files
            .iter()
            .map(|f| {
                let code = code_only(&std::fs::read_to_string(f).unwrap());
                (module_of(f), reexports(&code))
            })
            .collect(),
    };
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, f) in &tree.files {
        let code = without_tests(&code_only(&std::fs::read_to_string(f).unwrap()));
        let e = graph.entry(m.clone()).or_default();
        for p in paths(&code) {
            if let Some(target) = tree.resolve(m, &p) {
                // A module's own tests and its ancestors' files are not
                // imports of a module by itself; `use super::*` in a test
                // module names its own file.
                if &target != m && !target.is_empty() {
                    e.insert(target);
                }
            }
        }
    }
    (tree, graph)
}

fn is_test_module(m: &ModPath) -> bool {
    m.last().is_some_and(|l| l == "tests")
}

#[test]
fn every_top_level_module_has_a_layer() {
    let (tree, _) = edges();
    let tops: BTreeSet<&str> = tree
        .files
        .keys()
        .filter_map(|m| m.first().map(String::as_str))
        .collect();
    let unplaced: Vec<&&str> = tops.iter().filter(|t| layer_of(t).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "give these modules a layer in tests/layering.rs and src/lib.rs: {unplaced:?}"
    );
}

#[test]
fn modules_import_only_lower_layers() {
    let (_, graph) = edges();
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        let Some(top) = from.first() else { continue };
        let Some(lf) = layer_of(top) else { continue };
        for to in tos {
            let other = &to[0];
            if other == top {
                continue;
            }
            let lt = layer_of(other).unwrap_or(usize::MAX);
            let leaf_to_leaf = lf == LAYERS.len();
            if lt <= lf || leaf_to_leaf {
                wrong.push(format!("{} imports {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layering:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn authenticators_do_not_know_each_other_or_the_layers_above() {
    let (_, graph) = edges();
    let mut wrong = Vec::new();
    for (from, tos) in &graph {
        if from.len() < 2 || from[0] != "auth" || !AUTHENTICATORS.contains(&from[1].as_str()) {
            continue;
        }
        for to in tos {
            let sibling = to.len() >= 2
                && to[0] == "auth"
                && to[1] != from[1]
                && AUTHENTICATORS.contains(&to[1].as_str());
            if sibling || ["route", "server", "config", "app"].contains(&to[0].as_str()) {
                wrong.push(format!("{} imports {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_import_cycle_between_files() {
    let (_, graph) = edges();
    // Tarjan's strongly connected components, test modules left out (a
    // `tests.rs` beside its module imports it by design).
    struct State<'a> {
        graph: &'a BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'a ModPath, usize>,
        low: BTreeMap<&'a ModPath, usize>,
        stack: Vec<&'a ModPath>,
        on_stack: BTreeSet<&'a ModPath>,
        next: usize,
        cycles: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a ModPath) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            if is_test_module(w) || !graph.contains_key(w) {
                continue;
            }
            let w = graph.get_key_value(w).unwrap().0;
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                comp.push(w.join("::"));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.cycles.push(comp);
            }
        }
    }
    let mut s = State {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        cycles: Vec::new(),
    };
    for v in graph.keys() {
        if !is_test_module(v) && !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    let cycles: Vec<String> = s.cycles.iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        cycles.is_empty(),
        "files that import each other:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checker_sees_imports() {
    // The parser itself: groups, renames, super chains, and text that only
    // looks like a path.
    let code = code_only(
        "use crate::{a::{b, c as d}, e};\n// use crate::nope;\nlet s = \"crate::nope\";\nlet x = super::super::f::g();\n",
    );
    let p: BTreeSet<String> = paths(&code).into_iter().map(|p| p.join("::")).collect();
    for want in [
        "crate::a::b",
        "crate::a::c",
        "crate::e",
        "super::super::f::g",
    ] {
        assert!(p.contains(want), "{want} in {p:?}");
    }
    assert!(!p.iter().any(|x| x.contains("nope")), "{p:?}");
    // And the real tree is not empty: the server imports the pipeline's
    // dependencies, so a broken resolver cannot pass by seeing nothing.
    let (_, graph) = edges();
    let server = &graph[&vec!["server".to_string()]];
    assert!(server.iter().any(|m| m[0] == "shutdown"), "{server:?}");
}
