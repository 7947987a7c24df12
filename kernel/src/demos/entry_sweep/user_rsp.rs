//! `nmi-user-rsp`: NMIs at a user program that runs `syscall` with RSP on
//! its CPU's NMI stack — the race that found the NMI return trusting a
//! user-controlled RSP (`stacks::nmi_return`).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::entry::user_rsp_code;
use crate::arch::nmi;
use crate::arch::percpu::{self, this_cpu};
use crate::arch::regs::Regs;
use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::layout::{estack_range, EStack, MAX_CPUS};
use crate::sched::{self, Ended, Placement};
use crate::time::spin_until;
use crate::user::process;
use crate::{debug, println, smp};

/// Linux's SIGKILL: a killed process ends with `-SIGKILL`.
const SIGKILL: i64 = 9;

pub fn init() {
    nmi::register_nmi_handler(note_user_rsp_nmi);
}

/// Counting NMIs that land on the user's RSP (the SYSCALL entry before the
/// stack switch, the SYSRET exit after RSP is restored).
static COUNTING: AtomicBool = AtomicBool::new(false);
static ON_USER_RSP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

fn note_user_rsp_nmi(regs: &Regs) {
    if COUNTING.load(Ordering::Relaxed) && !regs.from_user() && user_rsp_code().iter().any(|c| c.contains(&regs.rip)) {
        ON_USER_RSP[this_cpu().id()].fetch_add(1, Ordering::Relaxed);
    }
}

/// `nmi-user-rsp N`: a user program on another CPU loops on `syscall` with
/// RSP pointing at that CPU's NMI stack bottom while this CPU sends it NMIs
/// until N have been delivered. Run it under `--singlestep`, where NMIs
/// land between any two instructions, also the five that run on the
/// user's RSP. It must end with the program's registers intact, no oops,
/// the NMI stack never re-entered and no return-to-user violation.
pub fn nmi_user_rsp(args: &[&str]) -> CmdResult {
    let [n] = args else {
        return Err(ArgError::usage().into());
    };
    let n = cmdline::number("N", n, 1..=10_000_000)?;
    let me = percpu::current_cpu_id();
    let Some(target) = percpu::online_cpus().find(|&c| c != me) else {
        return Err(CmdError::Failed("nmi-user-rsp: needs 2 CPUs (runner --smp 2 or more)".into()));
    };
    let (bottom, _) = estack_range(target, EStack::NMI);
    let cpu = percpu::of(target);
    let oops0 = debug::oops::oops_count();
    let reentered0 = crate::arch::nmi::NMI_STACK_REENTERED.of(cpu.id()).load(Ordering::SeqCst);
    let violations0 = cpu.user.violations.load(Ordering::SeqCst);
    let syscalls0 = cpu.user.syscalls.load(Ordering::SeqCst);
    ON_USER_RSP[target].store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    println!("nmi-user-rsp: a program on CPU {target} calls getpid with RSP = {bottom:016x} (its NMI stack's bottom); {n} NMIs to CPU {target}");
    let pid = process::run("attack", &alloc::format!("syscall-rsp-loop {bottom:x}"), Placement::Pinned(target))
        .map_err(|e| CmdError::Failed(alloc::format!("nmi-user-rsp: {e}")))?;
    let alive = || sched::snapshot().iter().any(|t| t.pid == pid && !t.state.ended());
    let (mut sent, mut delivered) = (0u64, 0u64);
    while delivered < n && alive() {
        let before = crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst);
        smp::send_nmi(target);
        sent += 1;
        if spin_until(100, || crate::arch::nmi::NMI_COUNT.of(cpu.id()).load(Ordering::SeqCst) != before) {
            delivered += 1;
        }
    }
    COUNTING.store(false, Ordering::SeqCst);
    // The program loops until killed: anything else is how it failed.
    let killed = alive() && sched::kill(pid).is_ok();
    let ended = sched::join(pid);
    let intact = killed && ended == Ok(Ended::Exited(-SIGKILL));
    sched::reap_children();
    let on_user_rsp = ON_USER_RSP[target].load(Ordering::SeqCst);
    let oopses = debug::oops::oops_count() - oops0;
    let reentered = crate::arch::nmi::NMI_STACK_REENTERED.of(cpu.id()).load(Ordering::SeqCst) - reentered0;
    let violations = cpu.user.violations.load(Ordering::SeqCst) - violations0;
    let syscalls = cpu.user.syscalls.load(Ordering::SeqCst) - syscalls0;
    println!(
        "nmi-user-rsp: {syscalls} syscalls; {sent} NMIs sent, {delivered} delivered, {on_user_rsp} on the user's RSP; \
         NMI stack re-entered {reentered}; return-to-user violations {violations}; oopses {oopses}; the program {}",
        match ended {
            _ if intact => "ran until killed, registers intact".into(),
            Ok(Ended::Exited(3)) => "saw its registers changed".into(),
            other => alloc::format!("ended early: {}", sched::describe(&other)),
        }
    );
    if !intact || oopses > 0 || reentered > 0 || violations > 0 || delivered < n {
        return Err(CmdError::Failed("nmi-user-rsp: the kernel did not hold".into()));
    }
    Ok(())
}
