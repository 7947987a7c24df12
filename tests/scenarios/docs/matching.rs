//! Shown output against real output, line by line: `[..]` inside a line
//! matches any text, a line `...` any number of lines (as `trycmd` and
//! `snapbox` write them). And `bless`: a shown block rewritten to what a
//! real boot printed, keeping what still matches and turning the figures
//! that differ into `[..]`.

/// `pattern` (with `[..]` wildcards) against one line; trailing blanks ignored.
pub fn line_matches(pattern: &str, line: &str) -> bool {
    let (pattern, line) = (pattern.trim_end(), line.trim_end());
    let parts: Vec<&str> = pattern.split("[..]").collect();
    let [first, middle @ .., last] = &parts[..] else { return pattern == line };
    if line.len() < first.len() + last.len() || !line.starts_with(first) || !line.ends_with(last) {
        return false;
    }
    let mut rest = &line[first.len()..line.len() - last.len()];
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    true
}

/// Every line of `expected` matches, in order, with `...` lines spanning any number of lines.
pub fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    let (n, m) = (expected.len(), actual.len());
    // ok[i][j]: expected[i..] matches actual[j..].
    let mut ok = vec![vec![false; m + 1]; n + 1];
    ok[n][m] = true;
    for i in (0..n).rev() {
        for j in (0..=m).rev() {
            ok[i][j] = if expected[i].trim() == "..." {
                ok[i + 1][j] || (j < m && ok[i][j + 1])
            } else {
                j < m && line_matches(&expected[i], actual[j]) && ok[i + 1][j + 1]
            };
        }
    }
    ok[0][0]
}

/// A line cut into runs: figures (hex or decimal, with at least one digit) and the rest.
fn runs(s: &str) -> Vec<(bool, String)> {
    let s = s.trim_end().replace("[..]", "\u{1}");
    let mut out: Vec<(bool, String)> = Vec::new();
    let figure_char = |c: char| c.is_ascii_hexdigit() || c == 'x' || c == '\u{1}';
    for c in s.chars() {
        let f = figure_char(c);
        match out.last_mut() {
            Some((was, run)) if *was == f => run.push(c),
            _ => out.push((f, c.to_string())),
        }
    }
    // A "figure" without a digit (a word like `add`, `ffff` excepted) is text.
    for r in &mut out {
        if r.0 && !r.1.chars().any(|c| c.is_ascii_digit() || c == '\u{1}') {
            r.0 = false;
        }
    }
    let mut merged: Vec<(bool, String)> = Vec::new();
    for (f, run) in out {
        match merged.last_mut() {
            Some((false, prev)) if !f => prev.push_str(&run),
            _ => merged.push((f, run)),
        }
    }
    merged
}

/// The shape of a line: its text with every figure (and every wildcard) as `#`, blanks collapsed.
fn shape(s: &str) -> String {
    runs(s)
        .into_iter()
        .map(|(f, r)| if f { "#".into() } else { r.split_whitespace().collect::<Vec<_>>().join(" ") })
        .collect()
}

/// `actual`, with each figure that differs from `expected`'s (or was a wildcard there) as `[..]`.
fn merge(expected: &str, actual: &str) -> String {
    let (e, a) = (runs(expected), runs(actual));
    if e.len() != a.len() {
        return actual.trim_end().to_string();
    }
    e.iter()
        .zip(&a)
        .map(
            |((ef, er), (_, ar))| {
                if *ef && (er != ar || is_text_address(ar)) {
                    "[..]".to_string()
                } else {
                    ar.clone()
                }
            },
        )
        .collect()
}

/// A kernel text address (`ffffffff8…`, with or without `0x`): it moves
/// with every change to the code, so a doc never pins one.
fn is_text_address(figure: &str) -> bool {
    let hex = figure.strip_prefix("0x").unwrap_or(figure);
    hex.len() == 16 && hex.starts_with("ffffffff8") && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// A line new to the docs, as a bless writes it: a trace's `? ` lines
/// (stale return addresses, which come and go with the build) as `...`,
/// and every `+0xOFF/0xLEN` symbol offset as `+[..]/[..]`.
fn push_new(out: &mut Vec<String>, line: &str) {
    let line = line.trim_end();
    if line.starts_with(" ? ") {
        if out.last().is_none_or(|l| l != "...") {
            out.push("...".into());
        }
        return;
    }
    let is_offset = |s: &str| {
        s.split_once('/').is_some_and(|(a, b)| {
            [a, b].iter().all(|h| h.strip_prefix("0x").is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit())))
        })
    };
    let line = match line.rsplit_once('+') {
        Some((name, off)) if is_offset(off) => format!("{name}+[..]/[..]"),
        _ => line.to_string(),
    };
    // Its text addresses too, as `merge` does.
    out.push(runs(&line).into_iter().map(|(f, r)| if f && is_text_address(&r) { "[..]".into() } else { r }).collect());
}

/// Most lines of new output a bless writes out between two kept lines; a longer gap becomes `...`.
const LONGEST_GAP: usize = 12;

/// `expected` rewritten to match `actual`: lines that match stay; lines of
/// the same shape (only figures differ) take the new text with the
/// differing figures as `[..]`; new lines are written out; a gap where
/// shown lines were not printed, or longer than `LONGEST_GAP`, becomes `...`.
pub fn bless(expected: &[String], actual: &[&str]) -> Vec<String> {
    if lines_match(expected, actual) && std::env::var("TRISTACK_BLESS_DOCS").as_deref() != Ok("all") {
        return expected.to_vec();
    }
    let exp: Vec<(usize, &String)> = expected.iter().enumerate().filter(|(_, l)| l.trim() != "...").collect();
    let similar = |e: &str, a: &str| line_matches(e, a) || shape(e) == shape(a);
    // Longest common subsequence of (expected, actual) under `similar`.
    let (n, m) = (exp.len(), actual.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] =
                if similar(exp[i].1, actual[j]) { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut pairs = Vec::new();
    while i < n && j < m {
        if similar(exp[i].1, actual[j]) && lcs[i][j] == lcs[i + 1][j + 1] + 1 {
            pairs.push((exp[i].0, j));
            i += 1;
            j += 1;
        } else if lcs[i + 1][j] >= lcs[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    let mut out = Vec::new();
    let (mut prev_e, mut prev_a) = (0usize, 0usize);
    let gap = |out: &mut Vec<String>, e: std::ops::Range<usize>, a: std::ops::Range<usize>| {
        // A shown line this run did not print may come and go (output of
        // two CPUs interleaving): it becomes `...` rather than vanish.
        let had_dots = !e.is_empty();
        if a.is_empty() {
            if had_dots && out.last().is_none_or(|l| l != "...") {
                out.push("...".to_string());
            }
            return;
        }
        if had_dots || a.len() > LONGEST_GAP {
            out.push("...".to_string());
        } else {
            for l in &actual[a] {
                push_new(out, l);
            }
        }
    };
    for (e, a) in pairs {
        gap(&mut out, prev_e..e, prev_a..a);
        let line = &expected[e];
        out.push(if line_matches(line, actual[a]) && !line.contains("ffffffff8") {
            line.clone()
        } else {
            merge(line, actual[a])
        });
        (prev_e, prev_a) = (e + 1, a + 1);
    }
    gap(&mut out, prev_e..expected.len(), prev_a..m);
    out.into_iter().map(|l| wildcard_offset(&l)).collect()
}

/// `name+0xOFF/0xLEN` as `name+[..]/[..]`: a symbol's offsets change with the build.
fn wildcard_offset(line: &str) -> String {
    let is_hex =
        |h: &str| h == "[..]" || h.strip_prefix("0x").is_some_and(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
    let is_offset = |s: &str| s.split_once('/').is_some_and(|(a, b)| is_hex(a) && is_hex(b));
    match line.rsplit_once('+') {
        Some((name, off)) if is_offset(off) => format!("{name}+[..]/[..]"),
        _ => line.to_string(),
    }
}

#[test]
fn wildcards_and_ellipses() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(line_matches("pid [..] ok", "pid 42 ok"));
    assert!(!line_matches("pid [..] ok", "pid 42 failed"));
    assert!(line_matches("[..]", "anything"));
    assert!(lines_match(&e(&["a", "...", "d"]), &["a", "b", "c", "d"]));
    assert!(lines_match(&e(&["a", "...", "b"]), &["a", "b"]));
    assert!(!lines_match(&e(&["a", "d"]), &["a", "b", "d"]), "without ... every line counts");
    assert!(!lines_match(&e(&["a", "b"]), &["a"]));
}

#[test]
fn bless_keeps_text_and_wildcards_changed_figures() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let old = e(&["hello", "frames: 100 free at ffffc90000001000", "gone line", "...", "end"]);
    let new = bless(&old, &["hello", "frames:  96 free at ffffc90000001000", "x", "y", "end", "extra"]);
    assert_eq!(new, e(&["hello", "frames:  [..] free at ffffc90000001000", "...", "end", "extra"]));
    // A line shown but not printed this time stays possible, as `...`.
    let again = bless(&e(&["a", "sometimes", "b"]), &["a", "b"]);
    assert_eq!(again, e(&["a", "...", "b"]));
    assert!(lines_match(&new, &["hello", "frames:  96 free at ffffc90000001000", "x", "y", "end", "extra"]));
}
