//! How a joined thread ended, and why there was none to join: the
//! results of `join`, with the words commands print for them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinError {
    NoSuchTask,
    SelfJoin,
}

impl core::fmt::Display for JoinError {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(match self {
            JoinError::NoSuchTask => "no such thread (never started, or already reaped)",
            JoinError::SelfJoin => "a thread cannot wait for itself",
        })
    }
}

/// How a joined thread ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Exited(i64),
    /// Killed by an oops.
    Killed,
}

impl core::fmt::Display for Ended {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match *self {
            Ended::Exited(code) if code < 0 => write!(f, "killed by signal {}", -code),
            Ended::Exited(code) => write!(f, "exited with status {code}"),
            Ended::Killed => f.write_str("killed by an oops"),
        }
    }
}

/// "exited with status 0", or why there was no one to join, for messages.
pub fn describe(how: &Result<Ended, JoinError>) -> alloc::string::String {
    match how {
        Ok(e) => alloc::format!("{e}"),
        Err(e) => alloc::format!("{e}"),
    }
}
