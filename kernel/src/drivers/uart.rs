//! COM1, a 16550 UART: the serial line the console prints to and reads
//! from. The `uart_16550` crate drives its registers; this file only says
//! which port it is and how bytes go out unchanged. Who may touch the port
//! when is the console's business (`console.rs`).

use core::fmt::{self, Write};

use uart_16550::SerialPort;

/// COM1's I/O base on every PC QEMU emulates.
const COM1: u16 = 0x3f8;

/// The COM1 port.
///
/// # Safety
/// Only one `SerialPort` for COM1 may be in use at a time (the console
/// owns the one it makes).
pub const unsafe fn com1() -> SerialPort {
    // SAFETY: per the contract; 0x3f8 is COM1.
    unsafe { SerialPort::new(COM1) }
}

/// A writer that sends bytes unchanged (no translation of backspace or
/// newline, which the line editor relies on).
pub struct Raw<'a>(pub &'a mut SerialPort);

impl Write for Raw<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            self.0.send_raw(b);
        }
        Ok(())
    }
}
