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

pub struct Spec {
    pub name: &'static str,
    /// Arguments as shown by `help` ("" for none).
    pub usage: &'static str,
    pub help: &'static str,
    pub run: fn(&[&str]) -> CmdResult,
}
