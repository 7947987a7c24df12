//! The command table. Each command: name, usage, one help line, handler.

use alloc::string::String;

use super::cmdline::{self, ArgError};
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::mm::{self, phys, vmalloc};
use crate::stacks::layout::{PAGE_SIZE, VMAP_BASE, VMAP_SIZE};
use crate::{arch, ktest, println};

pub enum CmdError {
    /// Bad arguments: the message names what is valid.
    Usage(ArgError),
    /// The command ran and failed.
    Failed(String),
}

impl From<ArgError> for CmdError {
    fn from(e: ArgError) -> Self {
        CmdError::Usage(e)
    }
}

pub type CmdResult = Result<(), CmdError>;

pub struct Spec {
    pub name: &'static str,
    /// Arguments as shown by `help` ("" for none).
    pub usage: &'static str,
    pub help: &'static str,
    pub run: fn(&[&str]) -> CmdResult,
}

pub static COMMANDS: &[Spec] = &[
    Spec { name: "help", usage: "[COMMAND]", help: "list commands, or show one", run: help },
    Spec { name: "echo", usage: "[WORD...]", help: "print the words", run: echo },
    Spec { name: "meminfo", usage: "", help: "free/used frames, heap and vmap area usage", run: meminfo },
    Spec { name: "ktest", usage: "[FILTER]", help: "run the in-kernel tests (names containing FILTER)", run: ktest_cmd },
    Spec { name: "ps", usage: "", help: "tasks (sysrq-t shape) with free stack bytes; per-CPU IST stack high-water marks", run: super::thread_cmds::ps },
    Spec { name: "spawn", usage: "N", help: "start N worker threads (yield/sleep loops with a checksum)", run: super::thread_cmds::spawn },
    Spec { name: "sleep", usage: "MS", help: "sleep MS milliseconds (the shell thread blocks; others run)", run: super::thread_cmds::sleep },
    Spec { name: "overflow", usage: "", help: "a thread recurses into its guard page: #DF, oops, the thread dies, the system carries on", run: super::thread_cmds::overflow },
    Spec { name: "overrun", usage: "", help: "a thread overwrites its STACK_END_MAGIC: caught at the next switch", run: super::thread_cmds::overrun },
    Spec { name: "threads-stress", usage: "N M", help: "N threads x M switches: checksums, and no frames or vmap space leaked", run: super::thread_cmds::threads_stress },
    Spec { name: "bench", usage: "switch|spawn|irq|ipi", help: "cycles (min, median): context-switch round trip / spawn+join / self-IPI with and without the IRQ-stack switch / cross-CPU function call", run: super::thread_cmds::bench },
    Spec { name: "irqs", usage: "", help: "/proc/interrupts-style counts per vector and CPU, nesting depth", run: super::irq_cmds::irqs },
    Spec { name: "irqnest", usage: "N", help: "N nested self-IPIs: level 1 switches to the IRQ stack, deeper levels stay", run: super::irq_cmds::irqnest },
    Spec { name: "softirq", usage: "", help: "hard IRQ -> softirq -> nested hard IRQ, all on the IRQ stack", run: super::irq_cmds::softirq_cmd },
    Spec { name: "softirq-flood", usage: "N", help: "a softirq that re-raises itself N times: 10 rounds at the IRQ exit, the rest in ksoftirqd", run: super::irq_cmds::softirq_flood },
    Spec { name: "irq-storm", usage: "N", help: "N self-IPIs while threads switch: none lost, checksums intact", run: super::irq_cmds::irq_storm },
    Spec { name: "irq-overflow", usage: "", help: "an IRQ handler recurses into the IRQ stack's guard page: #DF, oops", run: super::irq_cmds::irq_overflow },
    Spec { name: "bt", usage: "[PID]", help: "backtrace of the shell, or of a sleeping thread from its saved frame", run: super::bt_cmds::bt },
    Spec { name: "bt-irq", usage: "", help: "backtrace from a hard IRQ nested in a softirq of a hard IRQ: <IRQ> markers", run: super::bt_cmds::bt_irq },
    Spec { name: "bt-nmi", usage: "", help: "backtrace from an NMI that interrupted an IRQ handler: <NMI>, <IRQ>, task", run: super::bt_cmds::bt_nmi },
    Spec { name: "stale", usage: "", help: "leave a stale return address on the stack; the trace prints it with '? '", run: super::bt_cmds::stale },
    Spec { name: "cpus", usage: "", help: "each CPU: APIC id, online, its IRQ stack and IST stack tops (from its live TSS), current task", run: super::smp_cmds::cpus },
    Spec { name: "bt-all", usage: "", help: "this CPU's backtrace, then every other CPU's, taken by NMI (sysrq-l)", run: super::smp_cmds::bt_all },
    Spec { name: "nmi-storm", usage: "SECONDS", help: "NMIs to every other CPU while they run self-IPIs, switches and nested #DB; every count must add up", run: super::smp_cmds::nmi_storm },
    Spec { name: "tlb-shootdown", usage: "CPU [skip]", help: "free a page another CPU reads: its next read faults (skip: no shoot-down, it reads freed memory)", run: super::smp_cmds::tlb_shootdown },
    Spec { name: "oops=panic", usage: "", help: "setting: an oops in a thread panics the kernel (default oops=kill kills the thread)", run: |_| super::thread_cmds::set_oops("panic") },
    Spec { name: "oops=kill", usage: "", help: "setting: an oops in a thread kills only that thread", run: |_| super::thread_cmds::set_oops("kill") },
    Spec { name: "stacks", usage: "", help: "every stack of every CPU, read from the live TSS and page tables", run: super::stack_cmds::stacks },
    Spec { name: "int3", usage: "", help: "breakpoint instruction: #BP on the #DB stack", run: super::stack_cmds::int3 },
    Spec { name: "db", usage: "N [nmi]", help: "N=1..3 nested #DB: #DB, #DB1, then the DB2 hole; nmi: self-NMI at the deepest level", run: super::stack_cmds::db },
    Spec { name: "watch", usage: "", help: "data-write hardware breakpoint (DR0, DR7 RW=01) hit once", run: super::stack_cmds::watch },
    Spec { name: "nmi", usage: "[wait]", help: "self-NMI through the local APIC: runs on the NMI stack; wait: for one from the QEMU monitor", run: super::stack_cmds::nmi },
    Spec { name: "mce", usage: "[wait]", help: "#MC by int $18 on the MCE stack; wait: for a real one (QEMU monitor `mce`)", run: super::stack_cmds::mce },
    Spec { name: "doublefault", usage: "", help: "force a #DF that is not an overflow (oops)", run: super::stack_cmds::doublefault },
    Spec { name: "nested-oops", usage: "", help: "fault inside the oops printer: the recursion guard prints one line and stops", run: super::stack_cmds::nested_oops },
    Spec { name: "panic", usage: "[MESSAGE...]", help: "Rust panic: the panic path, then failure", run: panic_cmd },
    Spec { name: "triple-fault", usage: "", help: "load an empty IDT and trap: the CPU resets", run: triple_fault },
    Spec { name: "fail", usage: "", help: "end the boot reporting failure (runner status 1)", run: fail },
    Spec { name: "poweroff", usage: "", help: "end the boot reporting success (runner status 0)", run: poweroff },
];

pub fn find(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|c| c.name == name)
}

/// "help, echo, ..." for error messages.
pub fn names() -> String {
    let mut s = String::new();
    for (i, c) in COMMANDS.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(c.name);
    }
    s
}

fn help(args: &[&str]) -> CmdResult {
    let show = |c: &Spec| {
        let left = alloc::format!("{} {}", c.name, c.usage);
        println!("  {:<24} {}", left.trim_end(), c.help);
    };
    match args {
        [] => COMMANDS.iter().for_each(show),
        [name] => show(
            find(name).ok_or_else(|| ArgError(alloc::format!("help: no command '{name}'; commands: {}", names())))?,
        ),
        [_, extra, ..] => {
            return Err(ArgError(alloc::format!("help: unexpected argument '{extra}'; usage: help [COMMAND]")).into())
        }
    }
    Ok(())
}

fn echo(args: &[&str]) -> CmdResult {
    println!("{}", args.join(" "));
    Ok(())
}

fn meminfo(args: &[&str]) -> CmdResult {
    cmdline::no_args("meminfo", args)?;
    let (usable, free) = phys::counts();
    let (heap_size, heap_used) = mm::heap_usage();
    let vm = vmalloc::stats();
    println!("frames:  {usable} usable, {free} free, {} used (4 KiB each)", usable - free);
    println!("memory:  {} KiB usable, {} KiB free", usable * PAGE_SIZE / 1024, free * PAGE_SIZE / 1024);
    println!("heap:    {} KiB, {heap_used} bytes used", heap_size / 1024);
    println!(
        "vmap:    {VMAP_BASE:#x}-{:#x}, {} areas, {} KiB mapped, {} KiB reserved with guards",
        VMAP_BASE + VMAP_SIZE - 1,
        vm.areas,
        vm.mapped / 1024,
        vm.reserved / 1024
    );
    Ok(())
}

fn ktest_cmd(args: &[&str]) -> CmdResult {
    let filter = match args {
        [] => None,
        [f] => Some(*f),
        [_, extra, ..] => {
            return Err(ArgError(alloc::format!("ktest: unexpected argument '{extra}'; usage: ktest [FILTER]")).into())
        }
    };
    match ktest::run(filter) {
        (0, 0) => {
            Err(CmdError::Usage(ArgError(alloc::format!("ktest: no test name contains '{}'", filter.unwrap_or("")))))
        }
        (_, 0) => Ok(()),
        (_, failed) => Err(CmdError::Failed(alloc::format!("{failed} ktest(s) failed"))),
    }
}

fn panic_cmd(args: &[&str]) -> CmdResult {
    if args.is_empty() {
        panic!("panic command");
    }
    panic!("{}", args.join(" "));
}

fn triple_fault(args: &[&str]) -> CmdResult {
    cmdline::no_args("triple-fault", args)?;
    println!("triple-fault: loading an empty IDT and executing int3");
    arch::cpu::triple_fault()
}

fn fail(args: &[&str]) -> CmdResult {
    cmdline::no_args("fail", args)?;
    println!("fail: reporting failure to the runner");
    exit(ExitCode::Failure)
}

fn poweroff(args: &[&str]) -> CmdResult {
    cmdline::no_args("poweroff", args)?;
    println!("poweroff: reporting success to the runner");
    exit(ExitCode::Success)
}
