//! The serial shell: every demo is a command, run from the kernel command
//! line (`;`-separated) or typed at the `tristack> ` prompt.

pub mod cmdline;
pub mod line;

#[cfg(target_os = "none")]
pub mod bt_cmds;
#[cfg(target_os = "none")]
mod commands;
#[cfg(target_os = "none")]
pub mod irq_cmds;
#[cfg(target_os = "none")]
mod repl;
#[cfg(target_os = "none")]
pub mod smp_cmds;
#[cfg(target_os = "none")]
mod stack_cmds;
#[cfg(target_os = "none")]
mod thread_cmds;

#[cfg(target_os = "none")]
pub use repl::{interactive, run_command_line};
