//! The workspace's structure, checked from its sources and manifests: the crates depend on each
//! other one way (cli → train → {model, data, metrics}), the command-line crate holds only
//! `main.rs` and its commands, within each crate the modules depend on
//! each other one way (no cycles, neither between files nor between top-level modules), the
//! run configuration's schema depends on nothing else in its crate but the generic TOML reader,
//! the data crate's `dataset` reads pixels through `decode` and not back, and the metrics crate
//! builds without libtorch.
//! `cargo test -p fgstp-cli --test integration -- structure:: --nocapture` prints
//! the module graph of every crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A module path inside one crate tree, e.g. `["train", "loss"]`; the root is `[]`.
type ModPath = Vec<String>;

/// One crate tree (a library or a binary): its module files and their references.
struct Tree {
    name: String,
    /// Module path → source text without comments and literals.
    modules: BTreeMap<ModPath, String>,
}

impl Tree {
    /// Every `.rs` file reachable from `root_file` through `mod` declarations.
    fn read(name: &str, root_file: &Path) -> Tree {
        let mut modules = BTreeMap::new();
        let mut pending = vec![(ModPath::new(), root_file.to_path_buf())];
        while let Some((path, file)) = pending.pop() {
            let code = without_inline_modules(&strip(
                &std::fs::read_to_string(&file).unwrap_or_else(|e| {
                    panic!("cannot read {}: {e}", file.display());
                }),
            ));
            // Children of `a.rs` / `a/mod.rs` / `lib.rs` live in `a/` / `a/` / the same folder.
            let dir = match file.file_name().and_then(|n| n.to_str()) {
                Some("lib.rs" | "main.rs" | "mod.rs") => file.parent().unwrap().to_path_buf(),
                _ => file.with_extension(""),
            };
            for child in mod_declarations(&code) {
                let as_file = dir.join(format!("{child}.rs"));
                let as_dir = dir.join(&child).join("mod.rs");
                let child_file = if as_file.exists() { as_file } else { as_dir };
                let mut child_path = path.clone();
                child_path.push(child);
                pending.push((child_path, child_file));
            }
            modules.insert(path, code);
        }
        Tree {
            name: name.to_string(),
            modules,
        }
    }

    /// Dependencies between module files. The root (`lib.rs`/`main.rs`) is a facade: its
    /// `mod` and `pub use` lines are not dependencies, and a reference to a name it re-exports
    /// is a reference to the module that defines it.
    fn edges(&self) -> BTreeSet<(ModPath, ModPath)> {
        let reexports = reexports(&self.modules[&ModPath::new()]);
        let mut edges = BTreeSet::new();
        for (from, code) in &self.modules {
            if from.is_empty() {
                continue;
            }
            for path in referenced_paths(code) {
                let absolute = match path.first().map(String::as_str) {
                    Some("crate") => path[1..].to_vec(),
                    Some("super") => {
                        let mut p = from[..from.len() - 1].to_vec();
                        p.extend_from_slice(&path[1..]);
                        p
                    }
                    Some("self") => {
                        let mut p = from.clone();
                        p.extend_from_slice(&path[1..]);
                        p
                    }
                    // A path starting with a child module's name (2018+ relative paths).
                    Some(first) => {
                        let mut child = from.clone();
                        child.push(first.to_string());
                        if !self.modules.contains_key(&child) {
                            continue;
                        }
                        let mut p = from.clone();
                        p.extend_from_slice(&path);
                        p
                    }
                    None => continue,
                };
                let mut target = self.longest_module(&absolute);
                if target.is_empty() {
                    // `crate::Name`: the module that defines what the root re-exports.
                    match absolute.first().and_then(|name| reexports.get(name)) {
                        Some(module) => target = module.clone(),
                        None => continue, // defined in the root itself (an error enum, …)
                    }
                }
                if &target != from {
                    edges.insert((from.clone(), target));
                }
            }
        }
        edges
    }

    fn longest_module(&self, path: &[String]) -> ModPath {
        (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| self.modules.contains_key(p))
            .unwrap_or_default()
    }
}

fn show(path: &ModPath) -> String {
    if path.is_empty() {
        "(root)".into()
    } else {
        path.join("::")
    }
}

/// Source text with comments, string and character literals blanked out (newlines kept), so
/// that only code is searched for paths.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && (next == Some('"') || (next == Some('#') && raw_string_start(&chars, i + 1)))
            && !chars[..i]
                .last()
                .is_some_and(|p| p.is_alphanumeric() || *p == '_')
        {
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            i += 2 + hashes;
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            while i < chars.len() && !chars[i..].starts_with(&closing) {
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += closing.len();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&q| q == '\'')
                    .map(|p| i + 2 + p)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The code without inline `mod name { … }` blocks (unit tests): they are not part of the
/// structure, and their `super` is the file's module itself.
fn without_inline_modules(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = find_inline_mod(rest) {
        out.push_str(&rest[..at]);
        let open = at + rest[at..].find('{').expect("found with a brace");
        let mut depth = 0;
        let mut end = rest.len();
        for (k, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The byte offset of the next `mod name {`.
fn find_inline_mod(code: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(k) = code[from..].find("mod ") {
        let at = from + k;
        let before_ok = at == 0 || !code[..at].ends_with(is_ident);
        let after = code[at + 4..].trim_start();
        let name_len = after.chars().take_while(|&c| is_ident(c)).count();
        if before_ok && name_len > 0 && after[name_len..].trim_start().starts_with('{') {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

fn raw_string_start(chars: &[char], from: usize) -> bool {
    let hashes = chars[from..].iter().take_while(|&&h| h == '#').count();
    chars.get(from + hashes) == Some(&'"')
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `mod name;` declarations (with any visibility and attributes before them).
fn mod_declarations(code: &str) -> Vec<String> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    for w in tokens.windows(3) {
        if w[0] == "mod" && w[2] == ";" && w[1].chars().all(is_ident) {
            out.push(w[1].clone());
        }
    }
    out
}

/// Identifiers, `::`, and single punctuation characters.
fn tokens(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_ident(c) {
            let start = i;
            while i < chars.len() && is_ident(chars[i]) {
                i += 1;
            }
            out.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(c.to_string());
            }
            i += 1;
        }
    }
    out
}

/// Every path written in the code (`a::b::c`, with `use` groups `a::{b, c::d}` expanded), as
/// segments. Paths after `::` (inside a longer path) are not started anew.
fn referenced_paths(code: &str) -> Vec<Vec<String>> {
    let tokens = tokens(code);
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let starts_path = tokens[i].chars().all(is_ident)
            && tokens.get(i + 1).map(String::as_str) == Some("::")
            && (i == 0 || tokens[i - 1] != "::");
        if starts_path {
            i = path_at(&tokens, i, Vec::new(), &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// Reads the path starting at `tokens[i]` (after `prefix`), pushing each complete path to
/// `out`; returns the index after it.
fn path_at(
    tokens: &[String],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    let mut path = prefix;
    loop {
        let Some(token) = tokens.get(i) else {
            out.push(path);
            return i;
        };
        if token == "{" {
            // A group: each comma-separated item continues the path.
            i += 1;
            while i < tokens.len() && tokens[i] != "}" {
                if tokens[i] == "," {
                    i += 1;
                    continue;
                }
                i = path_at(tokens, i, path.clone(), out);
                // Skip `as name` and anything else up to the item's end.
                while i < tokens.len() && tokens[i] != "," && tokens[i] != "}" {
                    i += 1;
                }
            }
            return i + 1;
        }
        if token.chars().all(is_ident) {
            path.push(token.clone());
            i += 1;
            if tokens.get(i).map(String::as_str) == Some("::") {
                i += 1;
                continue;
            }
        }
        out.push(path);
        return i;
    }
}

/// Names the root re-exports: `pub use module::{A, B};` → A, B → `[module]`.
fn reexports(root: &str) -> BTreeMap<String, ModPath> {
    let tokens = tokens(root);
    let mut out = BTreeMap::new();
    for (i, w) in tokens.windows(2).enumerate() {
        if w[0] == "pub" && w[1] == "use" {
            let mut paths = Vec::new();
            path_at(&tokens, i + 2, Vec::new(), &mut paths);
            for path in paths {
                if let Some((name, module)) = path.split_last() {
                    let module: Vec<String> = module
                        .iter()
                        .filter(|s| *s != "crate" && *s != "self")
                        .cloned()
                        .collect();
                    if !module.is_empty() {
                        out.insert(name.clone(), module);
                    }
                }
            }
        }
    }
    out
}

/// A cycle in the graph, if any (as a list of nodes).
fn find_cycle<N: Ord + Clone>(edges: &BTreeSet<(N, N)>) -> Option<Vec<N>> {
    let mut next: BTreeMap<&N, Vec<&N>> = BTreeMap::new();
    for (a, b) in edges {
        next.entry(a).or_default().push(b);
    }
    // 0 = unvisited, 1 = on the stack, 2 = done.
    let mut state: BTreeMap<&N, u8> = BTreeMap::new();
    fn visit<'a, N: Ord>(
        node: &'a N,
        next: &BTreeMap<&'a N, Vec<&'a N>>,
        state: &mut BTreeMap<&'a N, u8>,
        stack: &mut Vec<&'a N>,
    ) -> Option<Vec<&'a N>> {
        state.insert(node, 1);
        stack.push(node);
        for &m in next.get(node).map(Vec::as_slice).unwrap_or(&[]) {
            match state.get(m).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|&s| s == m).unwrap();
                    return Some(stack[start..].to_vec());
                }
                0 => {
                    if let Some(cycle) = visit(m, next, state, stack) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node, 2);
        None
    }
    let nodes: Vec<&N> = next.keys().copied().collect();
    for node in nodes {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, &next, &mut state, &mut Vec::new()) {
                return Some(cycle.into_iter().cloned().collect());
            }
        }
    }
    None
}

fn trees() -> Vec<Tree> {
    let root = workspace().join("crates");
    vec![
        Tree::read("fgstp-metrics", &root.join("metrics/src/lib.rs")),
        Tree::read("fgstp-data", &root.join("data/src/lib.rs")),
        Tree::read("fgstp-model", &root.join("model/src/lib.rs")),
        Tree::read("fgstp-train", &root.join("train/src/lib.rs")),
        Tree::read("fgstp (binary)", &root.join("cli/src/main.rs")),
    ]
}

fn tree<'a>(trees: &'a [Tree], name: &str) -> &'a Tree {
    trees.iter().find(|t| t.name.starts_with(name)).unwrap()
}

#[test]
fn module_graphs_have_no_cycles_between_files_or_top_level_modules() {
    for tree in trees() {
        let edges = tree.edges();
        println!("{}: {} modules", tree.name, tree.modules.len());
        let mut by_source: BTreeMap<&ModPath, Vec<String>> = BTreeMap::new();
        for (a, b) in &edges {
            by_source.entry(a).or_default().push(show(b));
        }
        for (a, targets) in by_source {
            println!("  {} -> {}", show(a), targets.join(", "));
        }
        if let Some(cycle) = find_cycle(&edges) {
            let names: Vec<String> = cycle.iter().map(show).collect();
            panic!(
                "{}: modules import each other in a circle: {}",
                tree.name,
                names.join(" -> ")
            );
        }
        let top: BTreeSet<(String, String)> = edges
            .iter()
            .map(|(a, b)| (a[0].clone(), b.first().cloned().unwrap_or_default()))
            .filter(|(a, b)| a != b && !b.is_empty())
            .collect();
        if let Some(cycle) = find_cycle(&top) {
            panic!(
                "{}: top-level modules import each other in a circle: {}",
                tree.name,
                cycle.join(" -> ")
            );
        }
    }
}

#[test]
fn the_run_configuration_depends_only_on_the_generic_toml_reader() {
    let trees = trees();
    let train = tree(&trees, "fgstp-train");
    let run_config = vec!["run_config".to_string()];
    // Its own parts (run_config::watch: the `[watch]` table) are the schema too.
    let targets: Vec<String> = train
        .edges()
        .iter()
        .filter(|(a, b)| *a == run_config && b.first() != run_config.first())
        .map(|(_, b)| show(b))
        .collect();
    assert_eq!(targets, ["overrides"], "run_config imports {targets:?}");
}

#[test]
fn dataset_reads_pixels_through_decode_not_back() {
    let trees = trees();
    let edges = tree(&trees, "fgstp-data").edges();
    let (dataset, decode) = (vec!["dataset".to_string()], vec!["decode".to_string()]);
    assert!(edges.contains(&(dataset.clone(), decode.clone())));
    assert!(!edges.contains(&(decode, dataset)));
}

/// The workspace's crates (package name → the `fgstp-*` crates it depends on, dev-dependencies
/// included), read from their manifests.
fn crate_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for dir in ["metrics", "data", "model", "train", "cli"] {
        let manifest: toml::Table =
            std::fs::read_to_string(workspace().join("crates").join(dir).join("Cargo.toml"))
                .unwrap()
                .parse()
                .unwrap();
        let name = manifest["package"]["name"].as_str().unwrap().to_string();
        let mut deps = BTreeSet::new();
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            if let Some(table) = manifest.get(section).and_then(|d| d.as_table()) {
                deps.extend(table.keys().filter(|k| k.starts_with("fgstp-")).cloned());
            }
        }
        out.insert(name, deps);
    }
    out
}

/// One way only: cli → train → {model, data, metrics}; the model and the data know nothing of
/// each other, nor of the training loop; the metrics know none of the others.
#[test]
fn crates_depend_on_each_other_one_way() {
    let deps = crate_dependencies();
    let allowed: BTreeMap<&str, &[&str]> = [
        ("fgstp-metrics", &[][..]),
        ("fgstp-model", &[][..]),
        ("fgstp-data", &[][..]),
        (
            "fgstp-train",
            &["fgstp-model", "fgstp-data", "fgstp-metrics"][..],
        ),
        (
            "fgstp-cli",
            &["fgstp-train", "fgstp-model", "fgstp-data", "fgstp-metrics"][..],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        deps.keys().map(String::as_str).collect::<Vec<_>>(),
        allowed.keys().copied().collect::<Vec<_>>(),
        "the workspace's crates"
    );
    for (name, uses) in &deps {
        for dep in uses {
            assert!(
                allowed[name.as_str()].contains(&dep.as_str()),
                "{name} depends on {dep}: crates depend one way, cli -> train -> {{model, data, \
                 metrics}}"
            );
        }
    }
}

/// The command-line crate is thin: `main.rs` and one adapter per command in `commands/`.
#[test]
fn the_command_line_crate_holds_only_main_and_commands() {
    let src = workspace().join("crates/cli/src");
    let mut outside = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name != "main.rs" && name != "commands" {
            outside.push(name);
        }
    }
    let lines: usize = outside
        .iter()
        .map(|name| std::fs::read_to_string(src.join(name)).map_or(0, |text| text.lines().count()))
        .sum();
    assert!(
        lines <= 300,
        "crates/cli/src holds {lines} lines outside main.rs and commands/ ({outside:?}): library \
         code belongs in crates/train"
    );
}

/// Adding a model kind touches its own files, a registry line and few others: the source files
/// (tests and examples aside) naming ZoomNeXt outside its model folder and its recipe are at
/// most five — the kind enum, the model dispatch, the recipe registry and the two checkpoint
/// layout files.
#[test]
fn a_model_kind_lives_in_its_own_files() {
    let own = ["model/src/models/zoomnext", "train/src/recipes/zoomnext"];
    let mut outside = Vec::new();
    let mut pending = vec![workspace().join("crates")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path
                .strip_prefix(workspace().join("crates"))
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if path.is_dir() {
                if !["tests", "examples", "target"]
                    .iter()
                    .any(|d| path.ends_with(d))
                {
                    pending.push(path);
                }
            } else if rel.ends_with(".rs") && !own.iter().any(|o| rel.starts_with(o)) {
                let text = std::fs::read_to_string(&path).unwrap();
                if text.contains("zoomnext") || text.contains("ZoomNext") {
                    outside.push(rel);
                }
            }
        }
    }
    outside.sort();
    assert!(
        outside.len() <= 5,
        "{} source files outside ZoomNeXt's own name it: {outside:?}",
        outside.len()
    );
}

#[test]
fn the_metrics_crate_builds_without_libtorch() {
    let manifest: toml::Table =
        std::fs::read_to_string(workspace().join("crates/metrics/Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
    for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
        if let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) {
            for name in deps.keys() {
                assert!(
                    !["tch", "torch-sys", "fgstp-model", "fgstp-data"].contains(&name.as_str()),
                    "crates/metrics [{section}] has {name}"
                );
            }
        }
    }
}

/// The checker itself: a cycle is found, comments and strings are not code, groups expand.
#[test]
fn the_checker_sees_cycles_groups_and_ignores_comments() {
    let edges: BTreeSet<(u8, u8)> = [(1, 2), (2, 3), (3, 1), (3, 4)].into_iter().collect();
    assert_eq!(find_cycle(&edges).map(|c| c.len()), Some(3));
    let acyclic: BTreeSet<(u8, u8)> = [(1, 2), (2, 3), (1, 3)].into_iter().collect();
    assert_eq!(find_cycle(&acyclic), None);

    let code = without_inline_modules(&strip(
        "use crate::{a, b::{c, d as e}}; // crate::x::y\nlet s = \"crate::z\"; let c = '\"'; fn f<'a>() {}\n/* crate::w */ super::v::W;\nmod tests { use super::*; fn g() { crate::t::T; } }",
    ));
    let paths: Vec<String> = referenced_paths(&code)
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    assert_eq!(
        paths,
        ["crate::a", "crate::b::c", "crate::b::d", "super::v::W"]
    );
}
