//! The #PF entry's first handler, where stack growth is decided
//! (docs/dynamic-stacks.md). Off (the default) #PF runs on the stack that
//! faulted, as in Linux; armed for dynamic thread stacks, on its own IST
//! stack — a fault pushing onto an unbacked page of a thread stack can then
//! still be delivered, and is never a #DF.

use crate::arch::regs::{read_cr2, Regs, REGS_SIZE};
use crate::arch::vectors::{FIRST_EXTERNAL_VECTOR, X86_TRAP_PF};
use crate::layout::{estack_range, EStack, Ist};
use crate::stacks::dynamic::{self, Growth};

/// #PF error code: the page was present (a protection fault, never growth).
const PF_PRESENT: u64 = 1;

/// Called by `tristack_pf_common` for every #PF from kernel mode, on the
/// #PF stack (armed) or the faulting stack. Returns 0 when the stack grew
/// (return to the faulting instruction), else the `Regs` the ordinary #PF
/// handler runs with: a copy below the interrupted RSP when this is the #PF
/// stack (so the stack is free for the next fault, as `sync_regs` frees an
/// IST stack for an entry from user mode), the frame itself otherwise.
#[instrument_fn = "off"]
pub extern "C" fn pf_entry(regs: &mut Regs) -> u64 {
    let cr2 = read_cr2();
    if regs.error_code & PF_PRESENT == 0 {
        match dynamic::grow(cr2, regs.rsp) {
            Growth::Grew => return 0,
            Growth::NoFrame => super::traps::stack_growth_failed(regs, cr2),
            Growth::NotOurs => {}
        }
    }
    let here = regs as *mut Regs as u64;
    if !on_pf_stack(here) {
        return here;
    }
    // The stack it hit is dead (a guard page): report from here, as #DF
    // would have without this stack. The oops resets IST[PF].
    if crate::stacks::info::guard_hit(cr2).is_some() {
        super::traps::exception_dispatch(regs);
    }
    // Where the CPU would have pushed this frame without an IST: below the
    // interrupted RSP, 16-byte aligned. Writing there may fault in turn (a
    // growable page): that #PF lands on #PF1 and grows the stack.
    let at = (regs.rsp & !15) - REGS_SIZE as u64;
    // SAFETY: the interrupted kernel stack below its RSP is free (no red
    // zone in this kernel), and `at` is 16-byte aligned inside it.
    unsafe { (at as *mut Regs).write(core::ptr::read(regs)) };
    at
}

/// Whether `addr` is on this CPU's #PF or #PF1 stack.
fn on_pf_stack(addr: u64) -> bool {
    let cpu = crate::arch::percpu::current_cpu_id();
    [EStack::PF, EStack::PF1].iter().any(|&k| {
        let (bottom, top) = estack_range(cpu, k);
        (bottom..top).contains(&addr)
    })
}

/// Move #PF onto its IST stack and external interrupts onto the entry
/// stack, for good (`stacks::dynamic::arm`). Each change is one store into
/// the shared IDT: every CPU takes its next event one way or the other,
/// and both ways work. (`bench irq`'s no-switch vector stays as it is.)
pub fn arm_dynamic_stacks() {
    crate::arch::idt::set_gate_ist(X86_TRAP_PF, Some(Ist::PF));
    for vector in FIRST_EXTERNAL_VECTOR..=u8::MAX {
        if vector != crate::arch::vectors::BENCH_NOSWITCH_VECTOR {
            crate::arch::idt::retarget_gate(vector, super::irq_replay_stub(usize::from(vector)), Ist::ENTRY);
        }
    }
}
