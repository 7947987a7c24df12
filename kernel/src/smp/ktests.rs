//! ktests of the function-call IPI (above the stacks they check).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::percpu::{self, this_cpu};
use crate::kcheck;
use crate::ktest::{KResult, KTest};
use crate::layout::MAX_CPUS;

pub static KTESTS: &[KTest] =
    &[KTest { name: "call_runs_on_each_cpus_own_irq_stack", run: call_runs_on_each_cpus_own_irq_stack, oopses: false }];

/// Per CPU: the stack pointer its call ran on (0 = did not run), and the
/// address of the per-CPU area its GS base pointed at.
static SP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static AREA: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn record(_: u64) {
    let me = this_cpu();
    SP[me.id()].store(crate::arch::cpu::stack_pointer(), Ordering::SeqCst);
    AREA[me.id()].store(me as *const _ as u64, Ordering::SeqCst);
}

/// A function call reaches every other online CPU once, runs in hard-IRQ
/// context on *that* CPU's IRQ stack, with GS on that CPU's own area.
fn call_runs_on_each_cpus_own_irq_stack() -> KResult {
    SP.iter().chain(AREA.iter()).for_each(|a| a.store(0, Ordering::SeqCst));
    let me = percpu::current_cpu_id();
    let others = percpu::online_cpus().filter(|&c| c != me).count() as u64;
    let ran = super::call_on(percpu::online_cpus(), record, 0);
    kcheck!(ran == others, "{ran} CPUs ran the call, {others} others are online");
    for cpu in percpu::online_cpus().filter(|&c| c != me) {
        let sp = SP[cpu].load(Ordering::SeqCst);
        let (bottom, top) = crate::stacks::irq::range(cpu).ok_or("no IRQ stack")?;
        kcheck!(
            (bottom..top).contains(&sp),
            "CPU {cpu}'s call ran at {sp:#x}, not on its IRQ stack {bottom:#x}..{top:#x}"
        );
        let area = AREA[cpu].load(Ordering::SeqCst);
        kcheck!(area == percpu::of(cpu) as *const _ as u64, "CPU {cpu}'s GS pointed at {area:#x}");
    }
    kcheck!(SP[me].load(Ordering::SeqCst) == 0, "the call also ran on the calling CPU");
    Ok(())
}
