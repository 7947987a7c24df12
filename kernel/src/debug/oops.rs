//! The oops: what the kernel prints when it dies of an exception
//! (Linux `die()` → `__die()` → `show_regs()` → `show_trace_log_lvl()`).

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use super::backtrace::print_trace;
use crate::arch::percpu;
use crate::arch::regs::{show_regs, Regs};
use crate::console;
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::layout::EStack;
use crate::println;
use crate::stacks::info;

/// Linux `die_counter`: the `[#n]` of the header.
static DIE_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Oopses so far this boot (Linux's `[#N]` counter).
pub fn oops_count() -> u32 {
    DIE_COUNTER.load(Ordering::SeqCst)
}

/// CPU id + 1 of the CPU printing an oops (0: none). A fault inside the
/// oops path finds its own CPU here and must not recurse.
static DIE_LOCK: AtomicU64 = AtomicU64::new(0);
/// Linux `oops_id`: one value per boot, printed in the end marker.
static OOPS_ID: AtomicU64 = AtomicU64::new(0);

/// Test hook of `nested-oops`: the next oops faults right after its header.
static FAULT_INSIDE_NEXT_OOPS: AtomicBool = AtomicBool::new(false);

pub fn fault_inside_next_oops() {
    FAULT_INSIDE_NEXT_OOPS.store(true, Ordering::SeqCst);
}

/// Take the die lock (Linux `oops_begin`'s `die_lock`): one CPU prints an
/// oops at a time. Returns false if this CPU already holds it (a fault
/// inside the oops path).
pub fn die_lock() -> bool {
    let me = percpu::current_cpu_id() as u64 + 1;
    loop {
        match DIE_LOCK.compare_exchange(0, me, Ordering::Acquire, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(owner) if owner == me => return false,
            Err(_) => core::hint::spin_loop(),
        }
    }
}

/// Print the oops for `regs`, then kill the thread or end the boot with failure.
pub fn die(what: &str, regs: &Regs) -> ! {
    ::x86_64::instructions::interrupts::disable();
    console::unlock_for_dying_cpu();
    // The oops may have come from inside the stack tracer's hook (an
    // overflow often does: the hook is the deepest frame).
    super::stack_tracer::abandon_cpu();
    if !die_lock() {
        println!("Oops: {what} at RIP {:016x} inside the oops path; stopping", regs.rip);
        exit(ExitCode::Failure);
    }
    let n = DIE_COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    println!("Oops: {what}: {:04x} [#{n}] SMP", regs.error_code & 0xffff);
    if FAULT_INSIDE_NEXT_OOPS.swap(false, Ordering::SeqCst) {
        // SAFETY: deliberately fatal, to exercise the recursion guard above.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    }
    print_cpu_line();
    println!("RIP: {:04x}:{}", regs.cs, super::symbols::Ps(regs.rip));
    show_regs(regs, &mut |line| println!("{line}"));
    let frame = regs as *const Regs as u64;
    match info::stack_of(frame) {
        Some(s) => {
            println!("Exception stack: {} {:016x}..{:016x}, frame at {frame:016x}", s.name(), s.bottom, s.top - 1)
        }
        None => println!("Exception stack: unknown, frame at {frame:016x}"),
    }
    match info::stack_of(regs.rsp) {
        // A push at the very bottom faults before RSP moves: the stack is
        // full and the write went to the guard page below.
        Some(s) if s.bottom == regs.rsp => println!(
            "Interrupted RSP: {:016x} on {} (full: the next push lands in the guard page below)",
            regs.rsp,
            s.name()
        ),
        _ => println!("Interrupted RSP: {:016x} on {}", regs.rsp, info::name_of(regs.rsp)),
    }
    print_trace(regs.rsp, regs.rbp);
    println!("---[ end trace {:016x} ]---", oops_id());
    // A thread's oops kills the thread (the system carries on); in init,
    // idle, an interrupt, or with oops=panic the kernel panics.
    let reason = kill_or_reason();
    crate::console::bust();
    println!("Kernel panic - not syncing: {reason}");
    super::nmi_backtrace::trigger_all_cpu_backtrace(true);
    println!("---[ end Kernel panic - not syncing: {reason} ]---");
    exit(ExitCode::Failure)
}

/// `oops=panic` (Linux `panic_on_oops`).
static PANIC_ON_OOPS: AtomicBool = AtomicBool::new(false);

/// What an oops in a thread does: panic the kernel (true) or kill the thread.
pub fn set_panic_on_oops(on: bool) {
    PANIC_ON_OOPS.store(on, Ordering::SeqCst);
}

/// Why an oops panics instead of killing the thread (printed after
/// `Kernel panic - not syncing: `). Nothing here allocates: the oops may
/// come from inside the allocator.
enum PanicReason {
    Fatal,
    InInterrupt,
    KillIdle,
    KillInit,
    LocksHeld(u32),
    CannotKill(crate::sched::KillError),
}

impl core::fmt::Display for PanicReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PanicReason::Fatal => f.write_str("Fatal exception"),
            PanicReason::InInterrupt => f.write_str("Fatal exception in interrupt"),
            PanicReason::KillIdle => f.write_str("Attempted to kill the idle task!"),
            PanicReason::KillInit => f.write_str("Attempted to kill init! exitcode=0x0000000b"),
            PanicReason::LocksHeld(n) => write!(f, "Fatal exception (oops with {n} spin lock(s) held)"),
            PanicReason::CannotKill(why) => write!(f, "Fatal exception ({why})"),
        }
    }
}

/// The oops policy (Linux `oops_end` / `make_task_dead`): kill the current
/// thread and carry on (never returns), or return why the kernel must
/// panic. Interrupt context — hard IRQ, softirq, NMI, #MC (Linux
/// `in_interrupt()`) — and a held spin lock cannot be left by killing a
/// thread.
fn kill_or_reason() -> PanicReason {
    if PANIC_ON_OOPS.load(Ordering::SeqCst) {
        return PanicReason::Fatal;
    }
    let Some(cur) = crate::sched::current() else { return PanicReason::Fatal };
    let cpu = percpu::this_cpu();
    // Running on the NMI or #MC stack is NMI context even outside the
    // handler's `nmi_depth` count (a fault in the entry or exit stub).
    let on_nmi_stack = matches!(
        info::stack_of(crate::arch::cpu::stack_pointer()).map(|s| s.kind),
        Some(info::StackKind::Exception(EStack::NMI | EStack::MCE))
    );
    if cpu.irq_count.load(Ordering::SeqCst) >= 0 || cpu.nmi_depth() > 0 || cpu.in_softirq() || on_nmi_stack {
        return PanicReason::InInterrupt;
    }
    match cur.pid {
        0 => return PanicReason::KillIdle,
        crate::sched::INIT_PID => return PanicReason::KillInit,
        _ => {}
    }
    match cpu.locks_held() {
        0 => PanicReason::CannotKill(crate::sched::kill_current(reset_cpu_after_oops, recovered)),
        n => PanicReason::LocksHeld(n),
    }
}

/// `CPU: n PID: p Comm: name` (Linux `dump_stack_print_info`), for the
/// oops and for NMI backtraces.
pub fn print_cpu_line() {
    let cpu = percpu::current_cpu_id();
    match crate::sched::current() {
        Some(t) => println!("CPU: {cpu} PID: {} Comm: {:.20}", t.pid, t.name),
        // Before the scheduler starts the boot code is Linux's idle task.
        None => println!("CPU: {cpu} PID: 0 Comm: swapper/{cpu}"),
    }
}

/// Called when the killed thread is gone and the CPU moves on: undo what
/// the dying path left behind on this CPU.
pub fn recovered() {
    DIE_LOCK.store(0, Ordering::Release);
}

/// Before the CPU switches to the next task after killing an oopsed one:
/// the oops may have come from inside a #DB handler (IST[DB] shifted) with
/// breakpoints armed, or from a demo that took #DE's gate away. Reset
/// *before* the switch-in, which then arms the next thread's own user
/// watchpoint (reset after it, that watchpoint was wiped: the next thread
/// ran without it until its next switch).
pub fn reset_cpu_after_oops() {
    crate::arch::debug::reset_after_oops(percpu::this_cpu());
    crate::arch::idt::restore_removed_gates();
}

fn oops_id() -> u64 {
    if OOPS_ID.load(Ordering::Relaxed) == 0 {
        // SAFETY: rdtsc only reads the time-stamp counter.
        let tsc = unsafe { core::arch::x86_64::_rdtsc() };
        OOPS_ID.store(tsc | 1, Ordering::Relaxed);
    }
    OOPS_ID.load(Ordering::Relaxed)
}

pub mod ktests {
    use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use crate::arch::percpu;
    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::sched::{join, spawn_on, Ended, Placement};
    use crate::time::spin_until;

    pub static KTESTS: &[KTest] = &[KTest {
        name: "an_oops_keeps_the_next_threads_watchpoint",
        run: an_oops_keeps_the_next_threads_watchpoint,
        oopses: true,
    }];

    /// What the owner's watchpoint watches (nobody writes it).
    static WATCHED: AtomicU64 = AtomicU64::new(0);
    static OWNER_READY: AtomicBool = AtomicBool::new(false);
    static VICTIM_DONE: AtomicBool = AtomicBool::new(false);
    /// After the oops: the watchpoint this CPU had armed when the owner ran.
    static ARMED_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);

    fn owner(_: u64) -> i64 {
        let addr = &raw const WATCHED as u64;
        crate::sched::set_user_watch(addr);
        OWNER_READY.store(true, Ordering::SeqCst);
        // Interrupts off from here to the look: the first thing this thread
        // does after the oops switched to it is the look (a tick pending
        // after the long oops would otherwise switch away and back first,
        // which arms the watchpoint again and hides a wiped one).
        ::x86_64::instructions::interrupts::without_interrupts(|| {
            while !VICTIM_DONE.load(Ordering::SeqCst) {
                crate::sched::yield_now();
            }
            ARMED_AFTER.store(crate::arch::debug::USER_WATCH_ARMED.this().load(Ordering::SeqCst), Ordering::SeqCst);
        });
        crate::sched::set_user_watch(0);
        0
    }

    fn victim(_: u64) -> i64 {
        VICTIM_DONE.store(true, Ordering::SeqCst);
        // SAFETY: deliberately fatal: #UD, oops, this thread is killed and
        // the CPU switches to the next task: the watchpoint's owner.
        unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
        0
    }

    /// An oops resets this CPU's debug registers and switches to the next
    /// task; that task's own watchpoint must be armed when it runs (the
    /// reset came after the switch-in and wiped it).
    fn an_oops_keeps_the_next_threads_watchpoint() -> KResult {
        let me = percpu::current_cpu_id();
        let Some(other) = percpu::online_cpus().find(|&c| c != me) else { return Ok(()) };
        let on = Placement::Pinned(other);
        OWNER_READY.store(false, Ordering::SeqCst);
        VICTIM_DONE.store(false, Ordering::SeqCst);
        ARMED_AFTER.store(u64::MAX, Ordering::SeqCst);
        let owner = spawn_on("ktest-watch", owner, 0, on).map_err(|e| alloc::format!("{e}"))?;
        kcheck!(spin_until(5_000, || OWNER_READY.load(Ordering::SeqCst)), "the owner never ran");
        let victim = spawn_on("oops-victim", victim, 0, on).map_err(|e| alloc::format!("{e}"))?;
        kcheck!(join(victim) == Ok(Ended::Killed), "the victim did not oops");
        kcheck!(join(owner) == Ok(Ended::Exited(0)), "the owner did not end");
        let (want, armed) = (&raw const WATCHED as u64, ARMED_AFTER.load(Ordering::SeqCst));
        kcheck!(armed == want, "after the oops the owner ran with watchpoint {armed:#x} armed, not its own {want:#x}");
        Ok(())
    }
}
