//! External interrupts, the handler (Linux `common_interrupt`): dispatch
//! by vector on the IRQ stack, EOI, softirqs at the outermost exit, and the
//! way back to a thread (where preemption happens). The stack switch itself
//! is the stub's (`entry/mod.rs`); the vector registry is `arch::irq`.

use core::sync::atomic::Ordering;

use crate::arch::apic;
use crate::arch::irq::handler;
use crate::arch::percpu::this_cpu;
use crate::arch::regs::Regs;
use crate::arch::vectors::{LOCAL_TIMER_VECTOR, SPURIOUS_APIC_VECTOR};

crate::define_per_cpu! {
    /// Deepest `irq_count` seen on this CPU (0 = never nested).
    pub static IRQ_MAX_NEST: core::sync::atomic::AtomicI64 = core::sync::atomic::AtomicI64::new(0);
}

crate::define_per_cpu! {
    /// Interrupts taken on this CPU, per vector (external vectors 32..256).
    pub static IRQ_COUNTS: [core::sync::atomic::AtomicU64; 256] = [const { core::sync::atomic::AtomicU64::new(0) }; 256];
}

/// Called by `tristack_irq_common` on the IRQ stack (or, nested, wherever
/// the outer handler was), interrupts off, `irq_count` already incremented.
pub extern "C" fn irq_dispatch(regs: &mut Regs) {
    let cpu = this_cpu();
    let vector = regs.vector as u8;
    if regs.from_user() {
        crate::entry::enter_from_user_mode();
        cpu.user.irqs.fetch_add(1, Ordering::Relaxed);
        let here = crate::arch::cpu::stack_pointer();
        if crate::stacks::irq::range(cpu.id()).is_some_and(|(bottom, top)| (bottom..top).contains(&here)) {
            cpu.user.irqs_on_irq_stack.fetch_add(1, Ordering::Relaxed);
        }
    }
    IRQ_COUNTS.this()[vector as usize].fetch_add(1, Ordering::Relaxed);
    let depth = cpu.irq_count.load(Ordering::Relaxed);
    IRQ_MAX_NEST.this().fetch_max(depth, Ordering::Relaxed);
    match vector {
        LOCAL_TIMER_VECTOR => {
            crate::entry::timer_tick(cpu.id());
            apic::eoi();
        }
        // A spurious interrupt is not in service: no EOI (SDM 10.9).
        SPURIOUS_APIC_VECTOR => return,
        v => {
            apic::eoi();
            match handler(v) {
                Some(h) => h(regs),
                None => crate::println!("irq: unexpected vector {v:#x}"),
            }
        }
    }
    crate::entry::irq_exit(depth);
}

/// Called by the entry code once `irq_count` is back at -1, on the
/// interrupted thread's stack: the one place a thread is preempted.
pub extern "C" fn irq_exit_to_thread(_regs: &mut Regs) {
    crate::entry::irqentry_exit_to_kernel();
}
