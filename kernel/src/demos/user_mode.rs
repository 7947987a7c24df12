//! User mode (docs/user-mode.md): `run`, `kill`, `userstate`, `hardening`,
//! `kstack-offset`.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::arch::entry::usermode;
use crate::arch::percpu;
use crate::arch::regs::{Regs, REGS_SIZE};
use crate::arch::stackleak;
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{estack_range, EStack, Ist, MAX_CPUS};
use crate::println;
use crate::sched::{self, Ended, Placement};
use crate::user::process::{self, RunError};
use crate::user::programs;

fn program_list() -> String {
    programs::names().collect::<alloc::vec::Vec<_>>().join(", ")
}

/// Start `prog` with `args` in a new process; errors as `cmd` reports them.
fn spawn(cmd: &str, prog: &str, args: &str) -> Result<u32, CmdError> {
    spawn_on(cmd, prog, args, Placement::Any)
}

fn spawn_on(cmd: &str, prog: &str, args: &str, placement: Placement) -> Result<u32, CmdError> {
    process::run(prog, args, placement).map_err(|e| match e {
        RunError::NoSuchProgram => {
            ArgError::Invalid(alloc::format!("no program '{prog}'; programs: {}", program_list())).into()
        }
        e => CmdError::Failed(alloc::format!("{cmd}: {prog}: {e}")),
    })
}

/// Run `prog` pinned to this CPU (its threads inherit the pinning) and
/// wait for it.
pub fn run_here(prog: &str, args: &str) -> CmdResult {
    let here = Placement::Pinned(crate::arch::percpu::current_cpu_id());
    let interrupt = crate::tty::Interrupt::mark();
    let pid = spawn_on("run", prog, args, here)?;
    wait_in_foreground(prog, pid, interrupt)
}

/// Start `prog` with `args`; wait for it unless `background`.
pub fn start(prog: &str, args: &str, background: bool) -> CmdResult {
    let interrupt = crate::tty::Interrupt::mark();
    let pid = spawn("run", prog, args)?;
    if background {
        println!("run: {prog}[{pid}] started in the background");
        return Ok(());
    }
    wait_in_foreground(prog, pid, interrupt)
}

/// Wait for `pid` as the terminal's foreground process: Ctrl-C ends it —
/// also one pressed since `interrupt` was marked, before it was the foreground.
fn wait_in_foreground(prog: &str, pid: u32, interrupt: crate::tty::Interrupt) -> CmdResult {
    let _foreground = crate::tty::Foreground::set(pid);
    if interrupt.pending() {
        let _ = sched::kill_with(pid, sched::KILLED_BY_SIGINT);
    }
    report(prog, pid, sched::join(pid))
}

fn report(prog: &str, pid: u32, how: Result<Ended, sched::JoinError>) -> CmdResult {
    match how {
        Ok(Ended::Exited(0)) => println!("run: {prog}[{pid}] exited with status 0"),
        Ok(Ended::Exited(sched::KILLED_BY_SIGINT)) => println!("run: {prog}[{pid}] ended by Ctrl-C (signal 2)"),
        Ok(Ended::Exited(code)) if code < 0 => println!("run: {prog}[{pid}] killed by signal {}", -code),
        Ok(Ended::Exited(code)) => println!("run: {prog}[{pid}] exited with status {code}"),
        Ok(Ended::Killed) => println!("run: {prog}[{pid}] killed by an oops"),
        Err(e) => return Err(CmdError::Failed(alloc::format!("run: {prog}[{pid}]: {e}"))),
    }
    Ok(())
}

/// `run [--bg] PROG [ARGS...]`.
pub fn run(args: &[&str]) -> CmdResult {
    let (background, args) = match args {
        ["--bg", rest @ ..] => (true, rest),
        _ => (false, args),
    };
    let [prog, rest @ ..] = args else {
        return Err(ArgError::usage_and(alloc::format!("; programs: {}", program_list())).into());
    };
    start(prog, &rest.join(" "), background)
}

/// `run-many N PROG [ARGS]`: run PROG N times, one after the other, and
/// print one summary line (process creation and teardown under load).
pub fn run_many(args: &[&str]) -> CmdResult {
    let [n, prog, rest @ ..] = args else {
        return Err(ArgError::usage().into());
    };
    let n = cmdline::number("N", n, 1..=100_000)?;
    let rest = rest.join(" ");
    let (mut ok, mut failed) = (0u64, 0u64);
    for _ in 0..n {
        let pid = match process::run(prog, &rest, Placement::Any) {
            Ok(pid) => pid,
            Err(RunError::NoSuchProgram) => {
                return Err(
                    ArgError::Invalid(alloc::format!("no program '{prog}'; programs: {}", program_list())).into()
                )
            }
            Err(e) => return Err(CmdError::Failed(alloc::format!("run-many: {prog}: {e}"))),
        };
        match sched::join(pid) {
            Ok(Ended::Exited(0)) => ok += 1,
            _ => failed += 1,
        }
    }
    println!("run-many: {n} runs of {prog}: {ok} exited with status 0, {failed} did not");
    if failed > 0 {
        return Err(CmdError::Failed(alloc::format!("run-many: {failed} runs of {prog} failed")));
    }
    Ok(())
}

/// `kill PID`: end a user process at its next return to user mode, wait for it.
pub fn kill(args: &[&str]) -> CmdResult {
    let [pid] = args else {
        return Err(ArgError::usage().into());
    };
    let pid = cmdline::number("PID", pid, 1..=u64::from(u32::MAX))? as u32;
    let tasks = sched::snapshot();
    let task = tasks.iter().find(|t| t.pid == pid);
    let name = task.map(|t| t.name);
    // The process's other threads: the kill ends them too (SIGKILL ends
    // the thread group), and once PID is gone they are this shell's to
    // reap (orphans go to init), so the command waits for them as well.
    let others: Vec<u32> = task
        .map(|k| tasks.iter().filter(|t| t.user && t.tgid == k.tgid && t.pid != pid).map(|t| t.pid).collect())
        .unwrap_or_default();
    match sched::kill(pid) {
        Ok(()) => {
            let how = sched::join(pid);
            for &t in &others {
                let _ = sched::join(t);
            }
            report(name.as_deref().unwrap_or("?"), pid, how)
        }
        Err(sched::KillPidError::NoSuchTask) => Err(ArgError::Invalid(alloc::format!("no task {pid}")).into()),
        Err(sched::KillPidError::KernelThread) => {
            Err(ArgError::Invalid(alloc::format!("{pid} is a kernel thread; only user processes can be killed")).into())
        }
    }
}

/// `kstack-offset [N]`: N syscalls, the spread of their stack depths.
pub fn kstack_offset(args: &[&str]) -> CmdResult {
    let n = match args {
        [] => 1000,
        [n] => cmdline::number("N", n, 1..=1_000_000)?,
        _ => return Err(ArgError::usage().into()),
    };
    println!(
        "kstack-offset: randomize_kstack_offset is {}",
        if usermode::randomize_kstack_offset() { "on" } else { "off" }
    );
    start("kstack-offset", &alloc::format!("{n}"), false)
}

/// `hardening [randomize_kstack_offset|stackleak on|off]`.
pub fn hardening(args: &[&str]) -> CmdResult {
    let onoff = |v: &str| match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(ArgError::Invalid(alloc::format!("'{v}': expected on or off"))),
    };
    match args {
        [] => {}
        ["randomize_kstack_offset", v] => usermode::set_randomize_kstack_offset(onoff(v)?),
        ["stackleak", v] => stackleak::set_stackleak(onoff(v)?),
        _ => return Err(ArgError::usage().into()),
    }
    let state = |on: bool| if on { "on" } else { "off" };
    println!(
        "hardening: randomize_kstack_offset {}, stackleak {}",
        state(usermode::randomize_kstack_offset()),
        state(stackleak::stackleak())
    );
    Ok(())
}

/// What the NMI probe saw on one CPU (written in NMI context, read after).
struct Probe {
    /// NMIs from user mode seen.
    count: AtomicU64,
    ip: AtomicU64,
    /// Where the handler's frame was: the stack it ran on.
    frame: AtomicU64,
    /// The thread stack's top then.
    top: AtomicU64,
    irq_count: AtomicI64,
    /// #DB handlers running, #DB IST slot shifted (1) or not (0).
    db_depth: AtomicU64,
    ist_db_shifted: AtomicU64,
    /// NMI/#MC handlers running (this NMI's own included).
    nmi_depth: AtomicU64,
}

static PROBES: [Probe; MAX_CPUS] = [const {
    Probe {
        count: AtomicU64::new(0),
        ip: AtomicU64::new(0),
        frame: AtomicU64::new(0),
        top: AtomicU64::new(0),
        irq_count: AtomicI64::new(0),
        db_depth: AtomicU64::new(0),
        ist_db_shifted: AtomicU64::new(0),
        nmi_depth: AtomicU64::new(0),
    }
}; MAX_CPUS];

/// Register the NMI probe (from `demos::init`).
pub fn init() {
    crate::arch::nmi::register_nmi_handler(user_nmi_probe);
}

/// Every NMI that came from user mode records the CPU's state: what an
/// NMI from user mode finds is exactly "nothing live on any kernel stack".
fn user_nmi_probe(regs: &Regs) {
    if !regs.from_user() {
        return;
    }
    let cpu = percpu::this_cpu();
    let p = &PROBES[cpu.id()];
    p.ip.store(regs.rip, Ordering::Relaxed);
    p.frame.store(regs as *const Regs as u64, Ordering::Relaxed);
    p.top.store(cpu.top_of_stack.load(Ordering::Relaxed), Ordering::Relaxed);
    p.irq_count.store(cpu.irq_count.load(Ordering::Relaxed), Ordering::Relaxed);
    p.db_depth.store(u64::from(crate::arch::debug::DB_DEPTH.of(cpu.id()).load(Ordering::Relaxed)), Ordering::Relaxed);
    let (_, db_top) = estack_range(cpu.id(), EStack::DB);
    p.ist_db_shifted.store(u64::from(cpu.ist(Ist::DB) != db_top), Ordering::Relaxed);
    p.nmi_depth.store(u64::from(cpu.nmi_depth()), Ordering::Relaxed);
    p.count.fetch_add(1, Ordering::Release);
}

/// NMIs `userstate` sends a CPU before it gives up finding it in user mode.
const PROBE_TRIES: usize = 5;

/// Print what the probe saw on `cpu`, about thread `who` (one line: a user
/// program printing meanwhile cannot split it).
fn show_probe(cpu: usize, who: &str) {
    let p = &PROBES[cpu];
    let frame = p.frame.load(Ordering::Relaxed);
    let top = p.top.load(Ordering::Relaxed);
    let only_this_frame = top - frame == REGS_SIZE as u64;
    println!(
        "{who} cpu {cpu}: user mode at ip {:#x}; NMI handled on the {} stack ({}); irq_count {}; #DB depth {}, IST[DB] {}; NMI/#MC handlers {} (this one)",
        p.ip.load(Ordering::Relaxed),
        crate::stacks::info::name_of(frame),
        if only_this_frame { "its frame alone at the top: the stack was empty" } else { "NOT at the top" },
        p.irq_count.load(Ordering::Relaxed),
        p.db_depth.load(Ordering::Relaxed),
        if p.ist_db_shifted.load(Ordering::Relaxed) == 0 { "at its top" } else { "SHIFTED" },
        p.nmi_depth.load(Ordering::Relaxed),
    );
}

/// `userstate`: what crossed the user boundary on each CPU, and the checks;
/// then an NMI to every other CPU running a user thread, to show its state.
pub fn userstate(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    // sys-iret: syscalls SYSRET could not return from; bad-iret: IRETs to
    // user mode that faulted and became the process's #GP.
    println!(
        "CPU  syscalls   sysret     iret  sys-iret  bad-iret  user-IRQs  on-IRQ-stack  moved-off-IST  user-NMIs  violations"
    );
    for cpu in percpu::online_cpus() {
        let u = &percpu::of(cpu).user;
        println!(
            "{cpu:>3} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} {:>13} {:>14} {:>10} {:>11}",
            u.syscalls.load(Ordering::Relaxed),
            u.sysret.load(Ordering::Relaxed),
            u.iret.load(Ordering::Relaxed),
            u.syscall_iret.load(Ordering::Relaxed),
            u.bad_iret.load(Ordering::Relaxed),
            u.irqs.load(Ordering::Relaxed),
            u.irqs_on_irq_stack.load(Ordering::Relaxed),
            u.moved_off_ist.load(Ordering::Relaxed),
            PROBES[cpu].count.load(Ordering::Relaxed),
            u.violations.load(Ordering::Relaxed)
        );
    }
    let me = percpu::this_cpu().id();
    let users: alloc::vec::Vec<(usize, sched::Comm, u32)> = sched::snapshot()
        .into_iter()
        .filter(|t| t.user && t.state == sched::State::Running && t.cpu != me)
        .map(|t| (t.cpu, t.name, t.pid))
        .collect();
    for (cpu, name, pid) in users {
        // The thread may be in the kernel for a moment (a tick, a syscall):
        // a few tries, each an NMI that either lands in user mode or not.
        let landed = (0..PROBE_TRIES).any(|_| {
            let before = PROBES[cpu].count.load(Ordering::Acquire);
            crate::smp::send_nmi(cpu);
            crate::time::spin_until(20, || PROBES[cpu].count.load(Ordering::Acquire) != before)
        });
        if landed {
            show_probe(cpu, &alloc::format!("{name}[{pid}]"));
        } else {
            println!("cpu {cpu}: {name}[{pid}] was in the kernel for all {PROBE_TRIES} NMIs (no user-mode probe)");
        }
    }
    Ok(())
}

/// `wait [PID]`: wait for a background process (or every user process
/// this shell started and has not reaped) and report how it ended.
pub fn wait(args: &[&str]) -> CmdResult {
    let me = sched::current().map_or(0, |t| t.pid);
    let pid = match args {
        [] => {
            let mine: alloc::vec::Vec<_> =
                sched::snapshot().into_iter().filter(|t| t.user && t.parent == me).map(|t| (t.pid, t.name)).collect();
            if mine.is_empty() {
                println!("wait: no user processes to wait for");
            }
            for (pid, name) in mine {
                report(&name, pid, sched::join(pid))?;
            }
            return Ok(());
        }
        [pid] => pid,
        _ => return Err(ArgError::usage().into()),
    };
    let pid = cmdline::number("PID", pid, 1..=u64::from(u32::MAX))? as u32;
    let name = sched::snapshot().into_iter().find(|t| t.pid == pid).map(|t| t.name);
    let Some(name) = name else {
        return Err(ArgError::Invalid(alloc::format!("no task {pid}")).into());
    };
    report(&name, pid, sched::join(pid))
}
