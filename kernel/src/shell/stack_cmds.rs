//! Commands that show the stacks at work: the `stacks` table and the
//! exception demos. Each is also driven by a scenario test.

use core::sync::atomic::{AtomicU64, Ordering};

use super::cmdline::{self, ArgError};
use super::commands::{CmdError, CmdResult};
use crate::arch::{debug, mce, nmi, percpu, traps};
use crate::drivers::serial;
use crate::mm::paging;
use crate::println;
use crate::stacks::exception;
use crate::stacks::layout::PAGE_SIZE;

pub fn stacks(args: &[&str]) -> CmdResult {
    cmdline::no_args("stacks", args)?;
    println!("cpu type  bottom           top              size   guard (unmapped)                  via");
    let row = |cpu: usize, name: &str, bottom: u64, top: u64, guard: Option<(u64, u64)>, via: &str| {
        let guard = match guard {
            Some((lo, hi)) => alloc::format!("{lo:016x}-{hi:016x}"),
            None => "MAPPED (no guard!)".into(),
        };
        println!("{cpu:>3} {name:<5} {bottom:016x} {top:016x} {:>6} {guard:<33} {via}", top - bottom);
    };
    for (cpu, pid, name, bottom, top) in super::thread_cmds::task_stack_rows() {
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
    cmdline::no_args("int3", args)?;
    debug::int3();
    println!("int3: returned to the shell");
    Ok(())
}

pub fn db(args: &[&str]) -> CmdResult {
    let usage = || ArgError("db: usage: db N [nmi] (N = 1, 2 or 3 nested #DB)".into());
    let (levels, with_nmi) = match args {
        [n] => (cmdline::number("db", "N", n, 1..=3)?, false),
        [n, "nmi"] => (cmdline::number("db", "N", n, 1..=3)?, true),
        _ => return Err(usage().into()),
    };
    debug::db_demo(levels as u32, with_nmi);
    Ok(())
}

pub fn watch(args: &[&str]) -> CmdResult {
    cmdline::no_args("watch", args)?;
    // The value written is arbitrary; the handler reports it as read back.
    let value = crate::arch::cpu::stack_pointer() & 0xffff;
    debug::watch_demo(value);
    Ok(())
}

pub fn nmi(args: &[&str]) -> CmdResult {
    match args {
        [] if nmi::self_nmi_and_report("nmi") => Ok(()),
        [] => Err(CmdError::Failed("no NMI was delivered".into())),
        ["wait"] => {
            let cpu = percpu::this_cpu();
            wait_for(&cpu.nmi_count, "nmi: waiting for an NMI (QEMU monitor: nmi)")?;
            nmi::report_last("nmi");
            Ok(())
        }
        [other, ..] => Err(ArgError(alloc::format!("nmi: unexpected argument '{other}'; usage: nmi [wait]")).into()),
    }
}

/// Spin until `counter` moves (a handler ran); Ctrl-C on the console cancels.
fn wait_for(counter: &AtomicU64, announce: &str) -> CmdResult {
    let before = counter.load(Ordering::SeqCst);
    println!("{announce}; Ctrl-C cancels");
    while counter.load(Ordering::SeqCst) == before {
        if serial::try_read_byte() == Some(0x03) {
            return Err(CmdError::Failed("cancelled".into()));
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
            wait_for(&cpu.mce_count, "mce: waiting for machine check (QEMU monitor: mce ...)")?;
            println!("mce: machine check seen, back in the shell");
            Ok(())
        }
        [other, ..] => Err(ArgError(alloc::format!("mce: unexpected argument '{other}'; usage: mce [wait]")).into()),
    }
}

pub fn doublefault(args: &[&str]) -> CmdResult {
    cmdline::no_args("doublefault", args)?;
    println!("doublefault: removing the #DE gate and dividing by zero");
    traps::force_double_fault()
}

pub fn nested_oops(args: &[&str]) -> CmdResult {
    cmdline::no_args("nested-oops", args)?;
    println!("nested-oops: ud2, with the oops printer told to fault halfway");
    crate::debug::oops::fault_inside_next_oops();
    // SAFETY: deliberately fatal: #UD → oops → #UD inside it → recursion guard.
    unsafe { core::arch::asm!("ud2", options(nomem, nostack)) };
    unreachable!("ud2 returned")
}
