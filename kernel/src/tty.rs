//! Console input (Linux `drivers/tty`): bytes from COM1's receive
//! interrupt (IRQ 4 through the I/O APIC), or polled before it is routed,
//! and a reader that sleeps until one comes. Output is `console`'s; this is
//! the half that needs the scheduler.

use core::sync::atomic::{AtomicU64, Ordering};

/// Bytes received by the interrupt handler, not yet read.
static INPUT: crate::sync::IrqMutex<alloc::collections::VecDeque<u8>> =
    crate::sync::IrqMutex::new(alloc::collections::VecDeque::new());
/// Set once the receive interrupt is routed.
static IRQ_DRIVEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
/// Where a reader sleeps until input arrives.
static INPUT_WAIT: crate::sched::WaitQueue = crate::sched::WaitQueue::new("ttyS0 input");
/// Bytes the receive interrupt has taken from the UART.
pub static RECEIVED_BY_IRQ: AtomicU64 = AtomicU64::new(0);
/// Most bytes kept; more are dropped (the shell reads far faster).
const INPUT_MAX: usize = 4096;

/// The COM1 receive interrupt: drain the UART (so its line drops and the
/// next byte raises a new edge) and wake the reader.
pub fn receive_irq() {
    let mut q = INPUT.lock();
    while let Some(b) = crate::console::try_read_uart() {
        RECEIVED_BY_IRQ.fetch_add(1, Ordering::Relaxed);
        if q.len() < INPUT_MAX {
            q.push_back(b);
        }
    }
    drop(q);
    INPUT_WAIT.wake_up();
}

pub fn set_irq_driven() {
    IRQ_DRIVEN.store(true, Ordering::SeqCst);
}

/// A received byte if one is there, without waiting.
pub fn try_read_byte() -> Option<u8> {
    if IRQ_DRIVEN.load(Ordering::SeqCst) {
        INPUT.lock().pop_front()
    } else {
        crate::console::try_read_uart()
    }
}

/// The next input byte: sleep until the receive interrupt brings one (or,
/// before it is routed, poll once a tick).
pub fn read_byte() -> u8 {
    loop {
        if let Some(b) = try_read_byte() {
            return b;
        }
        if IRQ_DRIVEN.load(Ordering::SeqCst) {
            INPUT_WAIT.wait_until(|| !INPUT.lock().is_empty());
        } else {
            crate::sched::sleep_ms(1);
        }
    }
}
