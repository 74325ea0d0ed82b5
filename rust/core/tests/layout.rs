//! The crate's layout keeps the promises of docs/ARCHITECTURE.md ("Library
//! storage"): SQL only in the stores (rusqlite in `src/library/sqlite/`, the
//! postgres client in `src/library/postgres/`), and no cycle of
//! module references between the library's modules, file by file and
//! between its top-level modules (a folder counted as one), nor between the
//! crate's own top-level modules.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text without its comments (line comments, doc comments and block
/// comments), so that prose naming a module or rusqlite is not counted.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            rest = after.find('\n').map_or("", |i| &after[i..]);
        } else if let Some(after) = rest.strip_prefix("/*") {
            rest = after.find("*/").map_or("", |i| &after[i + 2..]);
        } else {
            let c = rest.chars().next().expect("non-empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The module path of a file under `src/` (`library/sqlite/mod.rs` is
/// `["library", "sqlite"]`).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// Every path of the form `a::b::c` in `code`, with the groups of `use`
/// declarations (`use a::{b, c::d}`) expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let mut base = prefix.to_vec();
            base.extend(segments(&tree[..open]));
            let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
            let (mut depth, mut start) = (0, 0);
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&base, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&base, &inner[start..], out);
        } else {
            let mut path = prefix.to_vec();
            path.extend(segments(tree.split(" as ").next().unwrap_or(tree)));
            out.push(path);
        }
    }
    fn segments(text: &str) -> Vec<String> {
        text.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }
    let mut out = Vec::new();
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !ident(c));
        let end = rest[at..].find(';').map_or(rest.len(), |e| at + e);
        if before_ok {
            expand(&[], &rest[at + 4..end], &mut out);
        }
        rest = &rest[(at + 4).min(end)..];
    }
    // Paths in expressions and types: runs of `ident::ident...`.
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if ident(chars[i]) && (i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut path = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                path.push(chars[start..j].iter().collect::<String>());
                if j + 2 < chars.len()
                    && chars[j] == ':'
                    && chars[j + 1] == ':'
                    && ident(chars[j + 2])
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if path.len() > 1 {
                out.push(path);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

/// The library module a path in `module` refers to (the longest prefix
/// naming a module file), if any.
fn target(
    module: &[String],
    path: &[String],
    modules: &BTreeSet<Vec<String>>,
    within: Option<&str>,
) -> Option<Vec<String>> {
    let mut abs: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module.to_vec(),
        child => {
            let mut m = module.to_vec();
            m.push(child.to_string());
            if !modules.contains(&m) {
                return None;
            }
            module.to_vec()
        }
    };
    let mut rest = path;
    if rest[0] == "crate" || rest[0] == "self" {
        rest = &rest[1..];
    }
    while rest.first().is_some_and(|s| s == "super") {
        abs.pop();
        rest = &rest[1..];
    }
    abs.extend(rest.iter().cloned());
    (1..=abs.len())
        .rev()
        .map(|n| abs[..n].to_vec())
        .find(|m| modules.contains(m))
        .filter(|m| within.is_none_or(|top| m.first().is_some_and(|s| s == top)))
}

/// A cycle in `graph`, if there is one.
fn cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match state.get(node) {
            Some(2) => return None,
            Some(1) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                return Some(stack[from..].to_vec());
            }
            _ => {}
        }
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, state, stack) {
                return Some(found);
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut state, &mut Vec::new()))
}

#[test]
fn sql_only_in_the_sqlite_store() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let store = src().join("library").join("sqlite");
    let outside: Vec<_> = files
        .iter()
        .filter(|f| !f.starts_with(&store))
        .filter(|f| code(&fs::read_to_string(f).expect("read")).contains("rusqlite"))
        .collect();
    assert!(
        outside.is_empty(),
        "rusqlite outside library/sqlite/: {outside:?}"
    );
}

#[test]
fn the_postgres_client_only_in_the_postgres_store() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let store = src().join("library").join("postgres");
    // A path into the client crate: `postgres::` not itself the end of a
    // longer path (`self::postgres::` names the store's module).
    let uses_client = |code: &str| {
        code.match_indices("postgres::")
            .any(|(at, _)| !code[..at].ends_with(':'))
    };
    let outside: Vec<_> = files
        .iter()
        .filter(|f| !f.starts_with(&store))
        .filter(|f| uses_client(&code(&fs::read_to_string(f).expect("read"))))
        .collect();
    assert!(
        outside.is_empty(),
        "the postgres client outside library/postgres/: {outside:?}"
    );
}

#[test]
fn no_reference_cycles_between_library_modules() {
    let mut files = Vec::new();
    rust_files(&src().join("library"), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut by_file: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut by_top: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        let text = code(&fs::read_to_string(file).expect("read"));
        // Unit tests may reach anywhere: only the module's own code counts.
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for path in paths(text) {
            let Some(to) = target(&module, &path, &modules, Some("library")) else {
                continue;
            };
            if to == module {
                continue;
            }
            by_file
                .entry(module.clone())
                .or_default()
                .insert(to.clone());
            let top = |m: &[String]| m[..m.len().min(2)].to_vec();
            if top(&module) != top(&to) {
                by_top.entry(top(&module)).or_default().insert(top(&to));
            }
        }
    }
    assert!(
        by_file.values().map(BTreeSet::len).sum::<usize>() > 20,
        "the references were not found: {by_file:?}"
    );
    assert_eq!(cycle(&by_file), None, "a cycle between files");
    assert_eq!(cycle(&by_top), None, "a cycle between top-level modules");
}

#[test]
fn no_reference_cycles_between_the_crates_top_modules() {
    // The crate's own top-level modules (walk, content, dupes, library,
    // error, ...), a folder counted as one: each layer uses only those
    // below it.
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let module = module_of(file);
        if module.is_empty() {
            continue; // lib.rs declares them all
        }
        let text = code(&fs::read_to_string(file).expect("read"));
        let text = text.split("#[cfg(test)]").next().unwrap_or("");
        for path in paths(text) {
            let Some(to) = target(&module, &path, &modules, None) else {
                continue;
            };
            if !to.is_empty() && to[0] != module[0] {
                graph
                    .entry(module[..1].to_vec())
                    .or_default()
                    .insert(to[..1].to_vec());
            }
        }
    }
    assert!(graph.len() > 3, "the references were not found: {graph:?}");
    assert_eq!(
        cycle(&graph),
        None,
        "a cycle between the crate's modules: {graph:?}"
    );
}
