//! The console: `print!`/`println!` through one lock, the dying CPU's way
//! past that lock, and input (by COM1's receive interrupt, else polled).
//! The UART itself is `drivers::uart`.
//!
//! The console lock records which CPU holds it. An exception handler that
//! interrupts a print on the *same* CPU (an #MC or #DB in the middle of a
//! `println!`, or while the shell polls the UART) writes straight through:
//! waiting would deadlock, since the holder cannot run until the handler
//! returns. Its text may land in the middle of the interrupted line — Linux's
//! printk from NMI context had the same trade-off before per-CPU buffers.
//! The oops and panic paths may also break the lock of another CPU
//! (`force_unlock`): a garbled line beats a silent hang.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use uart_16550::SerialPort;

use crate::drivers::uart::{self, Raw};

const NO_OWNER: u64 = u64::MAX;

struct Console {
    port: UnsafeCell<SerialPort>,
    /// CPU id of the holder, or NO_OWNER.
    owner: AtomicU64,
}

// SAFETY: `port` is only touched by the CPU recorded in `owner` (or, nested,
// by an exception handler on that same CPU, which runs while the interrupted
// holder cannot).
unsafe impl Sync for Console {}

static CONSOLE: Console = Console {
    // SAFETY: only this static drives COM1.
    port: UnsafeCell::new(unsafe { uart::com1() }),
    owner: AtomicU64::new(NO_OWNER),
};

fn with_port<R>(f: impl FnOnce(&mut SerialPort) -> R) -> R {
    let me = crate::arch::percpu::current_cpu_id() as u64;
    if CONSOLE.owner.load(Ordering::Acquire) == me {
        // We interrupted our own CPU's print: write through, keep its lock.
        // SAFETY: the interrupted holder is suspended until we return.
        return f(unsafe { &mut *CONSOLE.port.get() });
    }
    // Interrupts off while holding it: a thread preempted mid-print would
    // otherwise leave the lock "owned by this CPU" for the next thread.
    x86_64::instructions::interrupts::without_interrupts(|| {
        let take = || CONSOLE.owner.compare_exchange(NO_OWNER, me, Ordering::Acquire, Ordering::Relaxed).is_ok();
        let mut locked = take();
        if !locked && must_not_wait() {
            crate::time::spin_until(BOUNDED_WAIT_MS, || {
                locked = take();
                locked || holder_stuck()
            });
        } else if !locked {
            // Normal context: wait for the holder, however long.
            while !take() {
                core::hint::spin_loop();
            }
            locked = true;
        }
        if !locked {
            // NMI or dying context, and the holder cannot finish (it is in
            // an NMI itself, or parked) or did not within the bound: write
            // through. A garbled line beats a hang (Linux busts console
            // locks on panic; its NMIs never take them).
            // SAFETY: the holder is suspended or gone; at worst bytes interleave.
            return f(unsafe { &mut *CONSOLE.port.get() });
        }
        // SAFETY: we own the console until the store below.
        let r = f(unsafe { &mut *CONSOLE.port.get() });
        CONSOLE.owner.store(NO_OWNER, Ordering::Release);
        r
    })
}

/// Set once the kernel is dying (panic, fatal oops): from then on no wait
/// for the console is unbounded (Linux `oops_in_progress`).
static BUSTED: AtomicBool = AtomicBool::new(false);
/// How long an NMI or a dying CPU waits for another CPU's line.
const BOUNDED_WAIT_MS: u64 = 50;

/// NMI context (another CPU's print may be the one this NMI interrupted,
/// or be stuck behind this CPU's NMI work) or a dying kernel.
fn must_not_wait() -> bool {
    BUSTED.load(Ordering::Relaxed) || (crate::arch::percpu::ready() && crate::arch::percpu::this_cpu().nmi_depth() > 0)
}

/// The console's holder is in an NMI handler: its print is suspended until
/// that NMI returns, which may wait on us.
fn holder_stuck() -> bool {
    let owner = CONSOLE.owner.load(Ordering::Acquire);
    owner != NO_OWNER
        && (owner as usize) < crate::layout::MAX_CPUS
        && crate::arch::percpu::of(owner as usize).nmi_depth() > 0
}

/// The kernel is dying: bound every later console wait on every CPU.
pub fn bust() {
    BUSTED.store(true, Ordering::SeqCst);
}

/// A CPU that parks for good (stopped by a dying CPU) lets go of the
/// console if the print it interrupted held it.
pub fn release_if_mine() {
    let me = crate::arch::percpu::current_cpu_id() as u64;
    let _ = CONSOLE.owner.compare_exchange(me, NO_OWNER, Ordering::AcqRel, Ordering::Relaxed);
}

pub fn init() {
    with_port(|p| p.init());
}

/// Drop every print (Linux's `console_loglevel` turned to nothing) — what
/// `ktest -q` does around each test body. A dying kernel (`bust`) prints
/// regardless.
static MUTED: AtomicBool = AtomicBool::new(false);

pub fn set_muted(muted: bool) {
    MUTED.store(muted, Ordering::SeqCst);
}

fn muted() -> bool {
    MUTED.load(Ordering::Relaxed) && !BUSTED.load(Ordering::Relaxed)
}

#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    if muted() {
        return;
    }
    with_port(|p| {
        let _ = Raw(p).write_fmt(args);
    });
}

/// Send raw bytes (the line editor's echo and erase sequences).
pub fn write_bytes(bytes: &[u8]) {
    if muted() {
        return;
    }
    with_port(|p| bytes.iter().for_each(|&b| p.send_raw(b)));
}

/// A received byte, if one is waiting in the UART (polling; the input
/// side, `tty`, calls it under the console lock like every port access).
pub fn try_read_uart() -> Option<u8> {
    with_port(|p| p.try_receive().ok())
}

/// Run `f` while this CPU holds the console lock, as if interrupted in the
/// middle of a print (the ktest of the write-through rule uses it).
pub fn while_holding_console(f: impl FnOnce()) {
    with_port(|_| f());
}

/// Whether some CPU holds the console lock.
pub fn console_held() -> bool {
    CONSOLE.owner.load(Ordering::Acquire) != NO_OWNER
}

/// A dying CPU (oops, panic) needs the console. If this CPU holds the lock,
/// the print it interrupted never finishes: release it. If another CPU
/// holds it, let that CPU finish its line; break the lock only if it cannot
/// (it is stuck in an NMI) or has not within a second: a garbled line beats
/// a silent hang. A lock another CPU took again after the wait saw it free
/// is left alone (the oops's prints wait for it line by line): breaking it
/// then cut an oops into another CPU's `chatter` line in the soak.
pub fn unlock_for_dying_cpu() {
    let me = crate::arch::percpu::current_cpu_id() as u64;
    let owner = || CONSOLE.owner.load(Ordering::Acquire);
    let settled = crate::time::spin_until(DYING_CPU_WAIT_MS, || owner() == NO_OWNER || owner() == me || holder_stuck());
    let held = owner();
    if held == me || (held != NO_OWNER && (!settled || holder_stuck())) {
        // SAFETY: see above; this CPU never returns to the interrupted print,
        // or the holder cannot finish.
        unsafe { force_unlock() };
    }
}

/// How long a dying CPU lets another CPU finish its line.
const DYING_CPU_WAIT_MS: u64 = 1000;

/// Break the console lock so a dying CPU can print.
///
/// # Safety
/// Only for paths that never return to the interrupted holder (oops, panic):
/// the holder's half-written line is abandoned.
pub unsafe fn force_unlock() {
    CONSOLE.owner.store(NO_OWNER, Ordering::Release);
}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::_print(format_args!($($arg)*)));
}

#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}
