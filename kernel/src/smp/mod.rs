//! More than one CPU: bringing the APs up, and the IPIs CPUs send each other
//! (Linux `kernel/smp.c`, `arch/x86/kernel/smp.c`, `arch/x86/mm/tlb.c`).
//!
//! - Reschedule IPI: "your run queue changed" — the handler does nothing;
//!   the IRQ exit back to the interrupted thread is where it reschedules.
//! - Function call IPI: run a function on another CPU, in hard-IRQ context
//!   on its IRQ stack, and wait until it has run. TLB shoot-down
//!   (`tlb`) is one.
//!
//! Bringing the other CPUs up (`bringup`) sits higher: it needs the
//! scheduler (idle tasks) and softirqs (ksoftirqd), which need the IPIs.
//!
//! Waiting for another CPU with interrupts off would deadlock if that CPU
//! waits for us the same way, so a waiter with interrupts off runs the calls
//! queued for its own CPU while it spins.

pub mod bringup;
pub mod ktests;
pub mod tlb;

use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::arch::{apic, irq};
use crate::layout::MAX_CPUS;
use crate::sync::IrqMutex;
use crate::time;

use crate::arch::vectors::{CALL_FUNCTION_SINGLE_VECTOR, RESCHEDULE_VECTOR};

/// A function call request: run `func(arg)`, then count it in `*done`.
#[derive(Clone, Copy)]
struct Call {
    func: fn(u64),
    arg: u64,
    /// Address of the sender's `AtomicU64` counter (the sender waits, so it lives).
    done: u64,
}

static CALL_QUEUES: [IrqMutex<VecDeque<Call>>; MAX_CPUS] = [const { IrqMutex::new(VecDeque::new()) }; MAX_CPUS];

/// Register the IPI handlers (the vectors are shared by every CPU).
pub fn init() {
    irq::register(RESCHEDULE_VECTOR, |_: &mut Regs| {}, "RES    Rescheduling interrupts");
    irq::register(CALL_FUNCTION_SINGLE_VECTOR, call_function_interrupt, "CAL    Function call interrupts");
}

fn apic_id_of(cpu: usize) -> u32 {
    percpu::of(cpu).apic_id.load(Ordering::Relaxed)
}

/// Ask `cpu` to reschedule (Linux `smp_send_reschedule`).
pub fn send_reschedule(cpu: usize) {
    if percpu::is_online(cpu) {
        apic::send_ipi(apic_id_of(cpu), RESCHEDULE_VECTOR);
    }
}

/// Send `cpu` an NMI (`nmi-storm`, NMI backtraces).
pub fn send_nmi(cpu: usize) {
    apic::send_nmi(apic_id_of(cpu));
}

fn call_function_interrupt(_: &mut Regs) {
    run_queued_calls();
}

/// Run every call queued for this CPU (interrupts off).
fn run_queued_calls() {
    let queue = &CALL_QUEUES[this_cpu().id()];
    loop {
        // The queue's lock is released before the call runs.
        let Some(call) = queue.lock().pop_front() else { break };
        (call.func)(call.arg);
        // SAFETY: `done` is the sender's counter; it waits until we count.
        unsafe { &*(call.done as *const AtomicU64) }.fetch_add(1, Ordering::Release);
    }
}

/// Run `func(arg)` on every CPU in `cpus` other than this one, in hard-IRQ
/// context there, and wait until all have run it (Linux
/// `smp_call_function_many` with `wait`). Returns how many ran it.
pub fn call_on(cpus: impl Iterator<Item = usize>, func: fn(u64), arg: u64) -> u64 {
    let done = AtomicU64::new(0);
    let me = percpu::current_cpu_id();
    let mut sent = 0;
    for cpu in cpus.filter(|&c| c != me && percpu::is_online(c)) {
        CALL_QUEUES[cpu].lock().push_back(Call { func, arg, done: &done as *const AtomicU64 as u64 });
        apic::send_ipi(apic_id_of(cpu), CALL_FUNCTION_SINGLE_VECTOR);
        sent += 1;
    }
    let all_ran = time::spin_until(CALL_TIMEOUT_MS, || {
        if !::x86_64::instructions::interrupts::are_enabled() {
            run_queued_calls();
        }
        done.load(Ordering::Acquire) >= sent
    });
    if !all_ran {
        // Never return while a CPU may still write `done` on our stack.
        panic!(
            "smp: {} of {sent} CPUs did not run a function call within {CALL_TIMEOUT_MS} ms",
            sent - done.load(Ordering::Acquire)
        );
    }
    sent
}

const CALL_TIMEOUT_MS: u64 = 5_000;
