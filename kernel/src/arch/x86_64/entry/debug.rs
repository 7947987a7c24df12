//! #DB and #BP, the handlers (Linux `exc_debug`, `exc_int3`): from user
//! mode the thread gets the trap; in the kernel the hooks of whoever owns
//! the breakpoint claim it (`arch::debug`). Both vectors run on the #DB IST
//! stack; the entry stub shifts TSS IST[DB] down by `DB_STACK_OFFSET` while
//! a handler runs, so a #DB raised inside the handler lands on DB1, and one
//! more on the unmapped DB2 hole.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::debug::{
    disarm, read_dr, run_hooks, write_dr, DbCause, DebugEvent, DebugKind, DR6_HITS, USER_WATCH_SLOT,
};
use crate::arch::percpu::this_cpu;
use crate::arch::regs::{Regs, RFLAGS_RF};
use crate::arch::vectors::{X86_TRAP_MC, X86_TRAP_NMI};
use crate::layout::{Ist, MAX_CPUS};
use crate::println;
use crate::stacks::info;

pub fn handle_db(regs: &mut Regs) {
    let dr6 = read_dr(6);
    write_dr(6, 0); // DR6 is sticky: clear it for the next #DB
    let cause = DbCause::from_dr6(dr6, read_dr(7));
    let depth = crate::arch::debug::DB_DEPTH.this().fetch_add(1, Ordering::SeqCst) + 1;
    let frame = regs as *const Regs as u64;
    let slot = (dr6 & DR6_HITS).trailing_zeros() as u8;
    let slot = (slot < 4).then_some(slot);
    if let Some(slot) = slot {
        disarm(slot);
    }
    let event = DebugEvent { kind: DebugKind::Db, dr6, slot, depth, frame };
    if regs.from_user() {
        // A user breakpoint is one-shot: the thread's watch is cleared (the
        // slot is disarmed already).
        if slot == Some(USER_WATCH_SLOT) {
            crate::sched::set_user_watch(0);
        }
        crate::user::fault::debug_trap(regs, &alloc::format!("#DB ({cause})"), frame);
    } else if !run_hooks(regs, &event) {
        println!("#DB: DR6 {dr6:#x} at RIP {:016x} on the {} stack", regs.rip, info::name_of(frame));
    }
    // An instruction breakpoint would fire again on return without RF.
    regs.rflags |= RFLAGS_RF;
    crate::arch::debug::DB_DEPTH.this().fetch_sub(1, Ordering::SeqCst);
}

/// `int3` lands here, on the #DB stack (RIP already points past the int3).
pub fn handle_bp(regs: &mut Regs) {
    let frame = regs as *const Regs as u64;
    let depth = crate::arch::debug::DB_DEPTH.this().load(Ordering::Relaxed);
    if regs.from_user() {
        crate::user::fault::debug_trap(regs, "int3", frame);
        return;
    }
    let event = DebugEvent { kind: DebugKind::Bp, dr6: 0, slot: None, depth, frame };
    if run_hooks(regs, &event) {
        return;
    }
    println!(
        "int3: #BP handled on the {} stack (frame {frame:016x}), interrupted RSP {:016x} on {}, resuming at {:016x}",
        info::name_of(frame),
        regs.rsp,
        info::name_of(regs.rsp),
        regs.rip
    );
}

/// Per CPU: an event a #DB hook asked to deliver at the instruction the
/// #DB interrupted (0: none) — the stack address `debug_return` hands the
/// exit path.
static DELIVER_AT_RETURN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// From a #DB hook: as this #DB returns, deliver NMI or #MC (`vector`) at
/// the interrupted instruction, as the CPU would deliver one arriving there:
/// its hardware frame (the interrupted RIP, CS, RFLAGS, RSP, SS) at the top
/// of the vector's IST stack, then its entry stub, with every register and
/// the GS base as the interrupted code had them. What differs from a real
/// NMI: the CPU does not block further NMIs (the sweep sends none).
///
/// A self-NMI from the hook itself would not do: #DB does not block NMIs,
/// so it would land in the #DB handler, not at the instruction.
pub fn deliver_at_return(regs: &Regs, vector: u8) {
    let cpu = this_cpu();
    let ist = match vector {
        X86_TRAP_NMI => Ist::NMI,
        X86_TRAP_MC => Ist::MCE,
        _ => panic!("deliver_at_return: vector {vector} has no IST stack to deliver on"),
    };
    let top = cpu.ist(ist);
    // [stub][RIP, CS, RFLAGS, RSP, SS]: `ret` pops the stub's address and
    // leaves RSP at the frame. RF cleared: the breakpoint is disarmed.
    let words =
        [super::exception_stub(usize::from(vector)), regs.rip, regs.cs, regs.rflags & !RFLAGS_RF, regs.rsp, regs.ss];
    let at = top - 8 * words.len() as u64;
    // SAFETY: the top of this CPU's NMI or #MC IST stack, mapped; nothing
    // lives there while no such handler runs (the hook's caller checked:
    // the interrupted code is not on that stack's live part).
    unsafe { (at as *mut [u64; 6]).write(words) };
    DELIVER_AT_RETURN[cpu.id()].store(at, Ordering::Relaxed);
}

/// The #DB exit's decision (`RETURN_TO_KERNEL` in entry.rs): an event to
/// deliver at the interrupted instruction (its stack), else 1 to return
/// into NMI context without IRET, else 0 to IRET.
pub extern "C" fn debug_return(regs: &Regs) -> u64 {
    let deliver = DELIVER_AT_RETURN[this_cpu().id()].swap(0, Ordering::Relaxed);
    if deliver != 0 {
        return deliver;
    }
    u64::from(super::nmi::returns_into_nmi(regs))
}
