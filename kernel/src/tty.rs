//! Console input (Linux `drivers/tty`): bytes from COM1's receive
//! interrupt (IRQ 4 through the I/O APIC), or polled before it is routed,
//! and a reader that sleeps until one comes. Output is `console`'s; this is
//! the half that needs the scheduler.
//!
//! Ctrl-C is the interrupt character, as with Linux's `ISIG`: each one
//! bumps a count that long work polls (`Interrupt::pending`) — the shell
//! thread cannot be stopped from outside, so a long demo asks. While the
//! shell is not at its prompt the byte is not queued and what was typed ahead is
//! flushed (Linux flushes on `^C` unless `NOFLSH`); at the prompt it reaches
//! the line editor, which cancels the line. A user process the shell waits
//! for is the terminal's foreground (`Foreground`): Ctrl-C ends it as
//! Linux's SIGINT would.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Bytes received by the interrupt handler, not yet read.
static INPUT: crate::sync::IrqMutex<alloc::collections::VecDeque<u8>> =
    crate::sync::IrqMutex::new(alloc::collections::VecDeque::new());
/// Set once the receive interrupt is routed.
static IRQ_DRIVEN: AtomicBool = AtomicBool::new(false);
/// Where a reader sleeps until input arrives.
static INPUT_WAIT: crate::sched::WaitQueue = crate::sched::WaitQueue::new("ttyS0 input");
/// Bytes the receive interrupt has taken from the UART.
pub static RECEIVED_BY_IRQ: AtomicU64 = AtomicU64::new(0);
/// Most bytes kept; more are dropped (the shell reads far faster).
const INPUT_MAX: usize = 4096;
/// The interrupt character (`stty intr`).
pub const INTR: u8 = 0x03;
/// Ctrl-Cs received so far.
static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
/// The shell shows its prompt and reads a line (set before the prompt is
/// printed, so that whatever is typed after it appeared counts as typed at it).
static AT_PROMPT: AtomicBool = AtomicBool::new(false);
/// The user process Ctrl-C ends (0: none), Linux's `tty->pgrp`.
static FOREGROUND: AtomicU64 = AtomicU64::new(0);

/// The COM1 receive interrupt: drain the UART (so its line drops and the
/// next byte raises a new edge) and wake the reader.
pub fn receive_irq() {
    let mut q = INPUT.lock();
    while let Some(b) = crate::console::try_read_uart() {
        RECEIVED_BY_IRQ.fetch_add(1, Ordering::Relaxed);
        if b == INTR {
            INTERRUPTS.fetch_add(1, Ordering::SeqCst);
            let fg = FOREGROUND.load(Ordering::SeqCst);
            if fg != 0 {
                // Gone already, or not a user process: nothing to end.
                let _ = crate::sched::kill_with(fg as crate::sched::Pid, crate::sched::KILLED_BY_SIGINT);
            }
            if !AT_PROMPT.load(Ordering::SeqCst) {
                q.clear();
                continue;
            }
        }
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

/// The shell is about to show its prompt (true) or has a line to run (false):
/// Ctrl-C at the prompt edits the line, during a command it interrupts.
pub fn set_at_prompt(at: bool) {
    AT_PROMPT.store(at, Ordering::SeqCst);
}

/// A mark taken when long work starts: `pending` once Ctrl-C has been
/// pressed since.
#[derive(Clone, Copy)]
pub struct Interrupt(u64);

impl Interrupt {
    pub fn mark() -> Self {
        Interrupt(INTERRUPTS.load(Ordering::SeqCst))
    }

    /// Ctrl-C came after the mark. Before the receive interrupt is routed
    /// (boot), this polls the UART itself.
    pub fn pending(&self) -> bool {
        if !IRQ_DRIVEN.load(Ordering::SeqCst) && crate::console::try_read_uart() == Some(INTR) {
            INTERRUPTS.fetch_add(1, Ordering::SeqCst);
        }
        INTERRUPTS.load(Ordering::SeqCst) != self.0
    }
}

/// While alive, user process `pid` is the terminal's foreground: Ctrl-C ends it.
pub struct Foreground(());

impl Foreground {
    pub fn set(pid: crate::sched::Pid) -> Self {
        FOREGROUND.store(u64::from(pid), Ordering::SeqCst);
        Foreground(())
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        FOREGROUND.store(0, Ordering::SeqCst);
    }
}
