//! Exception dispatch and the handlers of faults that end in an oops
//! (Linux `arch/x86/kernel/traps.c`, `mm/fault.c`).

use crate::arch::percpu;
use crate::arch::regs::{read_cr2, Regs};
use crate::arch::vectors::*;
use crate::debug::oops::die;
use crate::println;
use crate::stacks::info::{self, StackInfo};

/// Linux's names for exceptions 0–31, as printed in `Oops: <name>: ...`.
pub const EXCEPTION_NAMES: [&str; NR_EXCEPTIONS] = [
    "divide error",
    "debug",
    "nmi",
    "int3",
    "overflow",
    "bounds",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor segment overrun",
    "invalid TSS",
    "segment not present",
    "stack segment",
    "general protection fault",
    "page fault",
    "reserved (15)",
    "coprocessor error",
    "alignment check",
    "machine check",
    "SIMD exception",
    "virtualization exception",
    "control protection fault",
    "reserved (22)",
    "reserved (23)",
    "reserved (24)",
    "reserved (25)",
    "reserved (26)",
    "reserved (27)",
    "hypervisor injection",
    "VMM communication",
    "security exception",
    "reserved (31)",
];

/// Called by every exception stub with the saved frame.
pub extern "C" fn exception_dispatch(regs: &mut Regs) {
    if percpu::ready() {
        percpu::this_cpu().note_handler(regs.vector, regs as *const Regs as u64, regs.rsp);
    }
    match regs.vector as u8 {
        X86_TRAP_DB => super::debug::handle_db(regs),
        X86_TRAP_NMI => super::nmi::handle(regs),
        X86_TRAP_BP => super::debug::handle_bp(regs),
        X86_TRAP_DF => double_fault(regs),
        X86_TRAP_PF => page_fault(regs),
        X86_TRAP_MC => super::mce::handle(regs),
        // A fault in user code ends the process (Linux `do_trap` sends a signal).
        v if regs.from_user() => crate::user::fault::trap(regs, EXCEPTION_NAMES[v as usize]),
        v => die(EXCEPTION_NAMES[v as usize], regs),
    }
}

/// Linux `handle_stack_overflow`: the fault address is in the guard page
/// below `stack`.
fn stack_overflow(stack: StackInfo, addr: u64, regs: &Regs) -> ! {
    // Sony's stack limit: the guard is inside a bigger stack, on purpose.
    if let Some(limit) = crate::stacks::thread::find(stack.bottom).and_then(|(s, _)| s.limit()) {
        println!(
            "BUG: {} stack limit of {limit} bytes exceeded at {addr:016x} (stack is {:016x}..{:016x})",
            stack.name(),
            stack.bottom,
            stack.top.wrapping_sub(1)
        );
        die("stack limit", regs);
    }
    println!(
        "BUG: {} stack guard page was hit at {addr:016x} (stack is {:016x}..{:016x})",
        stack.name(),
        stack.bottom,
        stack.top.wrapping_sub(1)
    );
    die("stack guard page", regs)
}

/// #DF, on its own IST stack: usually a fault while the CPU was delivering a
/// fault on a dead stack, i.e. an overflow. CR2 says where.
fn double_fault(regs: &Regs) -> ! {
    let cr2 = read_cr2();
    if let Some(stack) = info::guard_hit(cr2) {
        stack_overflow(stack, cr2, regs);
    }
    // The RFC's way: a growth fault the CPU could not deliver. #DF is an
    // abort (SDM: the saved state may not allow a restart), so it is never
    // resolved here; armed, #PF has its own stack and this cannot happen.
    if crate::stacks::dynamic::growable(cr2) {
        println!(
            "BUG: stack growth fault at {cr2:016x} became a double fault; #DF is an abort, not returning (#PF {})",
            if crate::arch::idt::gate_ist(X86_TRAP_PF) == 0 {
                "has no stack of its own"
            } else {
                "could not be delivered"
            }
        );
        die("double fault", regs);
    }
    println!("PANIC: double fault, error_code: 0x{:x}", regs.error_code);
    die("double fault", regs)
}

/// #PF runs on the current stack. It can only be delivered when that stack is
/// healthy, so a guard hit here means some *other* stack's guard was touched
/// — e.g. the CPU pushing a third nested #DB frame into the DB2 hole: #DB is
/// a benign exception, so a #PF while delivering it is not a double fault,
/// and the #PF frame goes onto the (healthy) DB1 stack instead.
fn page_fault(regs: &Regs) -> ! {
    let cr2 = read_cr2();
    if regs.from_user() {
        // A user #PF (a bad pointer, or the user stack's guard page): no
        // demand paging here, every user page is mapped at load.
        crate::user::fault::segfault(regs, cr2);
    }
    if let Some(stack) = info::guard_hit(cr2) {
        stack_overflow(stack, cr2, regs);
    }
    let err = regs.error_code;
    // Linux `show_fault_oops`: a kernel fetch from a user page is SMEP's work.
    if err & PF_INSTR != 0 && crate::mm::uaccess::user_range(cr2, 1).is_some() {
        println!("unable to execute userspace code (SMEP?) (uid: 0)");
    }
    println!("BUG: unable to handle page fault for address: {cr2:016x}");
    if crate::stacks::dynamic::growable(cr2) {
        // Another stack's page not backed yet: only its own thread grows it.
        println!("#PF: a page of a dynamic {} stack that is not backed yet (not this stack's)", info::name_of(cr2));
    }
    let access = if err & PF_INSTR != 0 {
        "instruction fetch"
    } else if err & 0x2 != 0 {
        "write"
    } else {
        "read"
    };
    println!("#PF: supervisor {access} access in kernel mode");
    let why = if err & 1 != 0 { "permissions violation" } else { "not-present page" };
    println!("#PF: error_code(0x{err:04x}) - {why}");
    // A present user page the kernel may not touch: SMAP said no (Linux
    // oopses the same way, `do_user_addr_fault`).
    if err & (PF_INSTR | 1) == 1
        && crate::mm::uaccess::user_range(cr2, 1).is_some()
        && crate::arch::cpu::protections().smap
    {
        println!("#PF: SMAP: supervisor access to a user address without stac");
    }
    die("page fault", regs)
}

/// A growable page of the stack that faulted, and no frame for it: the
/// per-CPU reserve is empty and the allocator's lock taken (or memory gone).
pub fn stack_growth_failed(regs: &Regs, cr2: u64) -> ! {
    println!("BUG: no frame to grow the {} stack at {cr2:016x}", info::name_of(regs.rsp));
    die("stack growth", regs)
}

/// #PF error code: the fault was an instruction fetch.
const PF_INSTR: u64 = 0x10;
