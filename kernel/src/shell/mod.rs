//! The serial shell: the line editor, the REPL and the built-in commands. Every demo is a command too (`demos::COMMANDS`),
//! run from the kernel command line (`;`-separated) or typed at the
//! `tristack> ` prompt.

pub mod line;

#[cfg(target_os = "none")]
pub mod commands;
#[cfg(target_os = "none")]
mod repl;

#[cfg(target_os = "none")]
pub use repl::{interactive, run_command_line};

/// Hand the demos what they need of the shell: `soak` runs its lines
/// through the shell's own command path.
#[cfg(target_os = "none")]
pub fn init() {
    crate::demos::hostile_input::soak::set_line_runner(repl::run_line);
}
