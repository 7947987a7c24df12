//! Parsing the kernel command line and shell input into commands.
//!
//! The command line is a `;`-separated list of shell commands; each command is
//! whitespace-separated words. Everything here is pure: the bytes may come
//! from anywhere (fw_cfg, the serial port), and any input yields either
//! commands or an error that says what was wrong.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Longest command line accepted, in bytes.
pub const COMMAND_LINE_MAX: usize = 4096;

/// One command: its name and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command<'a> {
    pub name: &'a str,
    pub args: Vec<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CmdlineError {
    TooLong { len: usize },
    NotUtf8 { offset: usize, byte: u8 },
    ControlChar { offset: usize, byte: u8 },
}

impl fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CmdlineError::TooLong { len } => write!(f, "command line is {len} bytes; the limit is {COMMAND_LINE_MAX}"),
            CmdlineError::NotUtf8 { offset, byte } => {
                write!(f, "command line is not valid UTF-8: byte {byte:#04x} at offset {offset}")
            }
            CmdlineError::ControlChar { offset, byte } => write!(
                f,
                "command line has control character {byte:#04x} at offset {offset}; \
                 only printable text, spaces, tabs and newlines are allowed"
            ),
        }
    }
}

/// Split `bytes` into commands. Empty commands (`;;`, trailing `;`) are skipped.
pub fn parse(bytes: &[u8]) -> Result<Vec<Command<'_>>, CmdlineError> {
    if bytes.len() > COMMAND_LINE_MAX {
        return Err(CmdlineError::TooLong { len: bytes.len() });
    }
    let text = core::str::from_utf8(bytes)
        .map_err(|e| CmdlineError::NotUtf8 { offset: e.valid_up_to(), byte: bytes[e.valid_up_to()] })?;
    if let Some((offset, byte)) =
        text.bytes().enumerate().find(|&(_, b)| b.is_ascii_control() && !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Err(CmdlineError::ControlChar { offset, byte });
    }
    Ok(text
        .split([';', '\n'])
        .filter_map(|part| {
            let mut words = part.split_whitespace();
            let name = words.next()?;
            Some(Command { name, args: words.collect() })
        })
        .collect())
}

/// Why a command's arguments were rejected. The shell prints it with the
/// command's name and, where it says so, the usage from the command's
/// `Spec` — the one place a usage is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgError {
    /// The arguments do not fit the usage; `more` follows it (a range, a
    /// hint, the valid values), "" for nothing.
    Usage { more: String },
    /// An argument the command does not take.
    Unexpected(String),
    /// What was wrong, then the usage.
    Wrong(String),
    /// What was wrong, in the command's own words.
    Invalid(String),
}

impl ArgError {
    pub fn usage() -> ArgError {
        ArgError::Usage { more: String::new() }
    }

    /// The usage, then `more` as it is (" (1 to 64)", "; programs: ...").
    pub fn usage_and(more: impl Into<String>) -> ArgError {
        ArgError::Usage { more: more.into() }
    }

    /// The message for command `name` whose usage is `usage` (its `Spec`'s).
    pub fn render(&self, name: &str, usage: &str) -> String {
        let line = alloc::format!("usage: {name} {usage}");
        let line = line.trim_end();
        match self {
            ArgError::Usage { more } => alloc::format!("{name}: {line}{more}"),
            ArgError::Unexpected(arg) => alloc::format!("{name}: unexpected argument '{arg}'; {line}"),
            ArgError::Wrong(why) => alloc::format!("{name}: {why}; {name}: {line}"),
            ArgError::Invalid(why) => alloc::format!("{name}: {why}"),
        }
    }
}

/// Require exactly no arguments.
pub fn no_args(args: &[&str]) -> Result<(), ArgError> {
    match args.first() {
        None => Ok(()),
        Some(extra) => Err(ArgError::Unexpected(String::from(*extra))),
    }
}

/// Parse a decimal or `0x` hexadecimal number within `range`.
pub fn number(what: &str, arg: &str, range: core::ops::RangeInclusive<u64>) -> Result<u64, ArgError> {
    let parsed = match arg.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => arg.parse::<u64>(),
    };
    match parsed {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ArgError::Invalid(alloc::format!(
            "{what} must be a number from {} to {}, not '{arg}'",
            range.start(),
            range.end()
        ))),
    }
}

/// A thread stack size: `4K`, `8K`, `16K`, `32K` (or the same in bytes),
/// one of `THREAD_STACK_SIZES`.
pub fn stack_size(arg: &str) -> Result<u64, ArgError> {
    use crate::layout::THREAD_STACK_SIZES;
    let parsed = match arg.strip_suffix(['K', 'k']) {
        Some(k) => k.parse::<u64>().ok().and_then(|k| k.checked_mul(1024)),
        None => arg.parse::<u64>().ok(),
    };
    match parsed {
        Some(n) if THREAD_STACK_SIZES.contains(&n) => Ok(n),
        _ => {
            let valid: Vec<String> = THREAD_STACK_SIZES.iter().map(|s| alloc::format!("{}K", s / 1024)).collect();
            Err(ArgError::Invalid(alloc::format!("stack size must be one of {}, not '{arg}'", valid.join(", "))))
        }
    }
}

/// A stack limit in bytes: from `STACK_LIMIT_MIN` to `STACK_LIMIT_MAX`, a
/// multiple of `STACK_LIMIT_ALIGN` (room for a guard page inside the
/// `THREAD_SIZE` stack, and an aligned top).
pub fn stack_limit(arg: &str) -> Result<u64, ArgError> {
    use crate::layout::{STACK_LIMIT_ALIGN, STACK_LIMIT_MAX, STACK_LIMIT_MIN};
    let n = number("the stack limit", arg, STACK_LIMIT_MIN..=STACK_LIMIT_MAX)?;
    if !n.is_multiple_of(STACK_LIMIT_ALIGN) {
        return Err(ArgError::Invalid(alloc::format!(
            "the stack limit must be a multiple of {STACK_LIMIT_ALIGN}, not {n}"
        )));
    }
    Ok(n)
}

/// Take the shell-wide `--cpu C` (or `--cpu=C`) option out of `args`:
/// returns C as a number, if given, and the remaining arguments.
pub fn split_cpu_option<'a>(args: &[&'a str]) -> Result<(Option<u64>, Vec<&'a str>), ArgError> {
    let mut cpu = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        let value = match a.strip_prefix("--cpu") {
            Some("") => Some(*it.next().ok_or_else(|| ArgError::Invalid("--cpu needs a CPU number".into()))?),
            Some(v) if v.starts_with('=') => Some(&v[1..]),
            _ => None,
        };
        match value {
            None => rest.push(a),
            Some(_) if cpu.is_some() => return Err(ArgError::Invalid("--cpu given twice".into())),
            Some(v) => cpu = Some(number("--cpu", v, 0..=u64::from(u16::MAX))?),
        }
    }
    Ok((cpu, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_option_is_taken_out_wherever_it_is() {
        assert_eq!(split_cpu_option(&["3", "--cpu", "2"]).unwrap(), (Some(2), vec!["3"]));
        assert_eq!(split_cpu_option(&["--cpu=1", "3", "nmi"]).unwrap(), (Some(1), vec!["3", "nmi"]));
        assert_eq!(split_cpu_option(&[]).unwrap(), (None, vec![]));
    }

    #[test]
    fn cpu_option_errors_name_the_problem() {
        assert!(split_cpu_option(&["--cpu"]).unwrap_err().render("cmd", "").contains("needs a CPU number"));
        assert!(split_cpu_option(&["--cpu", "x"]).unwrap_err().render("cmd", "").contains("--cpu"));
        assert!(split_cpu_option(&["--cpu", "1", "--cpu=2"]).unwrap_err().render("cmd", "").contains("twice"));
    }

    fn names(s: &str) -> Vec<(String, Vec<String>)> {
        parse(s.as_bytes())
            .unwrap()
            .into_iter()
            .map(|c| (c.name.into(), c.args.iter().map(|a| a.to_string()).collect()))
            .collect()
    }

    #[test]
    fn semicolons_separate_commands_in_order() {
        assert_eq!(
            names(" echo  hello world ;;stacks; poweroff ;"),
            vec![
                ("echo".into(), vec!["hello".into(), "world".into()]),
                ("stacks".into(), vec![]),
                ("poweroff".into(), vec![]),
            ]
        );
        assert!(names("   ").is_empty());
        assert!(names("").is_empty());
    }

    #[test]
    fn newlines_also_separate_commands() {
        assert_eq!(names("echo a\npoweroff\n").len(), 2);
    }

    #[test]
    fn bad_bytes_are_located() {
        assert_eq!(parse(b"echo \xff"), Err(CmdlineError::NotUtf8 { offset: 5, byte: 0xff }));
        assert_eq!(parse(b"echo\x07"), Err(CmdlineError::ControlChar { offset: 4, byte: 7 }));
        assert_eq!(parse(b"a\0b"), Err(CmdlineError::ControlChar { offset: 1, byte: 0 }));
        let long = vec![b'a'; COMMAND_LINE_MAX + 1];
        assert_eq!(parse(&long), Err(CmdlineError::TooLong { len: COMMAND_LINE_MAX + 1 }));
        assert!(parse(&long[1..]).is_ok());
    }

    #[test]
    fn any_bytes_parse_or_error_without_panicking() {
        let mut x = 0x853c_49e6_748f_ea9bu64;
        for len in 0..3000usize {
            let bytes: Vec<u8> = (0..len % 700)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Bias towards the interesting bytes: separators, ASCII, high bytes.
                    match x % 4 {
                        0 => b";; \t\n"[(x >> 8) as usize % 5],
                        1 => b'a' + (x >> 8) as u8 % 26,
                        _ => (x >> 16) as u8,
                    }
                })
                .collect();
            match parse(&bytes) {
                Ok(cmds) => assert!(cmds.iter().all(|c| !c.name.is_empty())),
                Err(e) => assert!(!alloc::format!("{e}").is_empty()),
            }
        }
    }

    #[test]
    fn stack_sizes_and_limits_parse_or_say_what_is_valid() {
        assert_eq!(stack_size("4K"), Ok(4096));
        assert_eq!(stack_size("32k"), Ok(32768));
        assert_eq!(stack_size("8192"), Ok(8192));
        let e = stack_size("12K").unwrap_err().render("spawn", "");
        assert_eq!(e, "spawn: stack size must be one of 4K, 8K, 16K, 32K, not '12K'");
        assert!(stack_size("K").is_err() && stack_size("99999999999999999999K").is_err());
        assert_eq!(stack_limit("6000"), Ok(6000));
        assert!(stack_limit("6001").unwrap_err().render("cmd", "").contains("multiple of 16"));
        assert!(stack_limit("100").unwrap_err().render("cmd", "").contains("from 512 to 12288"));
        assert!(stack_limit("16384").is_err());
    }

    #[test]
    fn numbers_in_range_decimal_or_hex() {
        assert_eq!(number("N", "3", 1..=3), Ok(3));
        assert_eq!(number("N", "0x2", 1..=3), Ok(2));
        let e = number("N", "4", 1..=3).unwrap_err();
        assert_eq!(e.render("db", "N [nmi]"), "db: N must be a number from 1 to 3, not '4'");
        assert!(number("N", "-1", 1..=3).is_err());
        assert!(number("N", "", 1..=3).is_err());
        assert_eq!(
            no_args(&["x"]).unwrap_err().render("meminfo", ""),
            "meminfo: unexpected argument 'x'; usage: meminfo"
        );
        // The usage comes from the caller's Spec, with what follows it.
        assert_eq!(ArgError::usage_and(" (1 to 3)").render("db", "N [nmi]"), "db: usage: db N [nmi] (1 to 3)");
    }
}
