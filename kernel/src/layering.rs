//! The arrows point one way: demos and the shell use the mechanisms, and no
//! mechanism names them (a mechanism that must call out does it through a
//! hook the caller registered). Checked here, on the source, by `cargo test`.

use std::fs;
use std::path::{Path, PathBuf};

/// Mechanism directories and files, relative to `kernel/src`.
const MECHANISMS: &[&str] = &[
    "arch",
    "stacks",
    "mm",
    "sched",
    "user",
    "debug",
    "drivers",
    "softirq.rs",
    "smp.rs",
    "sync.rs",
    "time.rs",
    "console.rs",
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// (file:line, text) of every line under `roots` that contains `needle`.
fn lines_naming(roots: &[&str], needle: &str) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for root in roots {
        rust_files(&src.join(root), &mut files);
    }
    assert!(!files.is_empty(), "no sources under {roots:?}");
    let mut hits = Vec::new();
    for f in files {
        for (n, line) in fs::read_to_string(&f).unwrap().lines().enumerate() {
            if line.contains(needle) {
                hits.push(format!("{}:{}: {}", f.strip_prefix(&src).unwrap().display(), n + 1, line.trim()));
            }
        }
    }
    hits
}

#[test]
fn no_mechanism_names_the_shell_or_a_demo() {
    for needle in ["shell::", "demos::"] {
        let hits = lines_naming(MECHANISMS, needle);
        assert!(hits.is_empty(), "mechanisms must not name `{needle}` (register a hook instead):\n{}", hits.join("\n"));
    }
}

#[test]
fn stacks_do_not_reach_into_boot() {
    let hits = lines_naming(&["stacks"], "boot::");
    assert!(hits.is_empty(), "stacks/ must not name boot (boot hands facts down):\n{}", hits.join("\n"));
}

#[test]
fn the_check_sees_a_planted_name() {
    // The scanner itself works: the shell does name the demos.
    assert!(!lines_naming(&["shell"], "demos::").is_empty());
}
