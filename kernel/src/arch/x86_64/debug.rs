//! The debug registers DR0–DR3/DR6/DR7, and the hooks of whoever owns a
//! breakpoint (the `db N` and `watch` demos, `nmi-storm` for its nests, the
//! entry sweep): each claims its own #DB and #BP events. The handlers that
//! run them are the entry layer's (`entry::debug`).

use core::arch::asm;
use core::sync::atomic::Ordering;

use super::regs::Regs;
use crate::hooks::FnSlots;
use crate::layout::Ist;

crate::define_per_cpu! {
    /// The user data breakpoint armed in this CPU's debug registers (0: none).
    pub static USER_WATCH_ARMED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
}

crate::define_per_cpu! {
    /// Nesting depth of #DB/#BP handlers on this CPU right now.
    pub static DB_DEPTH: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
}

/// Read debug register `n` (0–3, 6, 7).
#[inline]
pub fn read_dr(n: u8) -> u64 {
    let v: u64;
    // SAFETY: reading a debug register has no side effects.
    unsafe {
        match n {
            0 => asm!("mov {}, dr0", out(reg) v, options(nomem, nostack)),
            1 => asm!("mov {}, dr1", out(reg) v, options(nomem, nostack)),
            2 => asm!("mov {}, dr2", out(reg) v, options(nomem, nostack)),
            3 => asm!("mov {}, dr3", out(reg) v, options(nomem, nostack)),
            6 => asm!("mov {}, dr6", out(reg) v, options(nomem, nostack)),
            7 => asm!("mov {}, dr7", out(reg) v, options(nomem, nostack)),
            _ => panic!("no debug register DR{n}"),
        }
    }
    v
}

/// Write debug register `n` (0–3, 6, 7).
#[inline]
pub fn write_dr(n: u8, v: u64) {
    // SAFETY: debug registers only arm or disarm breakpoints, whose #DB this
    // module handles; they never change memory.
    unsafe {
        match n {
            0 => asm!("mov dr0, {}", in(reg) v, options(nomem, nostack)),
            1 => asm!("mov dr1, {}", in(reg) v, options(nomem, nostack)),
            2 => asm!("mov dr2, {}", in(reg) v, options(nomem, nostack)),
            3 => asm!("mov dr3, {}", in(reg) v, options(nomem, nostack)),
            6 => asm!("mov dr6, {}", in(reg) v, options(nomem, nostack)),
            7 => asm!("mov dr7, {}", in(reg) v, options(nomem, nostack)),
            _ => panic!("no debug register DR{n}"),
        }
    }
}

/// DR7: local enable bit of breakpoint `slot`.
const fn dr7_enable(slot: u8) -> u64 {
    1 << (2 * slot)
}
/// DR7: RW and LEN fields (4 bits) of `slot`.
const fn dr7_fields(slot: u8, rw: u64, len: u64) -> u64 {
    ((len << 2) | rw) << (16 + 4 * slot)
}
const RW_EXECUTE: u64 = 0b00;
const RW_WRITE: u64 = 0b01;
const RW_ACCESS: u64 = 0b11;
const LEN_1: u64 = 0b00;
const LEN_8: u64 = 0b10;
/// DR7.LE|GE: "exact breakpoints", recommended whenever any is armed.
const DR7_EXACT: u64 = 0b11 << 8;
/// DR6.B0–B3: which breakpoint fired.
pub const DR6_HITS: u64 = 0xf;

/// Arm breakpoint `slot` (0–3) to fire when `addr` is executed.
pub fn arm_execute(slot: u8, addr: u64) {
    arm(slot, addr, dr7_fields(slot, RW_EXECUTE, LEN_1));
}

/// Arm breakpoint `slot` (0–3) to fire after a write to the 8 bytes at `addr`.
pub fn arm_write(slot: u8, addr: u64) {
    arm(slot, addr, dr7_fields(slot, RW_WRITE, LEN_8));
}

/// Arm breakpoint `slot` (0–3) to fire after a read or write of the 8
/// bytes at `addr`.
pub fn arm_access(slot: u8, addr: u64) {
    arm(slot, addr, dr7_fields(slot, RW_ACCESS, LEN_8));
}

fn arm(slot: u8, addr: u64, fields: u64) {
    write_dr(slot, addr);
    let dr7 = read_dr(7) & !dr7_fields(slot, 0b11, 0b11);
    write_dr(7, dr7 | fields | dr7_enable(slot) | DR7_EXACT);
}

#[inline]
pub fn disarm(slot: u8) {
    let dr7 = read_dr(7) & !(dr7_enable(slot) | dr7_fields(slot, 0b11, 0b11));
    write_dr(7, if dr7 & 0xff == 0 { 0 } else { dr7 });
}

/// Disable every breakpoint; returns the old DR7 for `restore_all`.
/// The NMI handler uses this (Linux `local_db_save`): a #DB inside the NMI
/// handler would end with IRET, which unblocks NMIs while still on the NMI stack.
pub fn disable_all() -> u64 {
    let dr7 = read_dr(7);
    if dr7 != 0 {
        write_dr(7, 0);
    }
    dr7
}

pub fn restore_all(dr7: u64) {
    if dr7 != 0 {
        write_dr(7, dr7);
    }
}

/// The slot user data breakpoints use (`watch` syscall); the kernel's own
/// demos use slot 0 and arm only with interrupts off, never across a switch.
pub const USER_WATCH_SLOT: u8 = 3;

/// On a switch: arm the incoming thread's user breakpoint, or disarm the
/// slot if it has none (debug registers are per CPU, breakpoints per
/// thread). The CPU remembers what it armed, so a switch between threads
/// without breakpoints touches no debug register (a `mov` to or from a DR
/// can trap to the hypervisor).
// Not traced (Linux `notrace`): on every context switch; see docs/performance.md.
#[instrument_fn = "off"]
pub fn switch_user_watch(addr: u64) {
    if USER_WATCH_ARMED.this().swap(addr, Ordering::Relaxed) == addr {
        return;
    }
    if addr != 0 {
        arm_write(USER_WATCH_SLOT, addr);
    } else {
        disarm(USER_WATCH_SLOT);
    }
}

/// DR0, DR1, DR2, DR3, DR6, DR7 for the oops register block, only when
/// breakpoints are armed.
pub fn in_use() -> Option<[u64; 6]> {
    let dr7 = read_dr(7);
    (dr7 & 0xff != 0).then(|| [read_dr(0), read_dr(1), read_dr(2), read_dr(3), read_dr(6), dr7])
}

// --- Hooks: who owns a breakpoint ----------------------------------------------------

/// What a #DB or #BP hook is told (Linux passes the same through
/// `notify_die(DIE_DEBUG / DIE_INT3, ...)`).
#[derive(Clone, Copy, Debug)]
pub struct DebugEvent {
    /// #DB (a debug register fired, or single-step) or #BP (`int3`).
    pub kind: DebugKind,
    /// DR6 as read on entry (#DB only; 0 for #BP).
    pub dr6: u64,
    /// The breakpoint slot (0–3) that fired, if one did; it is disarmed already.
    pub slot: Option<u8>,
    /// #DB handlers running on this CPU, this one included (#BP does not count).
    pub depth: u32,
    /// Address of the register frame: which stack the handler runs on.
    pub frame: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugKind {
    Db,
    Bp,
}

/// Code that owns a breakpoint (Linux `register_die_notifier`: kprobes,
/// kgdb). Runs on the #DB stack; returns true if the event was its own.
pub type DebugHook = fn(&mut Regs, &DebugEvent) -> bool;

// SAFETY: DebugHook is a function pointer type.
static DEBUG_HOOKS: FnSlots<DebugHook, 8> = unsafe { FnSlots::new() };

/// Offer every #DB and #BP to `hook` first (registering twice is a no-op).
pub fn register_debug_hook(hook: DebugHook) {
    DEBUG_HOOKS.register(hook);
}

/// Whether some hook claimed `event`.
#[inline]
pub fn run_hooks(regs: &mut Regs, event: &DebugEvent) -> bool {
    DEBUG_HOOKS.iter().any(|hook| hook(regs, event))
}

/// What raised a #DB, read from DR6 (and DR7 for the kind of breakpoint),
/// as Linux's `exc_debug_user` tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbCause {
    /// DR6.BS: RFLAGS.TF was set.
    SingleStep,
    /// DR6.B0–B3: breakpoint `slot` fired; `rw` is its DR7 R/W field.
    Breakpoint { slot: u8, rw: u64 },
    /// No status bit: `int1` (ICEBP, opcode 0xf1).
    Icebp,
}

/// DR6.BS: single-step.
const DR6_BS: u64 = 1 << 14;

impl DbCause {
    #[inline]
    pub fn from_dr6(dr6: u64, dr7: u64) -> DbCause {
        let slot = (dr6 & DR6_HITS).trailing_zeros() as u8;
        if slot < 4 {
            DbCause::Breakpoint { slot, rw: (dr7 >> (16 + 4 * slot)) & 0b11 }
        } else if dr6 & DR6_BS != 0 {
            DbCause::SingleStep
        } else {
            DbCause::Icebp
        }
    }
}

impl core::fmt::Display for DbCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            DbCause::SingleStep => write!(f, "single-step"),
            DbCause::Breakpoint { slot, rw: RW_EXECUTE } => write!(f, "instruction breakpoint {slot}"),
            DbCause::Breakpoint { slot, rw: RW_WRITE } => write!(f, "data breakpoint {slot}, write"),
            DbCause::Breakpoint { slot, rw: _ } => write!(f, "data breakpoint {slot}, read/write"),
            DbCause::Icebp => write!(f, "ICEBP"),
        }
    }
}

/// Execute `int3`.
pub fn int3() {
    // SAFETY: #BP is handled by `handle_bp`, which returns.
    unsafe { asm!("int3", options(nomem, nostack)) };
}

/// After a thread killed by an oops is gone: no breakpoints armed, and
/// IST[DB] back at the top of the #DB stack however deep the oops was.
pub fn reset_after_oops(cpu: &super::percpu::PerCpu) {
    write_dr(7, 0);
    write_dr(6, 0);
    crate::arch::debug::USER_WATCH_ARMED.of(cpu.id()).store(0, Ordering::Relaxed);
    crate::arch::debug::DB_DEPTH.of(cpu.id()).store(0, Ordering::SeqCst);
    // The shifted IST slots back at their tops: #DB's, and #PF's (an oops
    // reported on the #PF stack leaves it shifted).
    for (ist, kind) in [(Ist::DB, crate::layout::EStack::DB), (Ist::PF, crate::layout::EStack::PF)] {
        let (_, top) = crate::layout::estack_range(cpu.id(), kind);
        // SAFETY: this CPU's own TSS, and no #DB or #PF handler is running on it.
        unsafe {
            let tss = cpu.tss.get();
            core::ptr::addr_of_mut!((*tss).interrupt_stack_table[ist.tss_slot()])
                .write_unaligned(::x86_64::VirtAddr::new(top));
        }
    }
}
