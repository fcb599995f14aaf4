//! The code's shape, held by `cargo xtask test`'s lint step (the same rules as `../shared/tools/layout_check.py`):
//! no hand-written Rust file over 600 lines, no import cycle among core's modules or xtask's, and no xtask subcommand
//! importing another (they share helpers; `test`, which runs every step, is the one exception).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use regex::Regex;

const LINE_LIMIT: usize = 600;

/// xtask's subcommands (a module or folder each); every other top-level module is a shared helper.
const SUBCOMMANDS: [&str; 8] = ["bench", "fuzz", "report", "build", "size", "doctor", "publish", "cascade"];

/// Fails with every finding listed.
pub fn check(root: &Path) -> Result<()> {
    let mut findings = long_files(root)?;
    let xtask = xtask_graph(&root.join("xtask/src"))?;
    findings.extend(cycles(&xtask, "xtask modules"));
    for (module, uses) in &xtask {
        if SUBCOMMANDS.contains(&module.as_str()) {
            for used in uses.iter().filter(|u| SUBCOMMANDS.contains(&u.as_str())) {
                findings.push(format!(
                    "xtask subcommand {module} imports subcommand {used}: move what both need into a helper"
                ));
            }
        }
    }
    findings.extend(cycles(&core_graph(&root.join("core/src"))?, "core modules"));
    if findings.is_empty() {
        println!("layout: no long files, no import cycles, subcommands import helpers only");
        return Ok(());
    }
    bail!("the code's layout rules are broken:\n{}", findings.join("\n"))
}

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn long_files(root: &Path) -> Result<Vec<String>> {
    let mut findings = Vec::new();
    for dir in ["core/src", "bindings/src", "xtask/src"] {
        for path in rust_files(&root.join(dir))? {
            let lines = fs::read_to_string(&path)?.lines().count();
            if lines > LINE_LIMIT {
                let shown = path.strip_prefix(root).unwrap_or(&path).display();
                findings.push(format!("{shown}: {lines} lines (over {LINE_LIMIT})"));
            }
        }
    }
    Ok(findings)
}

/// Source without its test module and comments (tests and doc examples may reach anywhere).
fn strip(source: &str) -> String {
    let code = source.find("#[cfg(test)]\nmod tests").map_or(source, |at| &source[..at]);
    Regex::new(r"//[^\n]*").expect("valid").replace_all(code, "").into_owned()
}

/// Each top-level xtask module and the other top-level modules it names through `crate::`.
fn xtask_graph(src: &Path) -> Result<Graph> {
    let path_ref = Regex::new(r"crate::([a-z_][a-z0-9_]*)").expect("valid");
    let group = Regex::new(r"use crate::\{([^}]*)\}").expect("valid");
    let mut graph = Graph::new();
    for path in rust_files(src)? {
        let relative = path.strip_prefix(src)?;
        let top = relative.components().next().expect("a file").as_os_str().to_string_lossy();
        let top = top.trim_end_matches(".rs").to_owned();
        if top == "main" || top == "lib" {
            continue;
        }
        let code = strip(&fs::read_to_string(&path)?);
        let mut uses: BTreeSet<String> = path_ref.captures_iter(&code).map(|c| c[1].to_owned()).collect();
        for g in group.captures_iter(&code) {
            uses.extend(g[1].split(',').map(str::trim).filter(|x| !x.is_empty()).map(|x| head(x).to_owned()));
        }
        uses.remove(&top);
        graph.entry(top).or_default().extend(uses);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    Ok(graph.into_iter().map(|(m, uses)| (m, uses.intersection(&modules).cloned().collect())).collect())
}

fn head(path: &str) -> &str {
    path.split("::").next().unwrap_or(path)
}

/// core's modules (a file, or a folder's `mod.rs`) and the sibling or cousin modules each names through `crate::` or
/// `super::`; importing from an ancestor (whose `mod.rs` re-exports) is not an edge.
fn core_graph(src: &Path) -> Result<Graph> {
    let mut files: BTreeMap<Vec<String>, PathBuf> = BTreeMap::new();
    for path in rust_files(src)? {
        let relative = path.strip_prefix(src)?;
        if relative.starts_with("bin") {
            continue;
        }
        let mut module: Vec<String> =
            relative.with_extension("").components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
        if module.last().is_some_and(|m| m == "mod") {
            module.pop();
        }
        if module.is_empty() || module == ["lib"] || module == ["main"] {
            continue;
        }
        files.insert(module, path);
    }
    let path_ref = Regex::new(r"\b(crate|super)((?:::[a-z_][a-z0-9_]*)+)").expect("valid");
    let group = Regex::new(r"use (crate|super)::\{([^}]*)\}").expect("valid");
    let mut graph = Graph::new();
    for (module, path) in &files {
        let code = strip(&fs::read_to_string(path)?);
        let base = |kind: &str| if kind == "crate" { Vec::new() } else { module[..module.len() - 1].to_vec() };
        let mut refs: Vec<Vec<String>> = Vec::new();
        for c in path_ref.captures_iter(&code) {
            let mut r = base(&c[1]);
            r.extend(c[2].trim_matches(':').split("::").map(str::to_owned));
            refs.push(r);
        }
        for c in group.captures_iter(&code) {
            for item in c[2].split(',').map(str::trim).filter(|x| !x.is_empty()) {
                let mut r = base(&c[1]);
                r.extend(item.split("::").map(|s| s.trim().to_owned()));
                refs.push(r);
            }
        }
        let mut deps = BTreeSet::new();
        for r in refs {
            let best = (1..=r.len()).rev().map(|n| &r[..n]).find(|prefix| files.contains_key(*prefix));
            if let Some(best) = best
                && best != module.as_slice()
                && !module.starts_with(best)
            {
                deps.insert(best.join("/"));
            }
        }
        graph.insert(module.join("/"), deps);
    }
    Ok(graph)
}

/// The strongly connected groups of more than one module (Tarjan), each as one finding.
fn cycles(graph: &Graph, what: &str) -> Vec<String> {
    struct Walk<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<&'g str>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w);
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort_unstable();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found.iter().map(|group| format!("{what} import each other: {}", group.join(" <-> "))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &[&str])]) -> Graph {
        edges.iter().map(|(m, uses)| (m.to_string(), uses.iter().map(|u| u.to_string()).collect())).collect()
    }

    #[test]
    fn a_cycle_is_found_and_a_chain_is_not() {
        let chain = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &[])]);
        assert!(cycles(&chain, "m").is_empty());
        let cycle = graph(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        assert_eq!(cycles(&cycle, "m"), ["m import each other: a <-> b <-> c"]);
    }

    #[test]
    fn core_edges_skip_ancestors_and_see_groups() {
        let dir = std::env::temp_dir().join(format!("openautoglm-layout-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("llm")).unwrap();
        fs::write(dir.join("lib.rs"), "mod llm; mod error;").unwrap();
        fs::write(dir.join("error.rs"), "use crate::llm::Chat; // a comment naming crate::nothing\n").unwrap();
        fs::write(dir.join("llm/mod.rs"), "mod chat; mod model;").unwrap();
        fs::write(dir.join("llm/chat.rs"), "use super::{model::Model, Thing};\nuse crate::error::Error;").unwrap();
        fs::write(dir.join("llm/model.rs"), "use super::chat::Chat;").unwrap();
        let g = core_graph(&dir).unwrap();
        assert_eq!(g["error"], BTreeSet::from(["llm".to_owned()]));
        assert_eq!(g["llm/chat"], BTreeSet::from(["llm/model".to_owned(), "error".to_owned()]));
        let found = cycles(&g, "core modules");
        assert!(found.contains(&"core modules import each other: llm/chat <-> llm/model".to_owned()), "{found:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
