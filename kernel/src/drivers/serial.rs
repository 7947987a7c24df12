//! The serial console on COM1 (a 16550 UART): `print!`/`println!` and polled input.
//!
//! One lock guards the port. The oops and panic paths may interrupt a holder
//! of that lock (on this CPU or another) and must still print, so they call
//! `force_unlock` first: a garbled line beats a silent hang.

use core::fmt::{self, Write};

use spin::Mutex;
use uart_16550::SerialPort;

const COM1: u16 = 0x3f8;

// SAFETY: 0x3f8 is COM1 on every PC QEMU emulates, and only this static drives it.
static PORT: Mutex<SerialPort> = Mutex::new(unsafe { SerialPort::new(COM1) });

pub fn init() {
    PORT.lock().init();
}

/// Writes bytes unchanged (no translation of backspace or newline).
struct Raw<'a>(&'a mut SerialPort);

impl Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.0.send_raw(b);
        }
        Ok(())
    }
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let mut port = PORT.lock();
    let _ = Raw(&mut port).write_fmt(args);
}

/// Send raw bytes (the line editor's echo and erase sequences).
pub fn write_bytes(bytes: &[u8]) {
    let mut port = PORT.lock();
    for &b in bytes {
        port.send_raw(b);
    }
}

/// A received byte, if one is waiting.
pub fn try_read_byte() -> Option<u8> {
    PORT.lock().try_receive().ok()
}

/// Break the console lock so a dying CPU can print.
///
/// # Safety
/// Only for paths that never return to the interrupted holder (oops, panic):
/// the holder's half-written line is abandoned.
pub unsafe fn force_unlock() {
    // SAFETY: the caller guarantees the previous holder never resumes its write.
    unsafe { PORT.force_unlock() };
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::drivers::serial::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}
