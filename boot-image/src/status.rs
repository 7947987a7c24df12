//! How QEMU ended → the runner's exit status (DESIGN.md, "Runner").
//!
//! The kernel ends a boot by writing to QEMU's `isa-debug-exit` device; QEMU
//! then exits with `(value << 1) | 1`. QEMU's own status 0 means the guest
//! reset (with `-no-reboot`: a triple fault) and is never a success.

/// Value the kernel writes to isa-debug-exit for success (QEMU exits 33).
pub const DEBUG_EXIT_SUCCESS: u32 = 0x10;
/// Value the kernel writes to isa-debug-exit for failure (QEMU exits 35).
pub const DEBUG_EXIT_FAILURE: u32 = 0x11;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The kernel powered off with success.
    Success,
    /// The kernel reported failure (failed command, failed ktest, oops, panic).
    KernelFailure,
    /// QEMU exited for a reason the kernel did not report (e.g. a QEMU error).
    QemuError(Option<i32>),
    /// The guest reset without reporting: a triple fault.
    Reset,
    /// The runner killed QEMU after this many seconds.
    Timeout(u64),
    /// The person at the console left with QEMU's escape key (Ctrl-] x).
    Left,
}

impl Outcome {
    /// Classify QEMU's exit code (`None` when it died from a signal).
    pub fn from_qemu_status(code: Option<i32>) -> Self {
        match code {
            Some(c) if c == ((DEBUG_EXIT_SUCCESS << 1) | 1) as i32 => Outcome::Success,
            Some(c) if c == ((DEBUG_EXIT_FAILURE << 1) | 1) as i32 => Outcome::KernelFailure,
            Some(0) => Outcome::Reset,
            other => Outcome::QemuError(other),
        }
    }

    pub fn exit_status(self) -> u8 {
        match self {
            Outcome::Success | Outcome::Left => 0,
            Outcome::KernelFailure | Outcome::QemuError(_) => 1,
            Outcome::Reset => 3,
            Outcome::Timeout(_) => 124,
        }
    }

    /// What the runner says on stderr about this ending, if anything.
    pub fn message(self) -> Option<String> {
        match self {
            Outcome::Success => None,
            Outcome::Left => Some("left the session with Ctrl-] x (exit status 0)".into()),
            Outcome::KernelFailure => Some("kernel reported failure (exit status 1)".into()),
            Outcome::QemuError(Some(c)) => Some(format!("qemu exited with status {c} (exit status 1)")),
            Outcome::QemuError(None) => Some("qemu was killed by a signal (exit status 1)".into()),
            Outcome::Reset => Some("guest reset without reporting (triple fault?) (exit status 3)".into()),
            Outcome::Timeout(secs) => {
                Some(format!("timeout: killed QEMU after {secs} s (--timeout {secs}) (exit status 124)"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exit_codes_map_to_runner_statuses() {
        assert_eq!(Outcome::from_qemu_status(Some(33)).exit_status(), 0);
        assert_eq!(Outcome::from_qemu_status(Some(35)).exit_status(), 1);
        assert_eq!(Outcome::from_qemu_status(Some(0)).exit_status(), 3);
        assert_eq!(Outcome::from_qemu_status(Some(1)).exit_status(), 1);
        assert_eq!(Outcome::from_qemu_status(None).exit_status(), 1);
        assert_eq!(Outcome::Timeout(5).exit_status(), 124);
    }

    #[test]
    fn qemu_zero_is_never_success() {
        assert_eq!(Outcome::from_qemu_status(Some(0)), Outcome::Reset);
    }

    #[test]
    fn timeout_message_names_the_timeout() {
        assert!(Outcome::Timeout(7).message().unwrap().contains("--timeout 7"));
    }
}
