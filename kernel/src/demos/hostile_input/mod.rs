//! Hostile input from user space (docs/hostile-input.md): `attacks` runs
//! every attack program against real kernel addresses and checks that each
//! one failed safely and that the kernel is intact afterwards.

pub mod soak;

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;

use crate::arch::percpu;
use crate::cmd::cmdline;
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{estack_range, EStack, DIRECT_MAP_BASE};
use crate::mm::phys;
use crate::sched::{self, Ended, Placement};
use crate::user::process;
use crate::{debug, println};

/// How an attack must end.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    /// Killed by this signal (Linux's line printed by the kernel).
    Signal(i64),
    /// Exited normally with this status (the kernel ignored the attack, or
    /// answered every hostile call with an error).
    Status(i64),
    /// Killed by an oops: a planted kernel bug the CPU stopped (SMAP,
    /// SMEP), as Linux's lkdtm tests end.
    Oops,
}

impl core::fmt::Display for Expect {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Expect::Signal(s) => write!(f, "killed by signal {s}"),
            Expect::Status(s) => write!(f, "exit status {s}"),
            Expect::Oops => write!(f, "killed by an oops"),
        }
    }
}

struct Attack {
    what: String,
    prog: &'static str,
    args: String,
    expect: Expect,
}

const SIGILL: i64 = 4;
const SIGSEGV: i64 = 11;

/// Every attack, with the addresses of this boot.
fn attacks() -> Vec<Attack> {
    let text = attacks as *const () as u64;
    let direct_map = DIRECT_MAP_BASE + 0x1000;
    let my_stack = sched::current_stack_range().map_or(0, |r| r.0) + 0x100;
    let irq_stack = crate::stacks::irq::range(0).map_or(0, |(bottom, _)| bottom);
    let df_stack = estack_range(0, EStack::DF).0;
    let mut list = Vec::new();
    let mut add = |what: &str, prog: &'static str, args: String, expect: Expect| {
        list.push(Attack { what: what.into(), prog, args, expect })
    };
    let segv = Expect::Signal(SIGSEGV);
    add("read kernel text", "attack", alloc::format!("read {text:x}"), segv);
    add("write kernel text", "attack", alloc::format!("write {text:x}"), segv);
    add("read the direct map", "attack", alloc::format!("read {direct_map:x}"), segv);
    add("read the shell's kernel stack", "attack", alloc::format!("read {my_stack:x}"), segv);
    add("write CPU 0's IRQ stack", "attack", alloc::format!("write {irq_stack:x}"), segv);
    add("read CPU 0's #DF stack (cpu entry area)", "attack", alloc::format!("read {df_stack:x}"), segv);
    add("jump into kernel text", "attack", alloc::format!("jump {text:x}"), segv);
    add("syscall returning into kernel text", "attack", alloc::format!("return-to {text:x}"), segv);
    for insn in ["cli", "hlt", "wrmsr", "rdmsr", "swapgs", "movcr3", "lgdt", "lidt", "in", "out", "invlpg"] {
        add(&alloc::format!("privileged instruction {insn}"), "attack", alloc::format!("priv {insn}"), segv);
    }
    for insn in ["sgdt", "sidt"] {
        add(&alloc::format!("{insn} in user mode (UMIP)"), "attack", alloc::format!("priv {insn}"), segv);
    }
    add("the kernel reads user memory through a user address (SMAP)", "attack", "smap".into(), Expect::Oops);
    add("the kernel calls user code (SMEP)", "attack", "smep".into(), Expect::Oops);
    for n in [2, 8, 18, 48] {
        add(&alloc::format!("int ${n} through a DPL-0 gate"), "attack", alloc::format!("int {n}"), segv);
    }
    add("syscall with RSP in kernel text", "attack", alloc::format!("syscall-rsp {text:x}"), Expect::Status(0));
    add("syscall with a non-canonical RSP", "attack", "syscall-rsp 8000000000000000".into(), Expect::Status(0));
    add("iretq into ring 0", "attack", "iret-kernel".into(), segv);
    add("munmap of all of user space", "attack", "munmap-all".into(), segv);
    add("syscall returning to a non-canonical RIP", "sysret", "noncanonical".into(), segv);
    add("syscall returning with a bad SS", "sysret", "badss".into(), segv);
    add("bad pointers and numbers for every syscall", "badcalls", String::new(), Expect::Status(0));
    add("undefined instruction", "ud2", String::new(), Expect::Signal(SIGILL));
    list
}

/// A checksum of the kernel's code (what no attack may change).
fn text_checksum() -> u64 {
    let Some((start, end)) = debug::symbols::text_range() else { return 0 };
    (start..end).step_by(8).fold(0u64, |acc, a| {
        // SAFETY: the kernel's own text, mapped and readable.
        acc.rotate_left(7) ^ unsafe { (a as *const u64).read_volatile() }
    })
}

/// Free frames, counting as free what the kernel keeps on purpose: thread
/// stacks in the per-CPU caches (which CPU's cache a dead process's stack
/// lands in varies) and page-table pages the vmap area gained (kept for
/// reuse, as Linux keeps them). Anything else missing afterwards is a leak.
pub fn free_frames() -> u64 {
    let cached: u64 = percpu::online_cpus().map(|c| crate::stacks::thread::cached_pages_on(c).1).sum();
    // The growth reserves of dynamic stacks are held, not lost.
    phys::counts().1 + cached + crate::mm::paging::kernel_table_pages() + crate::stacks::dynamic::reserved_everywhere()
}

/// Return-to-user check violations over every CPU (must stay 0).
pub fn violations() -> u64 {
    percpu::online_cpus().map(|c| percpu::of(c).user.violations.load(Ordering::Relaxed)).sum()
}

/// `attacks`: run every attack program; each must end as expected, and the
/// kernel's text, free memory and return-to-user checks must be unchanged.
pub fn attacks_cmd(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    let (text0, free0, viol0) = (text_checksum(), free_frames(), violations());
    let list = attacks();
    let mut surprises = 0;
    for a in &list {
        let pid = process::run(a.prog, &a.args, Placement::Any)
            .map_err(|e| CmdError::Failed(alloc::format!("attacks: {}: {e}", a.prog)))?;
        let got = match sched::join(pid) {
            Ok(Ended::Exited(code)) if code < 0 => Expect::Signal(-code),
            Ok(Ended::Exited(code)) => Expect::Status(code),
            Ok(Ended::Killed) if a.expect == Expect::Oops => Expect::Oops,
            Ok(Ended::Killed) => {
                surprises += 1;
                println!("attacks: {}: the kernel OOPSED", a.what);
                continue;
            }
            Err(e) => return Err(CmdError::Failed(alloc::format!("attacks: {}: {e}", a.what))),
        };
        let verdict = if got == a.expect { "failed safely" } else { "UNEXPECTED" };
        surprises += usize::from(got != a.expect);
        println!("attacks: {}: {got} ({verdict})", a.what);
    }
    // Orphaned threads (none expected) would hold frames: reap first.
    sched::reap_children();
    let (text1, free1, viol1) = (text_checksum(), free_frames(), violations());
    println!(
        "attacks: {} of {} failed safely; kernel text checksum {text0:016x} {}; free frames (cached stacks and kernel page tables counted free) {free0} before, {free1} after; return-to-user violations {}",
        list.len() - surprises,
        list.len(),
        if text0 == text1 { "unchanged" } else { "CHANGED" },
        viol1 - viol0
    );
    if surprises > 0 || text0 != text1 || free0 != free1 || viol1 != viol0 {
        return Err(CmdError::Failed("attacks: the kernel did not hold".into()));
    }
    Ok(())
}

/// `fuzz-syscalls N [SEED]`: one `fuzz` process per CPU, N calls in all,
/// while this CPU sends NMIs to the others every few milliseconds (so they
/// land in user mode, in syscalls, on every entry path). Every process must
/// finish, with no oops, no return-to-user violation and no frame lost.
pub fn fuzz_syscalls(args: &[&str]) -> CmdResult {
    let (n, seed) = match args {
        [n] => (cmdline::number("N", n, 1..=10_000_000)?, crate::time::rdtsc() % 100_000),
        [n, seed] => (cmdline::number("N", n, 1..=10_000_000)?, cmdline::number("SEED", seed, 0..=u64::MAX)?),
        _ => return Err(crate::cmd::cmdline::ArgError::usage().into()),
    };
    let cpus: Vec<usize> = percpu::online_cpus().collect();
    let per = n.div_ceil(cpus.len() as u64);
    println!("fuzz-syscalls: {} processes x {per} calls, seeds {seed}..{}", cpus.len(), seed + cpus.len() as u64 - 1);
    let (oops0, free0, viol0) = (debug::oops::oops_count(), free_frames(), violations());
    let mut pids = Vec::new();
    for (i, &cpu) in cpus.iter().enumerate() {
        let args = alloc::format!("{} {per}", seed + i as u64);
        let pid = process::run("fuzz", &args, Placement::Pinned(cpu))
            .map_err(|e| CmdError::Failed(alloc::format!("fuzz-syscalls: {e}")))?;
        pids.push(pid);
    }
    // NMIs at the other CPUs until every fuzzer is done.
    let me = percpu::current_cpu_id();
    let alive = |pid: u32| sched::snapshot().iter().any(|t| t.pid == pid && !t.state.ended());
    let mut nmis = 0u64;
    while pids.iter().any(|&p| alive(p)) {
        for &cpu in cpus.iter().filter(|&&c| c != me) {
            crate::smp::send_nmi(cpu);
            nmis += 1;
        }
        sched::sleep_ms(5);
    }
    let mut failed = 0;
    for pid in pids {
        if !matches!(sched::join(pid), Ok(Ended::Exited(0))) {
            failed += 1;
        }
    }
    sched::reap_children();
    let (oopses, viol) = (debug::oops::oops_count() - oops0, violations() - viol0);
    let free1 = free_frames();
    println!(
        "fuzz-syscalls: {} processes finished, {failed} did not; {nmis} NMIs sent; oopses {oopses}; return-to-user violations {viol}; free frames {free0} before, {free1} after",
        cpus.len() - failed
    );
    if failed > 0 || oopses > 0 || viol > 0 || free0 != free1 {
        return Err(CmdError::Failed("fuzz-syscalls: the kernel did not hold".into()));
    }
    Ok(())
}

/// `oom`: start `hold` processes (each sleeps, holding its pages, page
/// tables and 16 KiB kernel stack) until one cannot be created; that must
/// be a clean `out of memory` error, not a panic. Then kill them all: every
/// frame comes back. Then the same with threads of one process
/// (`threads-max`), which meet the thread-stack limit (`-EAGAIN`).
pub fn oom(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    /// A bound, in case memory is large: the point is reached long before.
    const MAX_PROCESSES: usize = 20_000;
    let free0 = free_frames();
    let mut pids = Vec::new();
    let why = loop {
        if pids.len() == MAX_PROCESSES {
            break alloc::format!("stopped at {MAX_PROCESSES} processes");
        }
        match process::run("hold", "", Placement::Any) {
            Ok(pid) => pids.push(pid),
            Err(e) => break alloc::format!("run: hold: {e}"),
        }
    };
    let at_limit = phys::counts().1;
    println!("oom: {} processes started, then: {why}; {at_limit} frames free", pids.len());
    for &pid in &pids {
        let _ = sched::kill(pid);
    }
    let mut killed = 0;
    for pid in pids {
        if matches!(sched::join(pid), Ok(Ended::Exited(sched::KILLED_BY_SIGKILL))) {
            killed += 1;
        }
    }
    let free1 = free_frames();
    println!(
        "oom: {killed} killed and reaped; free frames (cached stacks and kernel page tables counted free) {free0} before, {free1} after"
    );
    // Threads: one process adds threads until `clone_thread` fails, then
    // `exit_group` ends them all; each is reaped once it has died.
    let pid =
        process::run("threads-max", "", Placement::Any).map_err(|e| CmdError::Failed(alloc::format!("oom: {e}")))?;
    let ended = sched::join(pid);
    let left = || sched::snapshot().iter().filter(|t| t.user).count();
    let deadline = crate::time::jiffies() + crate::time::ms_to_ticks(10_000);
    while left() > 0 && crate::time::jiffies() < deadline {
        sched::reap_children();
        sched::sleep_ms(10);
    }
    let free2 = free_frames();
    println!(
        "oom: threads-max {}, {} user threads left; free frames (counted as above) {free0} before, {free2} after",
        sched::describe(&ended),
        left()
    );
    if free0 != free1 || free0 != free2 || left() > 0 {
        return Err(CmdError::Failed("oom: frames or threads were lost".into()));
    }
    Ok(())
}
