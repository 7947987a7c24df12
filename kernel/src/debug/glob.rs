//! Shell-style globs for `stacktrace-filter` (Linux `stack_trace_filter`
//! takes ftrace's glob filters): `*` any run of characters, `?` one
//! character, everything else literal. Pure; host-tested.

pub fn matches(pat: &[u8], s: &[u8]) -> bool {
    match (pat.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => matches(&pat[1..], s) || (!s.is_empty() && matches(pat, &s[1..])),
        (Some(b'?'), Some(_)) => matches(&pat[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => matches(&pat[1..], &s[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn globs_match_like_ftrace_filters() {
        assert!(matches(b"*recurse*", b"tristack::sched::recurse_here"));
        assert!(matches(b"tristack::mm::*", b"tristack::mm::vmalloc::vfree"));
        assert!(matches(b"a?c", b"abc") && !matches(b"a?c", b"ac"));
        assert!(!matches(b"*::sched::*", b"tristack::mm::vmalloc::vfree"));
        assert!(matches(b"*", b"") && matches(b"", b"") && !matches(b"", b"x"));
    }
}
