//! Thread stacks that grow on demand (docs/dynamic-stacks.md):
//! `dynamic-stacks`, `grow`.

use core::hint::black_box;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{Ist, DYNAMIC_CACHE_KEEP_PAGES, DYNAMIC_RESERVE_FRAMES, PAGE_SIZE, THREAD_SIZE};
use crate::sched::{self, Ended};
use crate::stacks::dynamic;
use crate::{mm::phys, println};

/// Arm dynamic stacks if they are not (the gates move once, for good),
/// saying so the first time.
pub fn arm() -> Result<(), CmdError> {
    if dynamic::armed() {
        return Ok(());
    }
    if !dynamic::arm() {
        return Err(CmdError::Failed("the entry layer has not registered its gates".into()));
    }
    println!(
        "dynamic-stacks: armed: #PF runs on its own stack (IST{}), interrupts enter through the entry stack",
        Ist::PF as u8
    );
    Ok(())
}

/// `dynamic-stacks [on [PAGES]|off]`: boot parameter (and setting): whether
/// new 16 KiB threads get dynamic stacks, and how many of their top pages
/// are backed from the start; no argument: the state.
pub fn dynamic_stacks(args: &[&str]) -> CmdResult {
    let max = dynamic::MAX_INITIAL_PAGES;
    match args {
        [] => {}
        ["on", rest @ ..] => {
            let pages = match rest {
                [] => None,
                [n] => Some(cmdline::number("PAGES", n, 1..=max)?),
                [_, extra, ..] => return Err(ArgError::Unexpected((*extra).into()).into()),
            };
            arm()?;
            dynamic::set_default(true);
            if let Some(p) = pages {
                dynamic::set_initial_pages(p);
            }
        }
        ["off"] => {
            dynamic::set_default(false);
        }
        [other, ..] => {
            return Err(
                ArgError::Invalid(alloc::format!("{other}: want on [PAGES] or off, or nothing for the state")).into()
            )
        }
    }
    println!(
        "dynamic-stacks: new 16K threads get {} stacks; armed: {}; dynamic stacks alive: {}; pages added by faults: {}; reserve: {}/{DYNAMIC_RESERVE_FRAMES} frames on this CPU; a new one starts with {} of {} pages backed",
        if dynamic::default_on() { "dynamic" } else { "fixed" },
        if dynamic::armed() { "yes" } else { "no" },
        dynamic::live(),
        dynamic::grown_pages(),
        dynamic::reserved(),
        dynamic::initial_pages(),
        THREAD_SIZE / PAGE_SIZE,
    );
    Ok(())
}

/// Bytes of stack each level of `deepen` uses at least.
const LEVEL_FRAME: usize = 256;

/// How `grow`'s thread ran: deepest RSP depth, pages backed there.
static DEPTH: AtomicU64 = AtomicU64::new(0);
static BACKED: AtomicU64 = AtomicU64::new(0);

/// Recurse until `bytes` of the stack are in use, then note what is backed.
#[inline(never)]
fn deepen(top: u64, bytes: u64) -> u64 {
    let mut frame = [0u8; LEVEL_FRAME];
    black_box(&mut frame);
    let depth = top - crate::arch::cpu::stack_pointer();
    if depth >= bytes {
        let me = sched::current().expect("a thread");
        DEPTH.store(depth, Ordering::SeqCst);
        BACKED.store(me.stack.resident_pages(), Ordering::SeqCst);
        return depth;
    }
    frame[0] = depth as u8;
    deepen(top, bytes) + u64::from(black_box(frame)[0])
}

/// Interrupts this CPU took (every external vector).
fn irqs_here() -> u64 {
    crate::arch::entry::irq::IRQ_COUNTS.this().iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

/// Wait for an interrupt with RSP at the lowest backed byte of this
/// thread's stack: the CPU's push of the interrupt frame is the first
/// touch of the page below. Returns whether the interrupt was handled
/// (not lost in a fault during its delivery).
fn irq_at_edge() -> bool {
    let me = sched::current().expect("a thread");
    let edge = me.stack.resident_bottom();
    x86_64::instructions::interrupts::disable();
    let before = irqs_here();
    // An NMI also ends `hlt` but pushes nothing here (it has its own
    // stack): wait again until something touched the page below.
    for _ in 0..EDGE_TRIES {
        // SAFETY: RSP moves down within this thread's own stack (below it
        // nothing of ours is live; the page there is growable) and is put
        // back before any Rust code runs; `sti; hlt` waits for the next
        // interrupt.
        unsafe {
            core::arch::asm!(
                "mov {save}, rsp",
                "mov rsp, {edge}",
                "sti",
                "hlt",
                "cli",
                "mov rsp, {save}",
                save = out(reg) _,
                edge = in(reg) edge,
            );
        }
        if crate::mm::paging::present(edge - 8) {
            break;
        }
    }
    let handled = irqs_here() > before;
    x86_64::instructions::interrupts::enable();
    println!(
        "grow: an interrupt arrived with RSP at {edge:016x}, the bottom of the backed part: {} of {} pages backed now; the interrupt was {}",
        me.stack.resident_pages(),
        THREAD_SIZE / PAGE_SIZE,
        if handled { "handled" } else { "LOST (its frame's push faulted)" }
    );
    handled
}

/// Wake-ups `irq_at_edge` waits through for an interrupt (NMIs end `hlt` too).
const EDGE_TRIES: usize = 100;

/// Bit 62 of `grow_thread`'s argument: first wait for an interrupt at the edge.
const IRQ_AT_EDGE: u64 = 1 << 62;

/// `arg`: bytes to reach, bit 63 set: with the frame allocator's lock held.
fn grow_thread(arg: u64) -> i64 {
    let me = sched::current().expect("a thread");
    let top = me.stack.top();
    let bytes = arg & !(1 << 63 | IRQ_AT_EDGE);
    println!(
        "grow: thread {} starts with {} of {} pages of its stack backed; to use {bytes} bytes{}",
        me.pid,
        me.stack.resident_pages(),
        THREAD_SIZE / PAGE_SIZE,
        if arg >> 63 != 0 { ", holding the frame allocator's lock" } else { "" }
    );
    if arg & IRQ_AT_EDGE != 0 && !irq_at_edge() {
        return 1;
    }
    if arg >> 63 != 0 {
        // Every growth fault on the way happens with the lock held (and
        // interrupts off): mapping must need neither.
        phys::with_lock_held(|| black_box(deepen(top, bytes)));
    } else {
        black_box(deepen(top, bytes));
    }
    0
}

/// `grow BYTES [--holding-lock] [--pf-on-stack] [--irq-at-edge] [--threads N]`.
pub fn grow(args: &[&str]) -> CmdResult {
    let usage = || ArgError::usage_and(" (BYTES of stack to use, 256 to 32768)");
    let (mut bytes, mut holding_lock, mut pf_on_stack, mut edge, mut threads) = (None, false, false, false, None);
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        match a {
            "--holding-lock" => holding_lock = true,
            "--irq-at-edge" => edge = true,
            "--pf-on-stack" => pf_on_stack = true,
            "--threads" => threads = Some(cmdline::number("N", it.next().ok_or_else(usage)?, 1..=100_000)?),
            n if bytes.is_none() => bytes = Some(cmdline::number("BYTES", n, 256..=2 * THREAD_SIZE)?),
            _ => return Err(usage().into()),
        }
    }
    let bytes = bytes.ok_or_else(usage)?;
    if threads.is_some() && (holding_lock || pf_on_stack || edge || bytes >= THREAD_SIZE) {
        return Err(ArgError::Invalid("--threads goes alone, with BYTES below 16384".into()).into());
    }
    arm()?;
    if let Some(n) = threads {
        return churn(n, bytes);
    }
    let stack = sched::StackRequest { size: THREAD_SIZE, limit: None, dynamic: true };
    let grown = dynamic::grown_pages();
    DEPTH.store(0, Ordering::SeqCst);
    let arg = bytes | u64::from(holding_lock) << 63 | if edge { IRQ_AT_EDGE } else { 0 };
    if pf_on_stack {
        // The RFC's situation: no stack of its own for the fault (the IDT
        // is shared: every CPU's). The oops that follows puts the gate back.
        crate::arch::idt::take_gate_ist(crate::arch::vectors::X86_TRAP_PF);
        println!("grow: #PF taken off its IST stack: a growth fault cannot be delivered (the RFC's #DF)");
    }
    let pid = sched::spawn_with_stack("grow", grow_thread, arg, sched::Placement::Any, stack)
        .map_err(|e| CmdError::Failed(alloc::format!("{e}")))?;
    match sched::join(pid) {
        Ok(Ended::Exited(0)) => {
            println!(
                "grow: reached {} bytes with {} of {} pages backed, {} of them added by faults; the stack went back with at most {DYNAMIC_CACHE_KEEP_PAGES}",
                DEPTH.load(Ordering::SeqCst),
                BACKED.load(Ordering::SeqCst),
                THREAD_SIZE / PAGE_SIZE,
                dynamic::grown_pages() - grown,
            );
            Ok(())
        }
        Ok(Ended::Killed) => {
            println!("grow: thread grow ({pid}) was killed by the oops and reaped; the system carries on");
            Ok(())
        }
        Ok(other) => Err(CmdError::Failed(alloc::format!("grow thread ended: {other:?}"))),
        Err(e) => Err(CmdError::Failed(alloc::format!("{e}"))),
    }
}

/// Threads alive at once in `churn` (they spread over the CPUs).
const CHURN_WAVE: u64 = 32;

/// Frames accounted for: free, in the growth reserves, or become page
/// tables since boot (never given back, as in Linux).
fn frames_accounted() -> u64 {
    phys::counts().1 + dynamic::reserved_everywhere() + crate::mm::paging::kernel_table_pages()
}

/// `grow BYTES --threads N`: N threads on dynamic stacks, `CHURN_WAVE` at a
/// time, each growing to BYTES; then every frame must be back.
fn churn(n: u64, bytes: u64) -> CmdResult {
    crate::stacks::thread::drain_cache();
    let (frames0, vmap0, live0, grown0) =
        (frames_accounted(), crate::mm::vmalloc::stats(), dynamic::live(), dynamic::grown_pages());
    let stack = sched::StackRequest { size: THREAD_SIZE, limit: None, dynamic: true };
    let mut done = 0;
    while done < n {
        let wave = CHURN_WAVE.min(n - done);
        let mut pids = alloc::vec::Vec::new();
        for _ in 0..wave {
            let pid = sched::spawn_with_stack("churn", churn_thread, bytes, sched::Placement::Any, stack)
                .map_err(|e| CmdError::Failed(alloc::format!("thread {done}: {e}")))?;
            pids.push(pid);
        }
        for pid in pids {
            if sched::join(pid) != Ok(Ended::Exited(0)) {
                return Err(CmdError::Failed(alloc::format!("thread {pid} did not end well")));
            }
        }
        done += wave;
    }
    crate::stacks::thread::drain_cache();
    let (frames1, vmap1, live1) = (frames_accounted(), crate::mm::vmalloc::stats(), dynamic::live());
    println!(
        "grow: {n} threads on dynamic stacks, each to {bytes} bytes: {} pages added by faults; frames free or held {frames0} -> {frames1}; vmap areas {} -> {}; dynamic stacks alive {live0} -> {live1}",
        dynamic::grown_pages() - grown0,
        vmap0.areas,
        vmap1.areas
    );
    if frames0 != frames1 || vmap0 != vmap1 || live0 != live1 {
        return Err(CmdError::Failed("frames, vmap space or dynamic stacks leaked".into()));
    }
    println!("grow: every frame back");
    Ok(())
}

fn churn_thread(bytes: u64) -> i64 {
    let top = sched::current().expect("a thread").stack.top();
    black_box(deepen(top, bytes));
    0
}

pub mod ktests {
    //! Only the owner grows its stack: a reader of another thread's dynamic
    //! stack (`bt PID`, `ps`, the usage scan) backs nothing, and a fault on
    //! another stack's growable page is not a growth fault.

    use core::sync::atomic::{AtomicBool, Ordering};

    use crate::kcheck;
    use crate::ktest::{KResult, KTest};
    use crate::layout::{PAGE_SIZE, THREAD_SIZE};
    use crate::sched::{self, Ended, Placement, StackRequest};
    use crate::stacks::dynamic::{self, Growth};

    pub static KTESTS: &[KTest] = &[KTest {
        name: "another_threads_dynamic_stack_is_read_not_grown",
        run: another_threads_dynamic_stack_is_read_not_grown,
        oopses: false,
    }];

    static RELEASE: AtomicBool = AtomicBool::new(false);

    fn sleeper(_: u64) -> i64 {
        while !RELEASE.load(Ordering::SeqCst) {
            sched::sleep_ms(1);
        }
        0
    }

    fn another_threads_dynamic_stack_is_read_not_grown() -> KResult {
        kcheck!(dynamic::arm(), "dynamic stacks could not be armed");
        RELEASE.store(false, Ordering::SeqCst);
        let other = crate::arch::percpu::online_cpus().find(|&c| c != crate::arch::percpu::current_cpu_id());
        let on = other.map_or(Placement::Any, Placement::Pinned);
        let stack = StackRequest { size: THREAD_SIZE, limit: None, dynamic: true };
        let pid = sched::spawn_with_stack("ktest-sleeper", sleeper, 0, on, stack).map_err(|e| alloc::format!("{e}"))?;
        sched::sleep_ms(5);
        let t = sched::snapshot().into_iter().find(|t| t.pid == pid).ok_or("the sleeper is gone")?;
        let (backed, grown) = (t.stack.resident_pages(), dynamic::grown_pages());
        // What `bt PID`, `ps` and `stacks` do with it.
        x86_64::instructions::interrupts::without_interrupts(|| {
            if let Some(ctx) = sched::saved_context(pid) {
                crate::debug::backtrace::print_trace(ctx.saved_rsp, ctx.rbp_slot);
            }
        });
        let free = t.stack.not_used();
        let scan = t.stack.scan();
        // A fault on its growable page from this stack is not ours to grow.
        let page = t.stack.bottom + PAGE_SIZE;
        let decision = dynamic::grow(page, crate::arch::cpu::stack_pointer());
        let after = t.stack.resident_pages();
        RELEASE.store(true, Ordering::SeqCst);
        let ended = sched::join(pid);
        kcheck!(backed < THREAD_SIZE / PAGE_SIZE, "the sleeper has all {backed} pages backed");
        kcheck!(decision == Growth::NotOurs, "a fault on another stack's page was {decision:?}");
        kcheck!(after == backed && dynamic::grown_pages() == grown, "reading it backed {} pages", after - backed);
        kcheck!(free > THREAD_SIZE - backed * PAGE_SIZE && scan.untouched >= free - 8, "free {free}, scan {scan:?}");
        kcheck!(ended == Ok(Ended::Exited(0)), "the sleeper ended {ended:?}");
        Ok(())
    }
}
