//! The SWAPGS speculation rule (CVE-2019-1125; Linux
//! `FENCE_SWAPGS_USER_ENTRY` / `FENCE_SWAPGS_KERNEL_ENTRY`), checked on the
//! kernel's own entry code: where an entry decides by a conditional branch
//! whether to `swapgs`, the CPU may speculate down the wrong side with the
//! wrong GS base and load through it. So on both sides an `lfence` must
//! come before the first GS-relative access or call. (The SYSCALL entry's
//! `swapgs` is unconditional and needs none, as in Linux.)

use alloc::string::String;
use alloc::vec::Vec;

use iced_x86::{Instruction, Mnemonic, Register};

use super::paths::decoded;
use crate::kcheck;
use crate::ktest::{KResult, KTest};

/// The entry code that swaps GS on a condition (its exits swap too, and
/// must pass the same rule, trivially: nothing reads GS after them).
const CONDITIONAL_SWAPGS: [&str; 6] = [
    "tristack_exception_from_user",
    "tristack_bad_iret",
    "tristack_paranoid_common",
    "tristack_debug_common",
    "tristack_irq_common",
    "tristack_irq_noswitch_common",
];

fn reads_gs_or_calls(insn: &Instruction) -> bool {
    insn.segment_prefix() == Register::GS || insn.mnemonic() == Mnemonic::Call
}

fn ends_path(insn: &Instruction) -> bool {
    matches!(insn.mnemonic(), Mnemonic::Jmp | Mnemonic::Ret | Mnemonic::Iretq | Mnemonic::Sysretq)
}

/// From instruction `from` on (straight-line, until the path ends): the
/// first GS access or call not preceded by an `lfence`, if any.
fn unfenced(code: &[Instruction], from: usize) -> Option<u64> {
    for insn in &code[from..] {
        if insn.mnemonic() == Mnemonic::Lfence || ends_path(insn) {
            return None;
        }
        if reads_gs_or_calls(insn) {
            return Some(insn.ip());
        }
    }
    None
}

/// Every place in `code` where the rule is broken: after a `swapgs`, and
/// at the target of a conditional branch that jumps over one.
fn violations(code: &[Instruction]) -> Vec<u64> {
    let mut bad = Vec::new();
    for (i, insn) in code.iter().enumerate() {
        if insn.mnemonic() == Mnemonic::Swapgs {
            bad.extend(unfenced(code, i + 1));
        }
        let target = insn.near_branch_target();
        let skips_swapgs = |j: &Instruction| j.mnemonic() == Mnemonic::Swapgs && j.ip() > insn.ip() && j.ip() < target;
        let conditional = target != 0 && !matches!(insn.mnemonic(), Mnemonic::Jmp | Mnemonic::Call);
        if conditional && code.iter().any(skips_swapgs) {
            if let Some(t) = code.iter().position(|j| j.ip() == target) {
                bad.extend(unfenced(code, t));
            }
        }
    }
    bad
}

pub static KTESTS: &[KTest] =
    &[KTest { name: "conditional_swapgs_is_fenced", run: conditional_swapgs_is_fenced, oopses: false }];

fn conditional_swapgs_is_fenced() -> KResult {
    let mut bad = Vec::<String>::new();
    for name in CONDITIONAL_SWAPGS {
        let code = decoded(name);
        kcheck!(!code.is_empty(), "{name}: not in the symbol table");
        kcheck!(code.iter().any(|i| i.mnemonic() == Mnemonic::Swapgs), "{name}: no swapgs");
        bad.extend(violations(&code).into_iter().map(|ip| alloc::format!("{name}+{:#x}", ip - code[0].ip())));
    }
    kcheck!(
        bad.is_empty(),
        "GS used or a call made before an lfence after a conditional swapgs at: {}",
        bad.join(", ")
    );
    Ok(())
}
