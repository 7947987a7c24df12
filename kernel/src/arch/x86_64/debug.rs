//! #DB and #BP: the debug registers DR0–DR3/DR6/DR7, their handlers, and the
//! demonstrations that make the #DB stacks visible (`int3`, `db N`, `watch`).
//!
//! Both vectors run on the #DB IST stack; the entry stub shifts TSS IST[DB]
//! down by `DB_STACK_OFFSET` while a handler runs, so a #DB raised inside the
//! handler lands on DB1, and one more on the unmapped DB2 hole.

use core::arch::asm;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::percpu::this_cpu;
use super::regs::{Regs, RFLAGS_RF};
use crate::println;
use crate::stacks::info;
use crate::stacks::layout::{estack_range, EStack, Ist};

/// Read debug register `n` (0–3, 6, 7).
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
fn write_dr(n: u8, v: u64) {
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
const LEN_1: u64 = 0b00;
const LEN_8: u64 = 0b10;
/// DR7.LE|GE: "exact breakpoints", recommended whenever any is armed.
const DR7_EXACT: u64 = 0b11 << 8;
/// DR6.B0–B3: which breakpoint fired.
const DR6_HITS: u64 = 0xf;

/// Arm breakpoint `slot` (0–3) to fire when `addr` is executed.
pub fn arm_execute(slot: u8, addr: u64) {
    arm(slot, addr, dr7_fields(slot, RW_EXECUTE, LEN_1));
}

/// Arm breakpoint `slot` (0–3) to fire after a write to the 8 bytes at `addr`.
pub fn arm_write(slot: u8, addr: u64) {
    arm(slot, addr, dr7_fields(slot, RW_WRITE, LEN_8));
}

fn arm(slot: u8, addr: u64, fields: u64) {
    write_dr(slot, addr);
    let dr7 = read_dr(7) & !dr7_fields(slot, 0b11, 0b11);
    write_dr(7, dr7 | fields | dr7_enable(slot) | DR7_EXACT);
}

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

/// DR lines of the oops register block, only when breakpoints are armed.
pub fn show_if_in_use() {
    let dr7 = read_dr(7);
    if dr7 & 0xff == 0 {
        return;
    }
    println!("DR0: {:016x} DR1: {:016x} DR2: {:016x}", read_dr(0), read_dr(1), read_dr(2));
    println!("DR3: {:016x} DR6: {:016x} DR7: {:016x}", read_dr(3), read_dr(6), dr7);
}

// --- The demonstrations ------------------------------------------------------

/// Levels of the running `db N` demo (0: none).
static DB_DEMO_LEVELS: AtomicU32 = AtomicU32::new(0);
/// Whether the deepest `db` level sends itself an NMI.
static DB_DEMO_NMI: AtomicBool = AtomicBool::new(false);
/// Frame address of each `db` level's handler, for ktests (index = level).
pub static DB_LEVEL_FRAME: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// The word `watch` writes under a data breakpoint.
static WATCHED: AtomicU64 = AtomicU64::new(0);

// One distinct function per level: each is the execute-breakpoint target of
// its level. Distinct bodies keep the compiler from merging them.
#[inline(never)]
fn db_target_1() {
    WATCHED.fetch_add(0, Ordering::SeqCst);
}
#[inline(never)]
fn db_target_2() {
    WATCHED.fetch_add(0, Ordering::Relaxed);
}
#[inline(never)]
fn db_target_3() {
    WATCHED.fetch_or(0, Ordering::SeqCst);
}
#[inline(never)]
fn db_target_4() {
    WATCHED.fetch_or(0, Ordering::Relaxed);
}
const DB_TARGETS: [fn(); 4] = [db_target_1, db_target_2, db_target_3, db_target_4];

/// `db N`: level 1's #DB fires on an execute breakpoint; each level's handler
/// arms the next level's breakpoint and calls its target, nesting one #DB
/// deeper: #DB → #DB1 → (third) a push into the DB2 hole.
pub fn db_demo(levels: u32, nmi_at_deepest: bool) {
    DB_DEMO_LEVELS.store(levels, Ordering::SeqCst);
    DB_DEMO_NMI.store(nmi_at_deepest, Ordering::SeqCst);
    println!("db: arming DR0 on {:#x}; TSS IST[DB] = {:016x}", DB_TARGETS[0] as usize, this_cpu().ist(Ist::DB));
    arm_execute(0, DB_TARGETS[0] as usize as u64);
    DB_TARGETS[0]();
    disarm(0);
    DB_DEMO_LEVELS.store(0, Ordering::SeqCst);
    println!("db: back from level 1; TSS IST[DB] = {:016x}", this_cpu().ist(Ist::DB));
}

/// `watch`: a data-write breakpoint on a word, then a write to it.
pub fn watch_demo(value: u64) {
    let addr = WATCHED.as_ptr() as u64;
    println!("watch: arming DR0 for writes to {addr:#x}");
    arm_write(0, addr);
    WATCHED.store(value, Ordering::SeqCst);
    disarm(0);
}

pub fn handle_db(regs: &mut Regs) {
    let cpu = this_cpu();
    let dr6 = read_dr(6);
    write_dr(6, 0); // DR6 is sticky: clear it for the next #DB
    let depth = cpu.db_depth.fetch_add(1, Ordering::SeqCst) + 1;
    let frame = regs as *const Regs as u64;
    let slot = (dr6 & DR6_HITS).trailing_zeros() as u8;
    if slot < 4 {
        disarm(slot);
    }
    if cpu.db_storm.load(Ordering::Relaxed) && slot < 4 && regs.rip == storm_db_target as *const () as u64 {
        storm_db_level_1(cpu, frame);
        regs.rflags |= RFLAGS_RF;
        cpu.db_depth.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    let levels = DB_DEMO_LEVELS.load(Ordering::SeqCst);
    let target = |l: u32| DB_TARGETS[l as usize - 1] as usize as u64;
    if slot < 4 && levels >= depth && depth >= 1 && regs.rip == target(depth) {
        if let Some(f) = DB_LEVEL_FRAME.get(depth as usize) {
            f.store(frame, Ordering::SeqCst);
        }
        println!(
            "db: level {depth}: #DB on the {} stack (frame {frame:016x}), interrupted RSP on {}; TSS IST[DB] now {:016x}",
            info::name_of(frame),
            info::name_of(regs.rsp),
            cpu.ist(Ist::DB)
        );
        if depth < levels {
            let next = depth as u8; // slot of the next level
            arm_execute(next, target(depth + 1));
            DB_TARGETS[depth as usize]();
            disarm(next);
        } else if DB_DEMO_NMI.load(Ordering::SeqCst) {
            super::nmi::self_nmi_and_report("db");
        }
    } else if slot < 4 && read_dr(slot) == WATCHED.as_ptr() as u64 {
        println!(
            "watch: write to {:#x} by RIP {:016x}, value now {}; #DB ran on the {} stack",
            read_dr(slot),
            regs.rip,
            WATCHED.load(Ordering::SeqCst),
            info::name_of(frame)
        );
    } else {
        println!("#DB: DR6 {dr6:#x} at RIP {:016x} on the {} stack", regs.rip, info::name_of(frame));
    }
    // An instruction breakpoint would fire again on return without RF.
    regs.rflags |= RFLAGS_RF;
    cpu.db_depth.fetch_sub(1, Ordering::SeqCst);
}

// --- The quiet nested #DB of `nmi-storm` ------------------------------------

/// The execute-breakpoint target of `storm_db_once`.
#[inline(never)]
fn storm_db_target() {
    WATCHED.fetch_and(u64::MAX, Ordering::SeqCst);
}

/// Level 1 of the storm's nest, on the #DB stack: check where we are, then
/// `int3`, which nests one #DB stack down (IST[DB] is shifted).
fn storm_db_level_1(cpu: &super::percpu::PerCpu, frame: u64) {
    let (bottom, top) = estack_range(cpu.id(), EStack::DB);
    if !(bottom..top).contains(&frame) {
        cpu.db_storm_bad.fetch_add(1, Ordering::Relaxed);
    }
    int3();
}

/// `#BP` inside `storm_db_level_1`: must run on #DB1 and have interrupted #DB.
fn storm_bp_level_2(cpu: &super::percpu::PerCpu, frame: u64, interrupted: u64) {
    let id = cpu.id();
    let on = |kind: EStack, addr: u64| {
        let (bottom, top) = estack_range(id, kind);
        (bottom..top).contains(&addr)
    };
    if on(EStack::DB1, frame) && on(EStack::DB, interrupted) {
        cpu.db_storm_nests.fetch_add(1, Ordering::Relaxed);
    } else {
        cpu.db_storm_bad.fetch_add(1, Ordering::Relaxed);
    }
}

/// One two-level nest (#DB, then #BP on #DB1) without printing; counted in
/// this CPU's `db_storm_nests` / `db_storm_bad`. The caller sets `db_storm`.
pub fn storm_db_once() {
    arm_execute(0, storm_db_target as *const () as u64);
    storm_db_target();
    disarm(0);
}

/// `int3` lands here, on the #DB stack (RIP already points past the int3).
pub fn handle_bp(regs: &mut Regs) {
    let frame = regs as *const Regs as u64;
    let cpu = this_cpu();
    if cpu.db_storm.load(Ordering::Relaxed) && cpu.db_depth.load(Ordering::Relaxed) == 1 {
        storm_bp_level_2(cpu, frame, regs.rsp);
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
    DB_DEMO_LEVELS.store(0, Ordering::SeqCst);
    cpu.db_depth.store(0, Ordering::SeqCst);
    let (_, top) = crate::stacks::layout::estack_range(cpu.id(), crate::stacks::layout::EStack::DB);
    // SAFETY: this CPU's own TSS, and no #DB handler is running on it.
    unsafe {
        let tss = cpu.tss.get();
        core::ptr::addr_of_mut!((*tss).interrupt_stack_table[Ist::DB.tss_slot()])
            .write_unaligned(::x86_64::VirtAddr::new(top));
    }
}
