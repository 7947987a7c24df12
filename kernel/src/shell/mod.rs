//! The serial shell: command-line parsing, the line editor, the REPL and
//! the built-in commands. Every demo is a command too (`demos::COMMANDS`),
//! run from the kernel command line (`;`-separated) or typed at the
//! `tristack> ` prompt.

pub mod line;

#[cfg(target_os = "none")]
pub mod commands;
#[cfg(target_os = "none")]
mod repl;
#[cfg(target_os = "none")]
mod soak;

#[cfg(target_os = "none")]
pub use repl::{interactive, run_command_line};
