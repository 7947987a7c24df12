//! The kernel command line (bytes from fw_cfg) and the shell's input (bytes
//! from the serial port, through the line editor): any input gives commands
//! or an error that can be printed; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tristack::cmd::cmdline::{self, COMMAND_LINE_MAX};
use tristack::shell::line::{Event, LineEditor, LINE_MAX};

fuzz_target!(|data: &[u8]| {
    check_command_line(data);
    // The same bytes typed at the prompt.
    let mut editor = LineEditor::new("tristack> ");
    for &byte in data {
        if let Event::Line(line) = editor.feed(byte, |_| {}) {
            assert!(line.len() <= LINE_MAX, "the editor kept {} bytes", line.len());
            assert!(line.bytes().all(|b| (b' '..=b'~').contains(&b)), "non-printable byte in {line:?}");
            check_command_line(line.as_bytes());
        }
    }
});

fn check_command_line(bytes: &[u8]) {
    let commands = match cmdline::parse(bytes) {
        Ok(commands) => commands,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert!(bytes.len() <= COMMAND_LINE_MAX);
    for c in &commands {
        for word in core::iter::once(&c.name).chain(&c.args) {
            assert!(!word.is_empty() && !word.contains(char::is_whitespace) && !word.contains(';'), "word {word:?}");
        }
        // The argument helpers every command uses: an error, never a panic.
        if let Err(e) = cmdline::split_cpu_option(&c.args) {
            assert!(!e.render(c.name, "").is_empty());
        }
        for arg in &c.args {
            match cmdline::number("N", arg, 1..=64) {
                Ok(n) => assert!((1..=64).contains(&n)),
                Err(e) => assert!(!e.render(c.name, "N").is_empty()),
            }
        }
    }
}
