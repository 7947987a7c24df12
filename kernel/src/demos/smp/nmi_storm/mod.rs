//! `nmi-storm SECONDS` (docs/smp.md): one CPU NMIs every other CPU as fast
//! as they take them, while each of those runs self-IPIs, context switches
//! and two-level nested #DBs; then every count must add up. It proves the
//! NMI stack is never re-entered while live, wherever the NMI lands.

mod workers;

pub use workers::nmi_storm;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::debug::{self, DebugEvent, DebugKind};
use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::arch::{apic, irq, nmi};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{estack_range, EStack, Ist, MAX_CPUS};
use crate::sched::{self, Ended, Placement};
use crate::time::{self, spin_until, SPIN_WAIT_MS};
use crate::{println, smp};

/// The storm's self-IPI vector, claimed at init.
static NMI_STORM_VECTOR: core::sync::atomic::AtomicU8 = core::sync::atomic::AtomicU8::new(0);
static STORM_ACTIVE: AtomicBool = AtomicBool::new(false);
static STORM_STOP: AtomicBool = AtomicBool::new(false);
/// Per CPU: storm self-IPIs handled, and those that ran off the IRQ stack.
static STORM_IRQS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static STORM_IRQS_MISPLACED: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the storm's quiet nested #DB is running there; its nests that
/// landed on the right stacks, and those that did not.
static DB_STORM: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static DB_STORM_NESTS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static DB_STORM_BAD: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Where the storm's NMIs landed, per CPU: what the interrupted RSP was on,
/// and whether RIP was inside the context switch or the IRQ entry code.
#[derive(Clone, Copy)]
#[repr(usize)]
enum Landed {
    Task,
    IrqStack,
    DbStack,
    Db1Stack,
    SwitchTo,
    IrqEntry,
}
const LANDED_NAMES: [&str; 6] =
    ["task stack", "IRQ stack", "#DB stack", "#DB1 stack", "in switch_to", "in IRQ entry code"];
static LANDED: [[AtomicU64; 6]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 6] }; MAX_CPUS];

/// The storm's self-IPI vector, its NMI handler and its #DB hook.
pub fn init() {
    NMI_STORM_VECTOR.store(irq::claim(storm_irq, "LAPIC  self-IPI nmi-storm"), Ordering::Relaxed);
    nmi::register_nmi_handler(nmi_storm_hit);
    debug::register_debug_hook(storm_db_hook);
}

fn storm_irq(_: &mut Regs) {
    let cpu = this_cpu().id();
    let sp = crate::arch::cpu::stack_pointer();
    if !crate::stacks::irq::range(cpu).is_some_and(|(b, t)| (b..t).contains(&sp)) {
        STORM_IRQS_MISPLACED[cpu].fetch_add(1, Ordering::Relaxed);
    }
    STORM_IRQS[cpu].fetch_add(1, Ordering::SeqCst);
}

/// From the NMI handler while a storm runs: note where this NMI landed.
/// Atomics and reads of fixed tables only (NMI context).
fn nmi_storm_hit(regs: &Regs) {
    if !STORM_ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    let cpu = this_cpu().id();
    let within = |(b, t): (u64, u64)| (b..t).contains(&regs.rsp);
    let on = if within(estack_range(cpu, EStack::DB)) {
        Landed::DbStack
    } else if within(estack_range(cpu, EStack::DB1)) {
        Landed::Db1Stack
    } else if crate::stacks::irq::range(cpu).is_some_and(within) {
        Landed::IrqStack
    } else {
        Landed::Task
    };
    LANDED[cpu][on as usize].fetch_add(1, Ordering::Relaxed);
    if let Some(r) = crate::debug::symbols::resolve(regs.rip) {
        let name = r.symbol.name.as_str();
        if name.starts_with("tristack_switch_to") {
            LANDED[cpu][Landed::SwitchTo as usize].fetch_add(1, Ordering::Relaxed);
        } else if name == "tristack_irq_common" || name == "tristack_irq_stubs" {
            LANDED[cpu][Landed::IrqEntry as usize].fetch_add(1, Ordering::Relaxed);
        }
    }
}

// --- The quiet nested #DB: #DB on the #DB stack, then #BP on #DB1 ----------------

/// What the breakpoint target touches (a body the compiler cannot drop).
static STORM_DB_WORD: AtomicU64 = AtomicU64::new(0);

/// The execute-breakpoint target of `storm_db_once`.
#[inline(never)]
fn storm_db_target() {
    STORM_DB_WORD.fetch_add(1, Ordering::Relaxed);
}

/// One two-level nest without printing, counted in this CPU's
/// `DB_STORM_NESTS` / `DB_STORM_BAD`. The caller sets `DB_STORM`.
fn storm_db_once() {
    // Not preemptible while armed: the debug registers belong to the CPU.
    x86_64::instructions::interrupts::without_interrupts(|| {
        debug::arm_execute(0, storm_db_target as *const () as u64);
        storm_db_target();
        debug::disarm(0);
    });
}

fn on(cpu: usize, kind: EStack, addr: u64) -> bool {
    let (bottom, top) = estack_range(cpu, kind);
    (bottom..top).contains(&addr)
}

/// Level 1 (#DB on the storm target): must run on #DB; then `int3`, which
/// nests one #DB stack down (IST[DB] is shifted). Level 2 (#BP inside
/// level 1): must run on #DB1 and have interrupted #DB.
fn storm_db_hook(regs: &mut Regs, ev: &DebugEvent) -> bool {
    let cpu = this_cpu().id();
    if !DB_STORM[cpu].load(Ordering::Relaxed) {
        return false;
    }
    match ev.kind {
        DebugKind::Db if ev.slot.is_some() && regs.rip == storm_db_target as *const () as u64 => {
            if !on(cpu, EStack::DB, ev.frame) {
                DB_STORM_BAD[cpu].fetch_add(1, Ordering::Relaxed);
            }
            debug::int3();
            true
        }
        DebugKind::Bp if ev.depth == 1 => {
            if on(cpu, EStack::DB1, ev.frame) && on(cpu, EStack::DB, regs.rsp) {
                DB_STORM_NESTS[cpu].fetch_add(1, Ordering::Relaxed);
            } else {
                DB_STORM_BAD[cpu].fetch_add(1, Ordering::Relaxed);
            }
            true
        }
        _ => false,
    }
}
