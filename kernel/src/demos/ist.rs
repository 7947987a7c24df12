//! The exception (IST) stacks at work (docs/ist.md): the `stacks` table,
//! `int3`, `db N [nmi]`, `watch`, `nmi`, `mce`, `doublefault`, `nested-oops`.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use x86_64::instructions::interrupts::without_interrupts;

use crate::arch::debug::{self, DebugEvent, DebugKind};
use crate::arch::regs::{Regs, RFLAGS_IF};
use crate::arch::{mce, nmi, percpu};
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::Ist;
use crate::layout::PAGE_SIZE;
use crate::mm::paging;
use crate::println;
use crate::stacks::exception;
use crate::stacks::info;

pub fn stacks(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("cpu type  bottom           top              size   guard (unmapped)                  via");
    let row = |cpu: usize, name: &str, bottom: u64, top: u64, guard: Option<(u64, u64)>, via: &str| {
        let guard = match guard {
            Some((lo, hi)) => alloc::format!("{lo:016x}-{hi:016x}"),
            None => "MAPPED (no guard!)".into(),
        };
        println!("{cpu:>3} {name:<5} {bottom:016x} {top:016x} {:>6} {guard:<33} {via}", top - bottom);
    };
    for (cpu, pid, name, bottom, top) in super::threads::task_stack_rows() {
        // The guard is whatever the page tables say below the stack.
        let guard_unmapped = paging::translate(bottom - PAGE_SIZE).is_none();
        row(
            cpu,
            "TASK",
            bottom,
            top,
            guard_unmapped.then_some((bottom - PAGE_SIZE, bottom - 1)),
            &alloc::format!("pid {pid} {name}"),
        );
    }
    for r in crate::stacks::extra::rows() {
        let guard = paging::translate(r.bottom - PAGE_SIZE).is_none().then_some((r.bottom - PAGE_SIZE, r.bottom - 1));
        let via = if r.in_use { "extra-stack pool, in use" } else { "extra-stack pool, free" };
        row(r.cpu, "EXTRA", r.bottom, r.top, guard, via);
    }
    for cpu in percpu::online_cpus() {
        if let Some((_, top)) = crate::stacks::irq::range(cpu) {
            // Bottom and guard from the page tables, like every other row.
            let (bottom, guard) = exception::live_extent(top);
            row(cpu, "IRQ", bottom, top, guard, "irq_count");
        }
        for s in exception::live_rows(cpu) {
            row(cpu, s.name, s.bottom, s.top, s.guard, &s.via);
        }
    }
    Ok(())
}

pub fn int3(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    debug::int3();
    println!("int3: returned to the shell");
    Ok(())
}

pub fn db(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage_and(" (N = 1, 2 or 3 nested #DB)");
    let (levels, with_nmi) = match args {
        [n] => (cmdline::number("N", n, 1..=3)?, false),
        [n, "nmi"] => (cmdline::number("N", n, 1..=3)?, true),
        _ => return Err(usage().into()),
    };
    if levels == 3 {
        // The third level lands in the DB2 hole, an unmapped page.
        crate::cmd::intend_oops("db");
    }
    db_demo(levels as u32, with_nmi);
    Ok(())
}

pub fn watch(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    // The value written is arbitrary; the handler reports it as read back.
    let value = crate::arch::cpu::stack_pointer() & 0xffff;
    watch_demo(value);
    Ok(())
}

pub fn nmi(args: &[&str]) -> CmdResult {
    match args {
        [] if self_nmi_and_report("nmi") => Ok(()),
        [] => Err(CmdError::Failed("no NMI was delivered".into())),
        ["wait"] => {
            let cpu = percpu::this_cpu();
            wait_for(crate::arch::nmi::NMI_COUNT.of(cpu.id()), "nmi: waiting for an NMI (QEMU monitor: nmi)")?;
            report_last("nmi");
            Ok(())
        }
        [other, ..] => Err(ArgError::Unexpected((*other).into()).into()),
    }
}

/// Spin until `counter` moves (a handler ran); Ctrl-C on the console cancels.
fn wait_for(counter: &AtomicU64, announce: &str) -> CmdResult {
    let before = counter.load(Ordering::SeqCst);
    let interrupt = crate::tty::Interrupt::mark();
    println!("{announce}; Ctrl-C cancels");
    while counter.load(Ordering::SeqCst) == before {
        if interrupt.pending() {
            return Err(CmdError::Failed("cancelled (Ctrl-C)".into()));
        }
        core::hint::spin_loop();
    }
    Ok(())
}

pub fn mce(args: &[&str]) -> CmdResult {
    if mce::banks_enabled().is_none() {
        return Err(CmdError::Failed("this CPU has no machine-check architecture (use -cpu max)".into()));
    }
    match args {
        [] => {
            mce::int18();
            Ok(())
        }
        ["wait"] => {
            let cpu = percpu::this_cpu();
            wait_for(
                crate::arch::mce::MCE_COUNT.of(cpu.id()),
                "mce: waiting for machine check (QEMU monitor: mce ...)",
            )?;
            println!("mce: machine check seen, back in the shell");
            Ok(())
        }
        [other, ..] => Err(ArgError::Unexpected((*other).into()).into()),
    }
}

pub fn doublefault(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("doublefault: removing the #DE gate and dividing by zero");
    crate::cmd::intend_oops("doublefault");
    // A #DE that cannot be delivered (#NP on its gate), and #NP while
    // delivering #DE (both "contributory"), is a double fault. Interrupts
    // stay off: nothing else may take vector 0 meanwhile.
    ::x86_64::instructions::interrupts::disable();
    // SAFETY: interrupts are off on this CPU; the oops that follows puts the gate back.
    unsafe { crate::arch::idt::remove_gate(crate::arch::vectors::X86_TRAP_DE) };
    crate::arch::cpu::divide_error()
}

pub fn nested_oops(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("nested-oops: ud2, with the oops printer told to fault halfway");
    crate::debug::oops::fault_inside_next_oops();
    // SAFETY: deliberately fatal: #UD → oops → #UD inside it → recursion guard.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    unreachable!("ud2 returned")
}

// --- db N, watch: breakpoints whose #DB nests down the #DB stacks -----------------

pub fn init() {
    debug::register_debug_hook(db_hook);
    nmi::register_nmi_handler(nmi_mce_hook);
}

// --- nmi-mce: an #MC inside an NMI handler, another NMI pending -------------------

/// CPU id + 1 that the next NMI there should run the experiment (0: none).
static NMI_MCE_ARMED: AtomicU64 = AtomicU64::new(0);

/// In the NMI handler: make a second NMI pending (NMIs are blocked until
/// this one IRETs), then raise #MC. If the #MC's return unblocked NMIs, the
/// pending one would start at once on the NMI stack this handler still uses.
fn nmi_mce_hook(_: &Regs) {
    let me = percpu::this_cpu().id() as u64 + 1;
    if NMI_MCE_ARMED.compare_exchange(me, 0, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
        crate::arch::apic::send_nmi_to_self();
        mce::int18();
    }
}

/// `nmi-mce`: the experiment above; both NMIs must run, one after the other.
pub fn nmi_mce(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    if mce::banks_enabled().is_none() {
        return Err(CmdError::Failed("this CPU has no machine-check architecture (use -cpu max)".into()));
    }
    let cpu = percpu::this_cpu();
    let (nmis, reentered) = (
        crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst),
        crate::arch::nmi::NMI_STACK_REENTERED.of(cpu.id()).load(Ordering::SeqCst),
    );
    NMI_MCE_ARMED.store(cpu.id() as u64 + 1, Ordering::SeqCst);
    println!("nmi-mce: self-NMI; its handler makes a second NMI pending, then raises #MC (int $18)");
    crate::arch::apic::send_nmi_to_self();
    let both = crate::time::spin_until(crate::time::SPIN_WAIT_MS, || {
        crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst) >= nmis + 2
    });
    let again = crate::arch::nmi::NMI_STACK_REENTERED.of(cpu.id()).load(Ordering::SeqCst) - reentered;
    let ran = crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst) - nmis;
    println!("nmi-mce: {ran} NMIs ran; NMI stack re-entered while live: {again}");
    if !both || again != 0 {
        return Err(CmdError::Failed("the #MC's return let the pending NMI in on the live NMI stack".into()));
    }
    println!("nmi-mce: ok, the pending NMI waited for the first to finish");
    Ok(())
}

/// Levels of the running `db N` demo (0: none).
static DB_DEMO_LEVELS: AtomicU32 = AtomicU32::new(0);
/// Whether the deepest `db` level sends itself an NMI.
static DB_DEMO_NMI: AtomicBool = AtomicBool::new(false);
/// Frame address of each `db` level's handler, for the ktest (index = level).
static DB_LEVEL_FRAME: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
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

fn db_target(level: u32) -> u64 {
    DB_TARGETS[level as usize - 1] as usize as u64
}

/// `db N`: level 1's #DB fires on an execute breakpoint; each level's handler
/// arms the next level's breakpoint and calls its target, nesting one #DB
/// deeper: #DB → #DB1 → (third) a push into the DB2 hole.
fn db_demo(levels: u32, nmi_at_deepest: bool) {
    DB_DEMO_LEVELS.store(levels, Ordering::SeqCst);
    DB_DEMO_NMI.store(nmi_at_deepest, Ordering::SeqCst);
    println!("db: arming DR0 on {:#x}; TSS IST[DB] = {:016x}", db_target(1), percpu::this_cpu().ist(Ist::DB));
    // The debug registers are per CPU, not per thread: stay on this CPU's
    // thread while armed, or another thread could hit the breakpoint.
    without_interrupts(|| {
        debug::arm_execute(0, db_target(1));
        DB_TARGETS[0]();
        debug::disarm(0);
    });
    DB_DEMO_LEVELS.store(0, Ordering::SeqCst);
    println!("db: back from level 1; TSS IST[DB] = {:016x}", percpu::this_cpu().ist(Ist::DB));
}

/// `watch`: a data-write breakpoint on a word, then a write to it.
fn watch_demo(value: u64) {
    let addr = WATCHED.as_ptr() as u64;
    println!("watch: arming DR0 for writes to {addr:#x}");
    without_interrupts(|| {
        debug::arm_write(0, addr);
        WATCHED.store(value, Ordering::SeqCst);
        debug::disarm(0);
    });
}

/// Claims the #DBs of `db N` (on its targets) and of `watch` (on WATCHED).
fn db_hook(regs: &mut Regs, ev: &DebugEvent) -> bool {
    let (DebugKind::Db, Some(slot)) = (ev.kind, ev.slot) else { return false };
    let (depth, frame) = (ev.depth, ev.frame);
    let levels = DB_DEMO_LEVELS.load(Ordering::SeqCst);
    if levels >= depth && depth >= 1 && regs.rip == db_target(depth) {
        DB_LEVEL_FRAME[depth as usize].store(frame, Ordering::SeqCst);
        println!(
            "db: level {depth}: #DB on the {} stack (frame {frame:016x}), interrupted RSP on {}; TSS IST[DB] now {:016x}",
            info::name_of(frame),
            info::name_of(regs.rsp),
            percpu::this_cpu().ist(Ist::DB)
        );
        if depth < levels {
            let next = depth as u8; // slot of the next level
            debug::arm_execute(next, db_target(depth + 1));
            DB_TARGETS[depth as usize]();
            debug::disarm(next);
        } else if DB_DEMO_NMI.load(Ordering::SeqCst) {
            self_nmi_and_report("db");
        }
        return true;
    }
    if debug::read_dr(slot) == WATCHED.as_ptr() as u64 {
        // The writer's RFLAGS.IF shows whether a thread switch was possible
        // while DR0 was armed (it must not be: the registers are per CPU).
        let irqs = if regs.rflags & RFLAGS_IF != 0 { "on" } else { "off" };
        println!(
            "watch: write to {:#x} by RIP {:016x}, value now {}, writer's interrupts {irqs}; #DB ran on the {} stack",
            debug::read_dr(slot),
            regs.rip,
            WATCHED.load(Ordering::SeqCst),
            info::name_of(frame)
        );
        return true;
    }
    false
}

pub mod ktests {
    use core::sync::atomic::Ordering;

    use crate::arch::percpu;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::layout::{estack_range, EStack, Ist};

    pub static KTESTS: &[KTest] =
        &[KTest { name: "nested_db_uses_db_then_db1", run: nested_db_uses_db_then_db1, oopses: false }];

    fn in_stack(addr: u64, kind: EStack) -> bool {
        let (bottom, top) = estack_range(percpu::this_cpu().id(), kind);
        (bottom..top).contains(&addr)
    }

    fn nested_db_uses_db_then_db1() -> KResult {
        super::db_demo(2, false);
        let l1 = super::DB_LEVEL_FRAME[1].load(Ordering::SeqCst);
        let l2 = super::DB_LEVEL_FRAME[2].load(Ordering::SeqCst);
        kcheck!(in_stack(l1, EStack::DB), "level 1 frame {l1:#x} not on #DB");
        kcheck!(in_stack(l2, EStack::DB1), "level 2 frame {l2:#x} not on #DB1");
        let top = estack_range(percpu::this_cpu().id(), EStack::DB).1;
        kcheck!(percpu::this_cpu().ist(Ist::DB) == top, "IST[DB] not restored after nesting");
        Ok(())
    }
}

/// Send this CPU an NMI through the local APIC, wait for it, and report
/// where its handler ran and what it interrupted (printing happens here,
/// outside NMI context).
fn self_nmi_and_report(who: &str) -> bool {
    if !nmi::self_nmi_quiet() {
        println!("{who}: no NMI arrived (local APIC not delivering?)");
        return false;
    }
    report_last(who);
    true
}

/// Print where the last NMI on this CPU ran and what it interrupted.
fn report_last(who: &str) {
    let cpu = percpu::this_cpu();
    let frame = cpu.handler_rsp[crate::arch::vectors::X86_TRAP_NMI as usize].load(Ordering::SeqCst);
    let interrupted = cpu.interrupted_rsp[crate::arch::vectors::X86_TRAP_NMI as usize].load(Ordering::SeqCst);
    println!(
        "{who}: NMI #{} on CPU {} handled on the {} stack (frame {frame:016x}), interrupted RSP {interrupted:016x} on {}",
        crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst),
        cpu.id(),
        info::name_of(frame),
        info::name_of(interrupted)
    );
}
