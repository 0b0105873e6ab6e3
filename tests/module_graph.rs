//! The library's module graph has no import circle and follows the data flow: every
//! `crate::…` path in a source file is an edge to the module (file) it names; the graph of
//! files must be acyclic, and nothing below `jobs` (data, features, projection, retrieval,
//! outputs, …) may use a job. Reads src/ only.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// `src/retrieval/score.rs` → `retrieval::score`, `src/jobs/mod.rs` → `jobs`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The library's modules and the modules each one names.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    // MODULE_GRAPH_SRC: another tree's src/ (to check this test against an older checkout).
    let src = std::env::var_os("MODULE_GRAPH_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // The binary's own modules (main.rs, cli.rs, show.rs) are not part of the library.
    files.retain(|f| {
        !["main.rs", "cli.rs", "show.rs", "lib.rs"]
            .contains(&f.file_name().unwrap().to_str().unwrap())
    });
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut g = BTreeMap::new();
    for f in &files {
        let me = module_of(&src, f);
        // Code only: a doc link is not an import.
        let text: String = std::fs::read_to_string(f)
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut deps = BTreeSet::new();
        // `crate::a::b::c` and `use crate::a::{b, c}` (the braces name items or submodules).
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
            // The longest prefix that is a module file.
            let mut target = None;
            for n in (1..=segs.len()).rev() {
                let m = segs[..n].join("::");
                if modules.contains(&m) {
                    target = Some(m);
                    break;
                }
            }
            if let Some(t) = target {
                // A module may name its own submodules and items; only edges to others count.
                if t != me && !t.starts_with(&format!("{me}::")) {
                    deps.insert(t);
                }
            }
        }
        // `super::x` from a/b.rs is a::x.
        if let Some((parent, _)) = me.rsplit_once("::") {
            for (i, _) in text.match_indices("super::") {
                let name: String = text[i + "super::".len()..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                let m = format!("{parent}::{name}");
                if modules.contains(&m) && m != me {
                    deps.insert(m);
                }
            }
        }
        g.insert(me, deps);
    }
    g
}

#[test]
fn no_import_circle_and_nothing_below_jobs_uses_a_job() {
    let g = graph();
    if std::env::var_os("MODULE_GRAPH_SRC").is_none() {
        assert!(
            g.contains_key("retrieval::scorer") && g.contains_key("jobs::rank"),
            "{g:?}"
        );
    }
    // Depth-first search for a cycle, reporting it.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) {
        match state.get(m) {
            Some(2) => return,
            Some(1) => {
                let start = stack.iter().position(|s| s == m).unwrap();
                panic!("import circle: {} → {m}", stack[start..].join(" → "));
            }
            _ => {}
        }
        state.insert(m.to_string(), 1);
        stack.push(m.to_string());
        for d in g.get(m).into_iter().flatten() {
            visit(d, g, state, stack);
        }
        stack.pop();
        state.insert(m.to_string(), 2);
    }
    let mut state = BTreeMap::new();
    for m in g.keys() {
        visit(m, &g, &mut state, &mut Vec::new());
    }
    for (m, deps) in &g {
        if m.starts_with("jobs") || m == "serve" {
            continue;
        }
        for d in deps {
            assert!(!d.starts_with("jobs"), "{m} uses the job {d}");
        }
    }
}
