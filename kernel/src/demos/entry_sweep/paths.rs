//! The entry and exit paths the sweep covers, and their instructions: the
//! code ranges come from the kernel's own symbol table (or the stub tables
//! in `arch::entry`), the instruction boundaries from decoding that code
//! with `iced-x86`.

use alloc::vec::Vec;
use core::ops::Range;

use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic};

use super::triggers::Trigger;
use crate::arch::entry::{exception_stub, irq_noswitch_stub, irq_replay_stub, irq_stub};
use crate::arch::vectors::{
    BENCH_NOSWITCH_VECTOR, BENCH_SWITCH_VECTOR, LOCAL_TIMER_VECTOR, X86_TRAP_MC, X86_TRAP_NMI, X86_TRAP_PF,
};
use crate::debug::symbols;

/// Where a path's code is.
#[derive(Clone, Copy)]
pub enum Code {
    /// A whole function of the symbol table (asm stubs carry `.size`).
    Sym(&'static str),
    /// A per-vector stub: from its address through its first `jmp`.
    Stub(fn() -> u64),
    /// An external vector's entry stub as the gate has it: the plain one,
    /// or (dynamic stacks armed) the replaying one and the replay.
    IrqStub(u8),
}

pub struct Path {
    pub name: &'static str,
    pub code: &'static [Code],
    pub trigger: Trigger,
    /// Dynamic thread stacks are armed before this path (and stay so).
    pub arms: bool,
}

/// Every path, kernel-mode entries first.
#[rustfmt::skip]
pub static PATHS: &[Path] = &[
    Path { arms: false, name: "NMI entry and exit", trigger: Trigger::Int(X86_TRAP_NMI),
           code: &[Code::Stub(|| exception_stub(X86_TRAP_NMI.into())), Code::Sym("tristack_paranoid_common")] },
    Path { arms: false, name: "#MC entry and exit", trigger: Trigger::Int(X86_TRAP_MC),
           code: &[Code::Stub(|| exception_stub(X86_TRAP_MC.into())), Code::Sym("tristack_paranoid_common")] },
    Path { arms: false, name: "return into NMI context without IRET", trigger: Trigger::NmiMce,
           code: &[Code::Sym("tristack_return_without_iret")] },
    Path { arms: false, name: "IRQ entry, switching to the IRQ stack", trigger: Trigger::Int(BENCH_SWITCH_VECTOR),
           code: &[Code::IrqStub(BENCH_SWITCH_VECTOR), Code::Sym("tristack_irq_common")] },
    Path { arms: false, name: "IRQ entry, staying on the stack", trigger: Trigger::Int(BENCH_NOSWITCH_VECTOR),
           code: &[Code::Stub(irq_noswitch_stub), Code::Sym("tristack_irq_noswitch_common")] },
    Path { arms: false, name: "context switch", trigger: Trigger::Yield, code: &[Code::Sym("tristack_switch_to")] },
    Path { arms: false, name: "call_on_stack", trigger: Trigger::CallOnStack, code: &[Code::Sym("tristack_call_on_stack")] },
    Path { arms: false, name: "SYSCALL entry and SYSRET exit", trigger: Trigger::SyscallLoop { nmis: false },
           code: &[Code::Sym("tristack_entry_SYSCALL_64")] },
    Path { arms: false, name: "exit to user mode (checks, STACKLEAK, IRET)", trigger: Trigger::SyscallLoop { nmis: false },
           code: &[Code::Sym("tristack_return_to_user"), Code::Sym("tristack::arch::x86_64::entry::usermode::exit_to_user_mode"),
                   Code::Sym("tristack::arch::x86_64::entry::usermode::prepare_exit"),
                   Code::Sym("tristack::arch::x86_64::stackleak::erase_start")] },
    Path { arms: false, name: "IRQ from user mode", trigger: Trigger::SyscallLoop { nmis: false },
           code: &[Code::IrqStub(LOCAL_TIMER_VECTOR), Code::Sym("tristack_irq_common")] },
    Path { arms: false, name: "faulting IRET to user mode (fixup_bad_iret)", trigger: Trigger::BadIret,
           code: &[Code::Sym("tristack_bad_iret"), Code::Sym("tristack::arch::x86_64::entry::usermode::fixup_bad_iret")] },
    Path { arms: false, name: "NMI from user mode (sync_regs)", trigger: Trigger::SyscallLoop { nmis: true },
           code: &[Code::Stub(|| exception_stub(X86_TRAP_NMI.into())), Code::Sym("tristack_paranoid_common"),
                   Code::Sym("tristack_exception_from_user"), Code::Sym("tristack::arch::x86_64::entry::usermode::sync_regs")] },
    // Dynamic thread stacks (docs/dynamic-stacks.md): armed from here on.
    Path { arms: true, name: "#PF growing a kernel thread's dynamic stack", trigger: Trigger::Grow,
           code: &[Code::Stub(|| exception_stub(X86_TRAP_PF.into())), Code::Sym("tristack_pf_common"),
                   Code::Sym("tristack::arch::x86_64::entry::page_fault::pf_entry"), Code::Sym("tristack::stacks::dynamic::grow")] },
    Path { arms: true, name: "IRQ entry through the entry stack", trigger: Trigger::Int(BENCH_SWITCH_VECTOR),
           code: &[Code::IrqStub(BENCH_SWITCH_VECTOR), Code::Sym("tristack_irq_common")] },
    Path { arms: true, name: "#PF growing a kernel stack inside a syscall", trigger: Trigger::SyscallGrow,
           code: &[Code::Stub(|| exception_stub(X86_TRAP_PF.into())), Code::Sym("tristack_pf_common"),
                   Code::Sym("tristack::arch::x86_64::entry::page_fault::pf_entry"), Code::Sym("tristack::stacks::dynamic::grow")] },
    Path { arms: true, name: "IRQ from user mode through the entry stack", trigger: Trigger::SyscallLoop { nmis: false },
           code: &[Code::IrqStub(LOCAL_TIMER_VECTOR), Code::Sym("tristack_irq_common")] },
];

/// The instruction addresses of `path`, in order; Err names a symbol the
/// table lacks (renamed or inlined).
pub fn instructions(path: &Path) -> Result<Vec<u64>, &'static str> {
    let mut all = Vec::new();
    for code in path.code {
        let (range, through_jmp) = match *code {
            Code::Sym(name) => (symbols::find(name).ok_or(name)?, false),
            // A stub is a few pushes and a jmp; 32 bytes cover it.
            Code::Stub(addr) => (addr()..addr() + 32, true),
            Code::IrqStub(v) if crate::stacks::dynamic::armed() => {
                let stub = irq_replay_stub(v.into());
                all.extend(decode(stub..stub + 32, true));
                (symbols::find("tristack_irq_replay").ok_or("tristack_irq_replay")?, false)
            }
            Code::IrqStub(v) => (irq_stub(v.into())..irq_stub(v.into()) + 32, true),
        };
        all.extend(decode(range, through_jmp));
    }
    Ok(all)
}

fn decode(range: Range<u64>, through_jmp: bool) -> Vec<u64> {
    let mut out = Vec::new();
    for insn in instructions_in(range) {
        out.push(insn.ip());
        if through_jmp && insn.mnemonic() == Mnemonic::Jmp {
            break;
        }
    }
    out
}

/// The decoded instructions of function `name` (empty if it is not in
/// the symbol table).
pub fn decoded(name: &str) -> Vec<Instruction> {
    symbols::find(name).map(instructions_in).unwrap_or_default()
}

// Never inlined: iced's `Decoder` is about 1 KiB; inlined into its caller
// the frame passed the frame-size gate (./x checkstack --frame-warn 1024).
#[inline(never)]
fn instructions_in(range: Range<u64>) -> Vec<Instruction> {
    // SAFETY: kernel text, mapped and never written; only read.
    let bytes = unsafe { core::slice::from_raw_parts(range.start as *const u8, (range.end - range.start) as usize) };
    let mut decoder = Decoder::with_ip(64, bytes, range.start, DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        out.push(decoder.decode());
    }
    out
}

/// Where the NMI's exit stub resumes after the handler (the instruction
/// after its first call): the carrier breakpoint of `Trigger::NmiMce`.
pub fn nmi_exit_after_handler() -> u64 {
    let code = decoded("tristack_paranoid_common");
    let call =
        code.iter().find(|i| i.mnemonic() == Mnemonic::Call).expect("tristack_paranoid_common calls its handler");
    call.next_ip()
}
