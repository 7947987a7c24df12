//! User mode (docs/user-mode.md): `run`, `kill`, `userstate`, `hardening`,
//! `kstack-offset`.

use alloc::string::String;
use core::sync::atomic::Ordering;

use crate::arch::{percpu, usermode};
use crate::println;
use crate::sched::{self, Ended, Placement};
use crate::shell::cmdline::{self, ArgError};
use crate::shell::commands::{CmdError, CmdResult};
use crate::user::process::{self, RunError};
use crate::user::programs;

fn program_list() -> String {
    programs::names().collect::<alloc::vec::Vec<_>>().join(", ")
}

/// Start `prog` with `args`; wait for it unless `background`.
fn start(prog: &str, args: &str, background: bool) -> CmdResult {
    let pid = match process::run(prog, args, Placement::Any) {
        Ok(pid) => pid,
        Err(RunError::NoSuchProgram) => {
            return Err(ArgError(alloc::format!("run: no program '{prog}'; programs: {}", program_list())).into())
        }
        Err(e) => return Err(CmdError::Failed(alloc::format!("run: {prog}: {e}"))),
    };
    if background {
        println!("run: {prog}[{pid}] started in the background");
        return Ok(());
    }
    report(prog, pid, sched::join(pid))
}

fn report(prog: &str, pid: u32, how: Result<Ended, sched::JoinError>) -> CmdResult {
    match how {
        Ok(Ended::Exited(0)) => println!("run: {prog}[{pid}] exited with status 0"),
        Ok(Ended::Exited(code)) if code < 0 => println!("run: {prog}[{pid}] killed by signal {}", -code),
        Ok(Ended::Exited(code)) => println!("run: {prog}[{pid}] exited with status {code}"),
        Ok(Ended::Killed) => println!("run: {prog}[{pid}] killed by an oops"),
        Err(e) => return Err(CmdError::Failed(alloc::format!("run: {prog}[{pid}]: {e:?}"))),
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
        return Err(
            ArgError(alloc::format!("run: usage: run [--bg] PROG [ARGS...]; programs: {}", program_list())).into()
        );
    };
    start(prog, &rest.join(" "), background)
}

/// `kill PID`: end a user process at its next return to user mode, wait for it.
pub fn kill(args: &[&str]) -> CmdResult {
    let [pid] = args else {
        return Err(ArgError("kill: usage: kill PID".into()).into());
    };
    let pid = cmdline::number("kill", "PID", pid, 1..=u64::from(u32::MAX))? as u32;
    let name = sched::snapshot().into_iter().find(|t| t.pid == pid).map(|t| t.name);
    match sched::kill(pid) {
        Ok(()) => report(name.as_deref().unwrap_or("?"), pid, sched::join(pid)),
        Err(sched::KillPidError::NoSuchTask) => Err(ArgError(alloc::format!("kill: no task {pid}")).into()),
        Err(sched::KillPidError::KernelThread) => {
            Err(ArgError(alloc::format!("kill: {pid} is a kernel thread; only user processes can be killed")).into())
        }
    }
}

/// `kstack-offset [N]`: N syscalls, the spread of their stack depths.
pub fn kstack_offset(args: &[&str]) -> CmdResult {
    let n = match args {
        [] => 1000,
        [n] => cmdline::number("kstack-offset", "N", n, 1..=1_000_000)?,
        _ => return Err(ArgError("kstack-offset: usage: kstack-offset [N]".into()).into()),
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
        _ => Err(ArgError(alloc::format!("hardening: '{v}': expected on or off"))),
    };
    match args {
        [] => {}
        ["randomize_kstack_offset", v] => usermode::set_randomize_kstack_offset(onoff(v)?),
        ["stackleak", v] => usermode::set_stackleak(onoff(v)?),
        _ => {
            return Err(ArgError(
                "hardening: usage: hardening [randomize_kstack_offset on|off | stackleak on|off]".into(),
            )
            .into())
        }
    }
    let state = |on: bool| if on { "on" } else { "off" };
    println!(
        "hardening: randomize_kstack_offset {}, stackleak {}",
        state(usermode::randomize_kstack_offset()),
        state(usermode::stackleak())
    );
    Ok(())
}

/// `userstate`: what crossed the user boundary on each CPU, and the checks.
pub fn userstate(args: &[&str]) -> CmdResult {
    cmdline::no_args("userstate", args)?;
    println!("CPU  syscalls   sysret     iret  moved-off-IST  violations");
    for cpu in percpu::online_cpus() {
        let u = &percpu::of(cpu).user;
        println!(
            "{cpu:>3} {:>9} {:>8} {:>8} {:>14} {:>11}",
            u.syscalls.load(Ordering::Relaxed),
            u.sysret.load(Ordering::Relaxed),
            u.iret.load(Ordering::Relaxed),
            u.moved_off_ist.load(Ordering::Relaxed),
            u.violations.load(Ordering::Relaxed)
        );
    }
    Ok(())
}
