//! Running commands: from the kernel command line, and at the prompt.

use super::cmdline::{self, Command};
use super::commands::{self, CmdError};
use super::line::{Event, LineEditor};
use crate::drivers::serial;
use crate::{print, println};

pub const PROMPT: &str = "tristack> ";

/// Run one command; false if it failed (the error has been printed).
fn execute(cmd: &Command) -> bool {
    // Like init, the shell reaps the threads it started that have ended.
    crate::sched::reap_children();
    let Some(spec) = commands::find(cmd.name) else {
        println!("error: unknown command '{}'; valid commands: {}", cmd.name, commands::names());
        return false;
    };
    match (spec.run)(&cmd.args) {
        Ok(()) => true,
        Err(CmdError::Usage(e)) => {
            println!("error: {e}");
            false
        }
        Err(CmdError::Failed(why)) => {
            println!("error: {}: {why}", cmd.name);
            false
        }
    }
}

/// Run the boot command line; false (after printing why) at the first error.
pub fn run_command_line(bytes: &[u8]) -> bool {
    let cmds = match cmdline::parse(bytes) {
        Ok(cmds) => cmds,
        Err(e) => {
            println!("error: {e}");
            return false;
        }
    };
    for cmd in &cmds {
        // Echo as if typed, so a boot log reads like a session.
        println!("{PROMPT}{}{}{}", cmd.name, if cmd.args.is_empty() { "" } else { " " }, cmd.args.join(" "));
        if !execute(cmd) {
            return false;
        }
    }
    true
}

/// The interactive shell on the serial port. Never returns.
pub fn interactive() -> ! {
    let mut editor = LineEditor::new();
    print!("{PROMPT}");
    loop {
        // Sleeps until the COM1 receive interrupt brings a byte.
        let byte = serial::read_byte();
        match editor.feed(byte, serial::write_bytes) {
            Event::None => continue,
            Event::Cancelled => {}
            Event::Line(line) => match cmdline::parse(line.as_bytes()) {
                Ok(cmds) => {
                    for cmd in &cmds {
                        if !execute(cmd) {
                            break;
                        }
                    }
                }
                Err(e) => println!("error: {e}"),
            },
        }
        print!("{PROMPT}");
    }
}
