//! The foundation (docs/foundation.md): the commands that show the kernel
//! itself — memory, the in-kernel tests, the panic path — and end a boot
//! with a status the runner reports.

use crate::cmd::cmdline::{self, ArgError};
use crate::cmd::{CmdError, CmdResult};
use crate::drivers::qemu_exit::{exit, ExitCode};
use crate::layout::{PAGE_SIZE, VMAP_BASE, VMAP_SIZE};
use crate::mm::{self, phys, vmalloc};
use crate::{arch, ktest, println};

pub fn echo(args: &[&str]) -> CmdResult {
    println!("{}", args.join(" "));
    Ok(())
}

pub fn meminfo(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
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
    // Frames that are neither free nor lost: kept by the stack caches and,
    // once dynamic stacks exist, zeroed for their growth faults.
    let cached: u64 = crate::arch::percpu::online_cpus().map(|c| crate::stacks::thread::cached_pages_on(c).1).sum();
    let mut held = alloc::format!("stacks:  {cached} frames in the per-CPU stack caches");
    if crate::stacks::dynamic::armed() {
        held += &alloc::format!(
            ", {} in the growth reserves; {} dynamic stacks alive",
            crate::stacks::dynamic::reserved_everywhere(),
            crate::stacks::dynamic::live()
        );
    }
    println!("{held}");
    Ok(())
}

/// Every module's ktests, in the order they run: boot's (handed down),
/// memory, then each kind of stack, then what is built on them, then the
/// demos'. Each module declares its own `KTESTS` next to the code it tests.
fn ktest_suites() -> alloc::vec::Vec<&'static [ktest::KTest]> {
    let mechanisms: [&[ktest::KTest]; 10] = [
        crate::mm::ktests::KTESTS,
        crate::stacks::exception::ktests::KTESTS,
        crate::arch::entry::mce::ktests::KTESTS,
        crate::debug::oops::ktests::KTESTS,
        crate::stacks::thread::ktests::KTESTS,
        crate::stacks::irq::ktests::KTESTS,
        crate::softirq::ktests::KTESTS,
        crate::smp::ktests::KTESTS,
        crate::sched::ktests::KTESTS,
        crate::user::ktests::KTESTS,
    ];
    let handed_down = ktest::handed_down().into_iter();
    handed_down.chain(mechanisms).chain(crate::demos::KTESTS.iter().copied()).collect()
}

pub fn ktest_cmd(args: &[&str]) -> CmdResult {
    let (quiet, args) = match args {
        ["-q", rest @ ..] => (true, rest),
        _ => (false, args),
    };
    let filter = match args {
        [] => None,
        [f] => Some(*f),
        [_, extra, ..] => return Err(ArgError::Unexpected((*extra).into()).into()),
    };
    let opts = ktest::RunOptions { quiet, oops_count: crate::debug::oops::oops_count };
    match ktest::run(&ktest_suites(), filter, &opts) {
        (0, 0) => {
            Err(CmdError::Usage(ArgError::Invalid(alloc::format!("no test name contains '{}'", filter.unwrap_or("")))))
        }
        (_, 0) => Ok(()),
        (_, failed) => Err(CmdError::Failed(alloc::format!("{failed} ktest(s) failed"))),
    }
}

pub fn panic_cmd(args: &[&str]) -> CmdResult {
    if args.is_empty() {
        panic!("panic command");
    }
    panic!("{}", args.join(" "));
}

pub fn triple_fault(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("triple-fault: loading an empty IDT and executing int3");
    arch::cpu::triple_fault()
}

pub fn fail(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("fail: reporting failure to the runner");
    exit(ExitCode::Failure)
}

pub fn poweroff(args: &[&str]) -> CmdResult {
    cmdline::no_args(args)?;
    println!("poweroff: reporting success to the runner");
    exit(ExitCode::Success)
}
