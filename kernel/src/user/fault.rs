//! User faults end the process, not the kernel (Linux `do_user_addr_fault`
//! → `show_signal_msg`, `do_trap` → `show_signal`), with Linux's lines:
//!
//! ```text
//! segv[7]: segfault at 0 ip 0000000000400123 sp 00007fffffffef60 error 6 in segv[400000+3000]
//! traps: ud2[8] trap invalid opcode ip:400123 sp:7fffffffef60 error:0 in ud2[400000+3000]
//! ```
//! then the thread exits as if killed by the signal (exit code -signal).

use crate::arch::regs::Regs;
use crate::println;
use crate::sched;

/// Linux signal numbers (the exit code is their negation).
pub const SIGILL: i64 = 4;
pub const SIGFPE: i64 = 8;
pub const SIGSEGV: i64 = 11;

fn comm_pid() -> (&'static str, u32) {
    sched::current().map_or(("?", 0), |t| (t.name.as_str(), t.pid))
}

/// ` in PROG[BASE+SIZE]` when `ip` is inside the program.
struct In(u64);

impl core::fmt::Display for In {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let (comm, _) = comm_pid();
        let code = sched::current().and_then(|t| t.mm.as_ref()).and_then(|mm| mm.code());
        match code {
            Some((lo, hi)) if (lo..hi).contains(&self.0) => write!(f, " in {comm}[{lo:x}+{:x}]", hi - lo),
            _ => Ok(()),
        }
    }
}

/// A #PF from user mode at `addr`.
pub fn segfault(regs: &Regs, addr: u64) -> ! {
    let (comm, pid) = comm_pid();
    println!(
        "{comm}[{pid}]: segfault at {addr:x} ip {:016x} sp {:016x} error {:x}{}",
        regs.rip,
        regs.rsp,
        regs.error_code,
        In(regs.rip)
    );
    fatal_signal(SIGSEGV)
}

/// A fatal signal ends the whole process (Linux `do_group_exit`): every
/// other thread at its next return to user mode, this one now.
fn fatal_signal(signal: i64) -> ! {
    sched::kill_other_threads(-signal);
    sched::exit(-signal)
}

/// Any other fault from user mode: `name` is Linux's (`general protection
/// fault`, `invalid opcode`, `divide error`...).
pub fn trap(regs: &Regs, name: &str) -> ! {
    let (comm, pid) = comm_pid();
    let (what, signal) = match name {
        "general protection fault" => ("general protection fault", SIGSEGV),
        "invalid opcode" => ("trap invalid opcode", SIGILL),
        "divide error" => ("trap divide error", SIGFPE),
        other => (other, SIGSEGV),
    };
    println!(
        "traps: {comm}[{pid}] {what} ip:{:x} sp:{:x} error:{:x}{}",
        regs.rip,
        regs.rsp,
        regs.error_code,
        In(regs.rip)
    );
    fatal_signal(signal)
}

/// Breakpoints per thread that get a line.
const REPORTED_TRAPS: u32 = 4;

/// `int3` or a data breakpoint from user mode: tristack has no signals or
/// debuggers, so it reports where the handler ran and lets the program go
/// on (as a debugger continuing would).
pub fn debug_trap(regs: &Regs, what: &str, frame: u64) {
    let (comm, pid) = comm_pid();
    let n = sched::current().map_or(0, |t| t.user_traps.fetch_add(1, core::sync::atomic::Ordering::Relaxed));
    if n >= REPORTED_TRAPS {
        if n == REPORTED_TRAPS {
            println!("{comm}[{pid}]: more breakpoints in user mode; not reporting them");
        }
        return;
    }
    let cpu = crate::arch::percpu::this_cpu();
    println!(
        "{what} from user mode: {comm}[{pid}] ip {:016x}; handled on the {} stack (frame {frame:016x}; {} frames moved off IST stacks on CPU {})",
        regs.rip,
        crate::stacks::info::name_of(frame),
        cpu.user.moved_off_ist.load(core::sync::atomic::Ordering::Relaxed),
        cpu.id()
    );
}
