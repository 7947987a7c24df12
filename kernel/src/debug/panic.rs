//! The panic path: `Kernel panic - not syncing: ...`, a raw frame-pointer
//! backtrace, the end marker, then failure reported to the runner.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::backtrace::{walk_frame_pointers, WalkEnd};
use crate::arch::cpu;
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::drivers::serial;
use crate::println;

/// Deepest trace printed; a real chain this long means something is wrong.
const MAX_FRAMES: usize = 64;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    ::x86_64::instructions::interrupts::disable();
    // SAFETY: this CPU never returns to whoever held the console lock.
    unsafe { serial::force_unlock() };
    if PANICKING.swap(true, Ordering::SeqCst) {
        println!("Kernel panic - not syncing: panic in the panic path: {}", info.message());
        exit(ExitCode::Failure);
    }
    let message = info.message();
    match info.location() {
        Some(l) => println!(
            "Kernel panic - not syncing: {message} ({}:{}:{})",
            l.file(),
            l.line(),
            l.column()
        ),
        None => println!("Kernel panic - not syncing: {message}"),
    }
    print_raw_trace(cpu::frame_pointer());
    println!("---[ end Kernel panic - not syncing: {message} ]---");
    exit(ExitCode::Failure)
}

/// `Call Trace:` with one ` [<address>]` line per frame of the current stack
/// (symbol names arrive with the unwinder issue).
pub fn print_raw_trace(rbp: u64) {
    println!("Call Trace:");
    let Some((bottom, top)) = crate::boot::current_stack_bounds(cpu::stack_pointer()) else {
        println!(" (RSP {:#x} is on no known stack; no trace)", cpu::stack_pointer());
        return;
    };
    let read = |addr: u64| {
        // SAFETY: the walk only reads aligned words inside [bottom, top), the
        // stack this code is running on, which is mapped.
        unsafe { (addr as *const u64).read() }
    };
    let end = walk_frame_pointers(rbp, bottom, top, MAX_FRAMES, read, |ret| {
        println!(" [<{ret:016x}>]");
    });
    match end {
        WalkEnd::Outermost => {}
        WalkEnd::BadFramePointer(p) => println!(" (frame pointer {p:#x} outside the stack; stopped)"),
        WalkEnd::NotAscending(p) => println!(" (frame pointer {p:#x} does not ascend; stopped)"),
        WalkEnd::TooDeep => println!(" (more than {MAX_FRAMES} frames; stopped)"),
    }
}
