//! Ending the boot through QEMU's `isa-debug-exit` device (iobase 0xf4).
//!
//! QEMU exits with `(value << 1) | 1`; the runner turns 33 into status 0 and
//! 35 into status 1. Without the device the write does nothing and we halt.

use x86_64::instructions::port::Port;

const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    Success = 0x10,
    Failure = 0x11,
}

pub fn exit(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is the isa-debug-exit device the runner configures;
    // writing it has no effect on memory.
    unsafe { Port::<u32>::new(ISA_DEBUG_EXIT_PORT).write(code as u32) };
    loop {
        ::x86_64::instructions::hlt();
    }
}
