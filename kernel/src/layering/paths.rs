//! The import graph's raw material: the module a file is, the source with
//! comments and literals blanked, and every module path it names.

use std::fs;
use std::path::{Path, PathBuf};

/// The kernel's `src/`.
pub fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `path`.
pub fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        for entry in fs::read_dir(path).unwrap() {
            rust_files(&entry.unwrap().path(), out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Module path of a file below `src`, segment by segment:
/// `arch/x86_64/traps.rs` → `[arch, x86_64, traps]`, `sched/mod.rs` → `[sched]`.
pub fn module_segments(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.with_extension("").iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// A module path as the layers name it: the `x86_64` level of `arch` is
/// left out (`arch` re-exports it), so `arch::x86_64::traps` → `arch::traps`.
pub fn normalize(segments: &[String]) -> String {
    segments.iter().filter(|s| *s != "x86_64").cloned().collect::<Vec<_>>().join("::")
}

/// `module_segments`, normalized.
pub fn module_of(rel: &Path) -> String {
    normalize(&module_segments(rel))
}

/// The source with comments, string and character literals blanked, so a
/// path named in a comment or a message is not an import.
pub fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, s: &[u8]| out.extend(s.iter().map(|&c| if c == b'\n' { b'\n' } else { b' ' }));
    while i < b.len() {
        let rest = &b[i..];
        let len = if rest.starts_with(b"//") {
            rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len())
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            let mut j = 0;
            loop {
                if rest[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break j;
                    }
                } else {
                    j += 1;
                }
            }
        } else if rest[0] == b'"' || (rest.starts_with(b"b\"") && !ident_before(b, i)) {
            let start = if rest[0] == b'"' { 1 } else { 2 };
            let mut j = start;
            while rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else if (rest.starts_with(b"r\"") || rest.starts_with(b"r#")) && !ident_before(b, i) {
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let close: Vec<u8> = core::iter::once(b'"').chain(core::iter::repeat_n(b'#', hashes)).collect();
            let body = 2 + hashes;
            body + rest[body..].windows(close.len()).position(|w| w == close.as_slice()).unwrap() + close.len()
        } else if rest[0] == b'\'' && rest.len() > 2 && (rest[1] == b'\\' || rest[2] == b'\'') {
            // A character literal ('x', '\n', '\''), not a lifetime.
            let mut j = if rest[1] == b'\\' { 3 } else { 2 };
            while rest[j] != b'\'' {
                j += 1;
            }
            j + 1
        } else {
            out.push(rest[0]);
            i += 1;
            continue;
        };
        blank(&mut out, &rest[..len]);
        i += len;
    }
    String::from_utf8(out).unwrap()
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

pub fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// Every module path `code` names, made absolute: `crate::x::y` and
/// `$crate::x::y` → `x::y`; `super::y` → the parent of the module it is
/// written in (a file `module`, or an inline `mod` block inside it) plus
/// `y`; groups `crate::{a::b, c}` → `a::b`, `c`. Normalized as the layers
/// name modules.
pub fn named_paths(code: &str, module: &[String]) -> Vec<String> {
    let b = code.as_bytes();
    let mut paths = Vec::new();
    // Inline `mod name {` blocks open at this point (None: another block).
    let mut blocks: Vec<Option<String>> = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => {
                blocks.push(inline_mod_before(&code[..i]));
                i += 1;
                continue;
            }
            b'}' => {
                blocks.pop();
                i += 1;
                continue;
            }
            _ => {}
        }
        let rest = &code[i..];
        let fresh = !(ident_before(b, i) || code[..i].ends_with("::"));
        if fresh && rest.starts_with("crate::") {
            let after = "crate::".len();
            paths.extend(expand(&rest[after..]).into_iter().map(|p| normalize(&split(&p))));
            i += after;
        } else if fresh && rest.starts_with("super::") {
            let mut base: Vec<String> = module.to_vec();
            base.extend(blocks.iter().flatten().cloned());
            let mut tail = rest;
            while let Some(t) = tail.strip_prefix("super::") {
                base.pop();
                tail = t.trim_start();
            }
            for p in expand(tail) {
                let mut full = base.clone();
                full.extend(split(&p));
                paths.push(normalize(&full));
            }
            i += rest.len() - tail.len();
        } else {
            i += 1;
        }
    }
    paths
}

fn split(path: &str) -> Vec<String> {
    path.split("::").filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The module name if `before` ends with `mod name` (a `{` follows).
fn inline_mod_before(before: &str) -> Option<String> {
    let t = before.trim_end();
    let name_start = t.rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(0, |i| i + 1);
    let name = &t[name_start..];
    let kw = t[..name_start].trim_end();
    let is_mod = kw.ends_with("mod") && !kw[..kw.len() - 3].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
    (is_mod && !name.is_empty()).then(|| name.to_string())
}

/// The paths at the start of `s` (just after a `crate::`).
fn expand(s: &str) -> Vec<String> {
    let s = s.trim_start();
    if let Some(group) = s.strip_prefix('{') {
        let mut depth = 1;
        let end = group
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(group.len(), |(i, _)| i);
        let mut items = Vec::new();
        let (mut depth, mut from) = (0, 0);
        for (i, c) in group[..end].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        items.push(&group[from..end]);
        return items.into_iter().filter(|i| !i.trim().is_empty()).flat_map(expand).collect();
    }
    let mut path = Vec::new();
    let mut rest = s;
    loop {
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        path.push(name.to_string());
        rest = &rest[name.len()..];
        match rest.trim_start().strip_prefix("::") {
            Some(r) if r.trim_start().starts_with('{') => {
                return expand(r).into_iter().map(|tail| format!("{}::{tail}", path.join("::"))).collect();
            }
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    vec![path.join("::")]
}
