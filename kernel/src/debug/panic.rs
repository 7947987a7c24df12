//! The panic path: `Kernel panic - not syncing: ...`, the cross-stack
//! backtrace, the end marker, then failure reported to the runner.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use super::backtrace::print_trace;
use crate::arch::cpu;
use crate::console;
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::println;

/// CPU id + 1 of the panicking CPU (0: none).
static PANICKING: AtomicU64 = AtomicU64::new(0);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    ::x86_64::instructions::interrupts::disable();
    console::unlock_for_dying_cpu();
    console::bust();
    let me = crate::arch::percpu::current_cpu_id() as u64 + 1;
    match PANICKING.compare_exchange(0, me, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => {}
        Err(owner) if owner == me => {
            println!("Kernel panic - not syncing: panic in the panic path: {}", info.message());
            exit(ExitCode::Failure);
        }
        // Another CPU is already panicking and will end the boot (and stop
        // this CPU by NMI): say what happened here, then wait for that.
        Err(_) => {
            println!("Kernel panic on CPU {} while another CPU panics: {}", me - 1, info.message());
            cpu::halt_forever();
        }
    }
    let message = info.message();
    match info.location() {
        Some(l) => println!("Kernel panic - not syncing: {message} ({}:{}:{})", l.file(), l.line(), l.column()),
        None => println!("Kernel panic - not syncing: {message}"),
    }
    print_trace(cpu::stack_pointer(), cpu::frame_pointer());
    super::nmi_backtrace::trigger_all_cpu_backtrace(true);
    println!("---[ end Kernel panic - not syncing: {message} ]---");
    exit(ExitCode::Failure)
}
