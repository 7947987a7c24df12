//! Conventions of the source that `cargo test` checks: a command's usage
//! is written once, in its `Spec` (errors are rendered from it; the
//! README's table shows it as it is); every command is in `soak` or left out
//! of it with a reason, so a new chapter's demos cannot be forgotten there;
//! every chapter has its doc, its demos and its scenario tests.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use crate::layering::paths::{rust_files, src};

fn read(rel: &str) -> String {
    fs::read_to_string(src().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The string literals after each `marker` in `text` (up to the closing quote).
fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            &rest[..rest.find('"').expect("a closing quote")]
        })
        .collect()
}

/// The text of `static NAME ... = &[ ... ];` in `text`.
fn table<'a>(text: &'a str, name: &str) -> &'a str {
    let at = text.find(&format!("static {name}")).unwrap_or_else(|| panic!("no static {name}"));
    let rest = &text[at..];
    &rest[..rest.find("\n];").or_else(|| rest.find("];")).unwrap()]
}

/// Every command's name, from the two tables of `Spec`s.
fn commands() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in ["demos/mod.rs", "shell/commands.rs"] {
        let text = read(file);
        for (at, _) in text.match_indices("Spec {") {
            let name = literals_after(&text[at..], "name: \"")[0];
            names.insert(name.to_string());
        }
    }
    assert!(names.len() > 50, "found only {names:?}");
    names
}

#[test]
fn every_command_is_in_the_soak_or_left_out_with_a_reason() {
    let soak = read("demos/hostile_input/soak/table.rs");
    let foreground = table(&soak, "FOREGROUND: &[Demo]");
    let mut lines: Vec<&str> = Vec::new();
    for marker in ["d(\"", "oops(\"", "alone(\"", "line: \""] {
        lines.extend(literals_after(foreground, marker));
    }
    // Every string literal of the background table (odd pieces between quotes).
    lines.extend(table(&soak, "BACKGROUND: &[&str]").split('"').skip(1).step_by(2));
    let in_soak: BTreeSet<String> = lines
        .iter()
        .flat_map(|l| l.split(';'))
        .filter_map(|c| c.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let left_out: Vec<(String, String)> = table(&soak, "LEFT_OUT: &[(&str, &str)]")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("(\""))
        .map(|l| {
            let (name, rest) = l.split_once("\", \"").expect("(\"name\", \"reason\")");
            (name.to_string(), rest.trim_end_matches("\"),").to_string())
        })
        .collect();
    let commands = commands();
    let mut problems = Vec::new();
    for c in &commands {
        let out = left_out.iter().any(|(n, _)| n == c);
        match (in_soak.contains(c), out) {
            (false, false) => problems.push(format!("{c}: neither in soak nor in LEFT_OUT")),
            (true, true) => problems.push(format!("{c}: both in soak and in LEFT_OUT")),
            _ => {}
        }
    }
    for (name, reason) in &left_out {
        if !commands.contains(name) {
            problems.push(format!("LEFT_OUT names '{name}', which is no command"));
        }
        if reason.trim().is_empty() {
            problems.push(format!("LEFT_OUT gives '{name}' no reason"));
        }
    }
    for c in &in_soak {
        if !commands.contains(c) {
            problems.push(format!("soak runs '{c}', which is no command"));
        }
    }
    assert!(problems.is_empty(), "soak list (demos/hostile_input/soak/table.rs):\n{}", problems.join("\n"));
}
/// A command's usage is written once, in its `Spec`; errors are rendered
/// from it (`ArgError::render`). No message spells a usage of its own.
#[test]
fn usage_is_written_only_in_the_specs() {
    let mut files = Vec::new();
    for dir in ["demos", "shell"] {
        rust_files(&src().join(dir), &mut files);
    }
    let mut hits = Vec::new();
    for f in files {
        for (n, line) in fs::read_to_string(&f).unwrap().lines().enumerate() {
            // A message beginning "NAME: usage: " (a Spec's field is `usage: "`).
            if line.contains(": usage: ") && !line.trim_start().starts_with("//") {
                hits.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(hits.is_empty(), "usage spelled out of its Spec:\n{}", hits.join("\n"));
}

/// The chapter names under `dir` (files or directories, `-` read as `_`),
/// leaving out `skip`.
fn chapters(dir: &Path, ext: &str, skip: &[&str]) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == ext))
        .map(|p| p.file_stem().unwrap().to_string_lossy().replace('-', "_"))
        .filter(|n| !skip.contains(&n.as_str()))
        .collect()
}

/// `docs/<chapter>.md`, `demos/<chapter>` and `tests/scenarios/<chapter>`
/// go together, one to one (the runner's own tests are no kernel chapter).
#[test]
fn every_chapter_has_its_doc_its_demos_and_its_tests() {
    let root = src().join("../..");
    // Chapters about host tools (`./x gdb`): a doc and a test, no kernel demo.
    const HOST_CHAPTERS: &[&str] = &["debugging"];
    let docs = chapters(&root.join("docs"), "md", &[]);
    let demos = chapters(&src().join("demos"), "rs", &["mod"]);
    let tests = chapters(&root.join("tests/scenarios"), "rs", &["main", "common", "runner", "docs"]);
    assert!(docs.len() >= 10, "{docs:?}");
    let kernel_docs: BTreeSet<String> = docs.iter().filter(|d| !HOST_CHAPTERS.contains(&d.as_str())).cloned().collect();
    assert_eq!(kernel_docs, demos, "docs/ and kernel/src/demos/ differ");
    assert_eq!(docs, tests, "docs/ and tests/scenarios/ differ");
}

/// The README's table of shell commands shows each command as its `Spec`
/// does (`name usage`), and names no command that does not exist.
#[test]
fn the_readme_command_table_agrees_with_the_specs() {
    let readme = fs::read_to_string(src().join("../../README.md")).unwrap();
    let table = &readme[readme.find("### Shell commands").expect("the README's command table")..];
    let table = &table[..table.find("\n## ").unwrap_or(table.len())];
    // The first cell of each row: one or more `name usage` forms.
    let shown: BTreeSet<String> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l[1..].split(" | ").next().unwrap().trim().to_string();
            cell.split(", ").map(|f| f.trim_matches('`').replace("\\|", "|")).collect::<Vec<_>>()
        })
        .collect();
    let mut specs = BTreeSet::new();
    for file in ["demos/mod.rs", "shell/commands.rs"] {
        let text = read(file);
        for (at, _) in text.match_indices("Spec {") {
            let name = literals_after(&text[at..], "name: \"")[0];
            let usage = literals_after(&text[at..], "usage: \"")[0];
            specs.insert(format!("{name} {usage}").trim_end().to_string());
        }
    }
    let missing: Vec<&String> = specs.difference(&shown).collect();
    let unknown: Vec<&String> = shown.difference(&specs).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README command table vs the Specs:\n  not in the README: {missing:?}\n  not a command: {unknown:?}"
    );
}
