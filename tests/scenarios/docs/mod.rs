//! The docs test: every console block in README.md and docs/*.md that shows
//! `tristack> CMD` or `$ ./x ...` with output is run, and its output
//! compared line by line with what is shown (`[..]` and `...` for what
//! varies; `matching.rs`). A shown output that changes fails here.
//!
//! Lines that vary in whether they appear at all are not compared (`compared`).
//!
//! `TRISTACK_BLESS_DOCS=1 cargo test -p tristack-tests --test scenarios docs::`
//! rewrites the blocks that differ to what the boot printed (figures that
//! differ, and kernel text addresses, become `[..]`); `=all` rewrites every
//! block. Read the diff before committing it.

mod blocks;
mod matching;

use crate::common::*;
use blocks::{Session, Step};

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A step whose output did not match: where, and what was printed.
struct Mismatch {
    step: Step,
    actual: Vec<String>,
}

/// Run every block of `file` (relative to the repo), check, and bless if asked.
/// A file whose output differs is run once more and fails only if it differs
/// again: a changed output differs every time, while the interleaving of two
/// CPUs' lines or a count that moves with the host's load can differ once.
fn check_file(file: &str) {
    let path = repo().join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    let blocks = blocks::parse(&text);
    let bless_mode = std::env::var_os("TRISTACK_BLESS_DOCS").is_some();
    let (mut mismatches, not_run) = run_blocks(file, &blocks);
    if !mismatches.is_empty() && !bless_mode {
        eprintln!("docs: {file}: {} outputs differ; running it once more", mismatches.len());
        mismatches = run_blocks(file, &blocks).0;
    }
    eprintln!("docs: {file}: {} blocks run, {} not run: {not_run:?}", blocks.len() - not_run.len(), not_run.len());
    if mismatches.is_empty() {
        return;
    }
    if bless_mode {
        bless(&path, &text, &mismatches);
        eprintln!("docs: {file}: blessed {} outputs", mismatches.len());
        return;
    }
    let report: Vec<String> = mismatches
        .iter()
        .map(|m| {
            format!(
                "--- {file}:{} `{}`: shown\n{}\n--- printed\n{}",
                m.step.lines.start + 1,
                m.step.command,
                m.step.expected.join("\n"),
                m.actual.join("\n")
            )
        })
        .collect();
    panic!(
        "{} shown outputs differ from a real run (TRISTACK_BLESS_DOCS=1 rewrites them):\n{}",
        mismatches.len(),
        report.join("\n")
    );
}

/// Lines that come and go between runs of the same commands, so never
/// compared: `... used greatest stack depth: N bytes left` is printed only
/// when a thread sets a new record, which depends on every thread before it.
fn compared(line: &str) -> bool {
    !line.contains(" used greatest stack depth: ")
}

/// Every block of a file run (prompt blocks grouped into boots); the
/// mismatches, and the blocks not run with their reasons.
fn run_blocks(file: &str, blocks: &[blocks::Block]) -> (Vec<Mismatch>, Vec<String>) {
    let mut mismatches = Vec::new();
    let mut not_run = Vec::new();
    let mut prompt_groups: Vec<(Vec<String>, Option<Step>, Vec<Step>)> = Vec::new();
    for b in blocks {
        match &b.session {
            Err(why) => {
                assert!(!why.is_empty(), "{file}:{}: `no-run:` needs a reason", b.at);
                not_run.push(format!("line {}: {why}", b.at));
            }
            Ok(Session::X(step)) => mismatches.extend(run_x(step)),
            Ok(Session::Prompt { options, fresh, boot, steps }) => {
                match prompt_groups.iter_mut().rev().find(|g| g.0 == *options && boot.is_none() && !fresh) {
                    Some(g) => g.2.extend(steps.iter().cloned()),
                    None => prompt_groups.push((options.clone(), boot.clone(), steps.clone())),
                }
            }
        }
    }
    for (options, boot, steps) in prompt_groups {
        mismatches.extend(run_prompt(&options, boot, steps));
    }
    (mismatches, not_run)
}

fn check(step: Step, actual: Vec<String>) -> Option<Mismatch> {
    let actual: Vec<String> = actual.into_iter().filter(|l| compared(l)).collect();
    let refs: Vec<&str> = actual.iter().map(String::as_str).collect();
    // TRISTACK_BLESS_DOCS=all rewrites every block (after a rule for what varies changed).
    let all = std::env::var("TRISTACK_BLESS_DOCS").as_deref() == Ok("all");
    (all || !matching::lines_match(&step.expected, &refs)).then_some(Mismatch { step, actual })
}

/// The prompt's steps typed into as few boots as it takes (a step that ends
/// the boot, a panic say, makes the rest start again in a new one).
fn run_prompt(options: &[String], mut boot: Option<Step>, mut steps: Vec<Step>) -> Vec<Mismatch> {
    let mut out = Vec::new();
    while !steps.is_empty() {
        let mut typed: String = steps.iter().map(|s| format!("{}\r", s.command)).collect();
        if steps.last().unwrap().command != "poweroff" {
            typed.push_str("poweroff\r");
        }
        let timeout = TIMEOUT_SECS.to_string();
        let mut args: Vec<&str> = options.iter().map(String::as_str).collect();
        args.extend(["--timeout", &timeout]);
        let run = runner_steps(&args, None, vec![("tristack> ", Action::Type(typed.into_bytes()))]);
        let lines: Vec<String> = run.kernel_lines().iter().map(|l| l.to_string()).collect();
        let mut at = 0;
        if let Some(b) = boot.take() {
            let end = lines.iter().position(|l| l.starts_with("tristack> ")).unwrap_or(lines.len());
            out.extend(check(b, lines[..end].to_vec()));
        }
        let mut done = 0;
        for step in &steps {
            let echo = format!("tristack> {}", step.command);
            let Some(k) = lines[at..].iter().position(|l| l.trim_end() == echo) else { break };
            let start = at + k + 1;
            let end =
                lines[start..].iter().position(|l| l.starts_with("tristack> ")).map_or(lines.len(), |e| start + e);
            out.extend(check(step.clone(), lines[start..end].to_vec()));
            at = end;
            done += 1;
        }
        assert!(done > 0, "`{}` never ran:\n{run}", steps[0].command);
        steps.drain(..done);
    }
    out
}

/// `$ ./x run OPTIONS -- 'COMMANDS'` or `$ ./x checkstack ARGS`.
fn run_x(step: &Step) -> Option<Mismatch> {
    let words = shell_words(&step.command);
    let actual: Vec<String> = match words.first().map(String::as_str) {
        Some("run") => {
            let args: Vec<&str> = words[1..].iter().map(String::as_str).collect();
            let run = runner(&args);
            let mut lines: Vec<String> = run.kernel_lines().iter().map(|l| l.to_string()).collect();
            lines.extend(run.stderr.lines().map(String::from));
            lines
        }
        Some("checkstack") => {
            let elf = runner(&["--kernel-elf"]).serial.trim().to_string();
            let out = std::process::Command::new(env!("CARGO_BIN_FILE_CHECKSTACK_checkstack"))
                .current_dir(repo())
                .env("TRISTACK_KERNEL_ELF", elf)
                .args(&words[1..])
                .output()
                .expect("run checkstack");
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            text.lines().map(String::from).collect()
        }
        other => panic!("line {}: no way to run `./x {other:?}` here; mark the block `no-run: WHY`", step.lines.start),
    };
    check(step.clone(), actual)
}

/// Words as the shell splits them: blanks, with '...' and "..." quoting.
fn shell_words(s: &str) -> Vec<String> {
    let (mut words, mut cur, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in s.chars() {
        match (quote, c) {
            (None, '\'' | '"') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, c) if c.is_whitespace() => {
                if any {
                    words.push(std::mem::take(&mut cur));
                }
                any = false;
            }
            (_, c) => (cur.push(c), any = true).1,
        }
    }
    if any {
        words.push(cur);
    }
    words
}

fn bless(path: &std::path::Path, text: &str, mismatches: &[Mismatch]) {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut sorted: Vec<&Mismatch> = mismatches.iter().collect();
    sorted.sort_by_key(|m| std::cmp::Reverse(m.step.lines.start));
    for m in sorted {
        let actual: Vec<&str> = m.actual.iter().map(String::as_str).collect();
        let new = matching::bless(&m.step.expected, &actual);
        lines.splice(m.step.lines.clone(), new);
    }
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

macro_rules! docs_tests {
    ($($name:ident: $file:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_file($file);
            }
        )*

        /// Every file with console blocks has a test above.
        #[test]
        fn every_doc_with_a_console_block_is_checked() {
            let checked = [$($file),*];
            let mut files = vec!["README.md".to_string()];
            for e in std::fs::read_dir(repo().join("docs")).unwrap() {
                let name = e.unwrap().file_name().into_string().unwrap();
                if name.ends_with(".md") {
                    files.push(format!("docs/{name}"));
                }
            }
            let (mut run, mut not_run) = (0, 0);
            for f in files {
                let blocks = blocks::parse(&std::fs::read_to_string(repo().join(&f)).unwrap());
                not_run += blocks.iter().filter(|b| b.session.is_err()).count();
                run += blocks.iter().filter(|b| b.session.is_ok()).count();
                assert!(blocks.is_empty() || checked.contains(&f.as_str()), "{f} has console blocks and no test");
            }
            eprintln!("docs: {run} console blocks run, {not_run} marked no-run");
            assert!(run > 0);
        }
    };
}

docs_tests! {
    readme: "README.md",
    debugging_md: "docs/debugging.md",
    dynamic_stacks_md: "docs/dynamic-stacks.md",
    hostile_input_md: "docs/hostile-input.md",
    irq_md: "docs/irq.md",
    ist_md: "docs/ist.md",
    performance_md: "docs/performance.md",
    running_out_of_stack_md: "docs/running-out-of-stack.md",
    smp_md: "docs/smp.md",
    stack_tools_md: "docs/stack-tools.md",
    threads_md: "docs/threads.md",
    user_mode_md: "docs/user-mode.md",
}
