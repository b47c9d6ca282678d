//! The crate's module graph has no import circle: types at the bottom,
//! decisions above them, IO and orchestration on top. Read from the source's
//! `crate::<module>` paths, per top-level module (`src/<module>.rs` or
//! `src/<module>/`), so a new circle fails CI naming the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `directory`.
fn sources(directory: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![directory.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// module → (module it uses → a file that uses it).
type Graph = BTreeMap<String, BTreeMap<String, String>>;

fn module_graph(source: &Path) -> Graph {
    let modules: BTreeSet<String> = sources(source)
        .iter()
        .filter_map(|file| top_module(source, file))
        .collect();
    let mut graph = Graph::new();
    for file in sources(source) {
        let Some(module) = top_module(source, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        for used in crate_paths(&text) {
            if used != module && modules.contains(&used) {
                entry
                    .entry(used)
                    .or_insert_with(|| file.strip_prefix(source).unwrap().display().to_string());
            }
        }
    }
    graph
}

/// `src/pipeline/machine.rs` → `pipeline`; the crate root files are no module.
fn top_module(source: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(source).ok()?;
    let first = relative.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_owned();
    (name != "lib" && name != "main").then_some(name)
}

/// The modules named by `crate::<name>` anywhere in the text (use lines and
/// inline paths alike), comments excluded; `crate::{a, b}` groups included.
fn crate_paths(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(position) = rest.find("crate::") {
            rest = &rest[position + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                for item in group.split(['}', ',']) {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        names.insert(name);
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
    }
    names
}

/// The first circle found, as `a → b → … → a` with the file behind each arrow.
fn find_circle(graph: &Graph) -> Option<String> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|entry| entry == node) {
            let mut circle: Vec<String> = Vec::new();
            let cycle = &path[start..];
            for (index, from) in cycle.iter().enumerate() {
                let to = cycle.get(index + 1).map_or(node, String::as_str);
                circle.push(format!("{from} → {to} ({})", graph[from][to]));
            }
            return Some(circle.join(", "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(BTreeMap::keys) {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_module_graph_has_no_circle() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = module_graph(&source);
    assert!(graph.contains_key("pipeline") && graph.contains_key("types"));
    assert!(
        graph["types"].is_empty(),
        "types is the bottom of the graph; it uses {:?}",
        graph["types"]
    );
    if let Some(circle) = find_circle(&graph) {
        panic!("import circle between modules: {circle}");
    }
}

#[test]
fn the_circle_finder_finds_a_planted_circle() {
    let mut graph = Graph::new();
    graph
        .entry("config".into())
        .or_default()
        .insert("pipeline".into(), "config.rs".into());
    graph
        .entry("pipeline".into())
        .or_default()
        .insert("run_dir".into(), "pipeline/mod.rs".into());
    graph
        .entry("run_dir".into())
        .or_default()
        .insert("config".into(), "run_dir/manifest.rs".into());
    let circle = find_circle(&graph).unwrap();
    assert!(
        circle.contains("run_dir → config (run_dir/manifest.rs)"),
        "{circle}"
    );
    assert_eq!(
        crate_paths(
            "use crate::{config, pipeline::Route};\nlet x = crate::records::Vote; // crate::nope"
        ),
        ["config", "pipeline", "records"].map(String::from).into()
    );
}
