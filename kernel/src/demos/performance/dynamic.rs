//! The dynamic-stack benches (docs/dynamic-stacks.md): a growth fault,
//! spawn + join on a dynamic stack, an IRQ through the entry stack. They
//! arm dynamic stacks (for the rest of the boot): `bench all` runs them last.

use super::entries::int_switch;
use super::*;

/// The growth fault at its shortest: the fault's delivery and return (as
/// an interrupt into a Rust handler), a four-level walk to the entry, a
/// frame popped from the reserve (two), the entry stored.
const MIN_GROWTH: u64 = MIN_INTERRUPT + 4 + 2 + 1;

/// Samples of one growth fault each, taken by `growth_thread`.
static GROWTH: crate::sync::IrqMutex<Vec<u64>> = crate::sync::IrqMutex::new(Vec::new());

/// On a dynamic stack: give back every page below RSP - 1 KiB and top up
/// the reserve as a context switch would (not timed), then time one store
/// onto the top word of the page below.
fn growth_thread(_: u64) -> i64 {
    let me = sched::current().expect("a thread");
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let keep = (cpu::stack_pointer() - 1024) & !(crate::layout::PAGE_SIZE - 1);
        crate::stacks::dynamic::give_back_below(me.stack.bottom, me.stack.top(), keep);
        crate::stacks::dynamic::refill();
        let at = (keep - 8) as *mut u64;
        let t0 = time::rdtsc();
        // SAFETY: the top word of a growable page of this thread's own
        // stack, below everything live on it: the fault backs it.
        unsafe { at.write_volatile(0) };
        samples.push(time::rdtsc() - t0);
    }
    *GROWTH.lock() = samples;
    0
}

fn dynamic_stack() -> sched::StackRequest {
    sched::StackRequest { size: crate::layout::THREAD_SIZE, limit: None, dynamic: true }
}

fn spawn_join_dynamic() -> Result<(), CmdError> {
    let pid = sched::spawn_with_stack("bench-noop", noop, 0, here(), dynamic_stack()).map_err(failed)?;
    sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))?;
    Ok(())
}

pub(super) fn bench_dynamic() -> CmdResult {
    crate::demos::dynamic_stacks::arm()?;
    let grown = crate::stacks::dynamic::grown_pages();
    let pid = sched::spawn_with_stack("bench-grow", growth_thread, 0, here(), dynamic_stack()).map_err(failed)?;
    sched::join(pid).map_err(|e| failed(alloc::format!("{e}")))?;
    let samples = core::mem::take(&mut *GROWTH.lock());
    if crate::stacks::dynamic::grown_pages() - grown < SAMPLES as u64 {
        return Err(failed("the growth bench's stores did not all fault"));
    }
    row("growth fault: #PF on its stack maps one page", samples, MIN_GROWTH);
    let (hot, cold) = hot_and_cold(spawn_join_dynamic)?;
    // A dynamic stack's reuse clears and scans one page, not four.
    let pages = crate::layout::THREAD_SIZE / crate::layout::PAGE_SIZE;
    row("spawn + run + exit + join (dynamic stack, cached)", hot, MIN_SPAWN - (pages - 1) * MIN_SPAWN_PAGE);
    row("spawn + run + exit + join (dynamic stack, new)", cold, MIN_SPAWN_COLD - (pages - 1) * MIN_SPAWN_PAGE);
    if !skipped_under_kvm("IRQ entry through the entry stack (int N)") {
        let samples = timed(SAMPLES, int_switch);
        row("IRQ entry through the entry stack and the IRQ stack", samples, MIN_IRQ_SWITCH);
    }
    Ok(())
}
