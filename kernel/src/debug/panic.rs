//! The panic path: `Kernel panic - not syncing: ...`, the cross-stack
//! backtrace, the end marker, then failure reported to the runner.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::backtrace::print_trace;
use crate::arch::cpu;
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::drivers::serial;
use crate::println;

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    ::x86_64::instructions::interrupts::disable();
    serial::unlock_for_dying_cpu();
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
    print_trace(cpu::stack_pointer(), cpu::frame_pointer());
    super::nmi_backtrace::trigger_all_cpu_backtrace(true);
    println!("---[ end Kernel panic - not syncing: {message} ]---");
    exit(ExitCode::Failure)
}
