//! What a command is — name, usage, one help line, handler — and the
//! parsing of command lines and arguments. Below both the demos, which
//! define most commands, and the shell, which runs them.

use alloc::string::String;

use cmdline::ArgError;

pub mod cmdline;

pub enum CmdError {
    /// Bad arguments: the message names what is valid.
    Usage(ArgError),
    /// The command ran and failed.
    Failed(String),
}

impl From<ArgError> for CmdError {
    fn from(e: ArgError) -> Self {
        CmdError::Usage(e)
    }
}

pub type CmdResult = Result<(), CmdError>;

#[cfg(target_os = "none")]
pub use intended::{intend_oops, oops_was_intended};

#[cfg(target_os = "none")]
mod intended {
    /// The thread a command kills on purpose (`doublefault`, `db 3`), so that
    /// `COMMAND --cpu C`, whose thread that is, reports the oops as the demo's
    /// outcome rather than a failure. 0: none.
    static INTENDED_OOPS: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

    /// Say, just before the fault, that the oops about to kill this thread is
    /// the point of the command (printed, and remembered for `--cpu`).
    pub fn intend_oops(what: &str) {
        let pid = crate::sched::current().map_or(0, |t| t.pid);
        crate::println!("{what}: (expected oops) this thread ({pid}) is about to die of it");
        INTENDED_OOPS.store(pid, core::sync::atomic::Ordering::SeqCst);
    }

    /// Whether thread `pid`'s oops was announced by `intend_oops` (and forget it).
    pub fn oops_was_intended(pid: crate::sched::Pid) -> bool {
        INTENDED_OOPS
            .compare_exchange(pid, 0, core::sync::atomic::Ordering::SeqCst, core::sync::atomic::Ordering::SeqCst)
            .is_ok()
    }
}

pub struct Spec {
    pub name: &'static str,
    /// Arguments as shown by `help` ("" for none).
    pub usage: &'static str,
    pub help: &'static str,
    pub run: fn(&[&str]) -> CmdResult,
}
