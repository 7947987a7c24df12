//! One function's stack frame, from its machine code: what `push`, `sub
//! rsp, imm` and `enter` reserve (Linux `scripts/checkstack.pl` looks only
//! at `sub $N,%rsp`), and the calls it makes, each with the depth below
//! the function's entry RSP at the call.

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

/// What a call instruction calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Callee {
    /// `call rel32`: a known address.
    Direct(u64),
    /// `call reg` / `call [mem]`: a function pointer or `dyn` method.
    Indirect,
    /// `call [rip + disp]`: through the pointer at a fixed address (a GOT
    /// entry); `Kernel::read` reads it and makes this `Direct` (or, if it
    /// holds no function, `Indirect`).
    Slot(u64),
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    /// Bytes the function reserves below its return address: register
    /// pushes, `sub rsp, imm`, `enter` — what the compiler calls its stack
    /// size.
    pub size: u64,
    /// The deepest point of the function's own code, with transient pushes
    /// too (`pushfq` around `cli`, arguments pushed for a call), which the
    /// compiler's figure leaves out. The worst-case search uses this.
    pub peak: u64,
    /// `sub rsp, reg` or `and rsp, imm` (alloca, realignment): the frame
    /// has a part this scan cannot size.
    pub dynamic: bool,
    /// (depth below the entry RSP at the call, excluding the return
    /// address the call pushes; callee).
    pub calls: Vec<(u64, Callee)>,
    /// `jmp` to an address outside the function: a tail call (its frame is
    /// popped first; counted like a call from the full frame, which
    /// over-estimates and never under-estimates).
    pub tail_calls: Vec<u64>,
    /// `jmp [rip + disp]` out of the function after its epilogue: a tail
    /// call through the pointer at that address (resolved like
    /// `Callee::Slot`, into `tail_calls`).
    pub tail_slots: Vec<u64>,
    /// `jmp reg` / `jmp [mem]` after the epilogue (the frame popped, RSP
    /// back at the return address): a tail call through a pointer, e.g. a
    /// `dyn` method as the last thing a function does.
    pub indirect_tail_call: bool,
    /// Every call instruction, the hook's too: (its return address, the
    /// depth below the entry RSP at the call, the callee: None for the
    /// hook's). A stack tracer's row can be checked against these.
    pub call_sites: Vec<(u64, u64, Option<Callee>)>,
    /// The depth at which the function sets its frame pointer (`mov rbp,
    /// rsp`): 8 for compiled code (after `push rbp`), more for an entry
    /// stub that links a frame after saving registers. None: never.
    pub fp_depth: Option<u64>,
}

/// Scan `code` (one function at `addr`) in address order. The running depth
/// follows push/pop/sub/add/enter; after an unconditional exit (`ret`,
/// `jmp`) the next block starts again at the depth of the first call (the
/// whole frame; the deepest depth so far if there was no call), which is
/// right for compiled code (every block after the prologue runs with the
/// whole frame) and for tristack's assembly stubs (straight-line pushes,
/// then calls).
pub fn analyze(code: &[u8], addr: u64) -> Frame {
    analyze_with(code, addr, None)
}

/// `call [rip + disp]` / `jmp [rip + disp]`: through a pointer at a fixed
/// address.
fn rip_relative(ins: &Instruction) -> bool {
    ins.op0_kind() == OpKind::Memory && ins.is_ip_rel_memory_operand()
}

/// `analyze`, leaving out the calls to `hook` (the stack tracer's `mcount`,
/// called at every function entry: no arguments, and its own cost is
/// reported once, not inside every path).
pub fn analyze_with(code: &[u8], addr: u64, hook: Option<u64>) -> Frame {
    let end = addr + code.len() as u64;
    let decoder = Decoder::with_ip(64, code, addr, DecoderOptions::NONE);
    let is_hook = |i: &Instruction| i.flow_control() == FlowControl::Call && Some(i.near_branch_target()) == hook;
    let all: Vec<Instruction> = decoder.into_iter().collect();
    let (args, arg_pops) = argument_pushes(&all, &is_hook);
    let mut frame = Frame::default();
    let (mut depth, mut deepest) = (0u64, 0u64);
    // The same walk counting only what the compiler counts.
    let (mut reserved, mut most_reserved) = (0u64, 0u64);
    // The depth at the first call: the whole frame, without the transient
    // pushes (`pushfq`) some blocks add. Later blocks start from it.
    let mut frame_depth: Option<(u64, u64)> = None;
    for (i, ins) in all.iter().enumerate() {
        let rsp_dest = ins.op_count() > 0 && ins.op0_kind() == OpKind::Register && ins.op0_register() == Register::RSP;
        let imm = || ins.immediate(1);
        // A register push is frame (callee-saved registers, or `push rax`
        // as a short `sub rsp, 8`); `pushfq` and the pushes of a call's
        // stack arguments are transient.
        let saved_reg = ins.op0_kind() == OpKind::Register && !args.contains(&i);
        match ins.mnemonic() {
            Mnemonic::Push => {
                depth += 8;
                reserved += if saved_reg { 8 } else { 0 };
            }
            Mnemonic::Pushfq => depth += 8,
            Mnemonic::Pop => {
                depth = depth.saturating_sub(8);
                reserved = reserved.saturating_sub(if saved_reg { 8 } else { 0 });
            }
            Mnemonic::Popfq => depth = depth.saturating_sub(8),
            Mnemonic::Sub if rsp_dest && is_imm(ins.op1_kind()) => {
                depth += imm();
                reserved += if args.contains(&i) { 0 } else { imm() };
            }
            Mnemonic::Sub if rsp_dest => frame.dynamic = true,
            Mnemonic::Add if rsp_dest && is_imm(ins.op1_kind()) => {
                depth = depth.saturating_sub(imm());
                // After a call, `add rsp` drops its arguments (never counted).
                if !arg_pops.contains(&i) {
                    reserved = reserved.saturating_sub(imm());
                }
            }
            Mnemonic::And if rsp_dest => frame.dynamic = true,
            Mnemonic::Enter => {
                depth += 8 + u64::from(ins.immediate16());
                reserved += 8 + u64::from(ins.immediate16());
            }
            Mnemonic::Leave => (depth, reserved) = (0, 0),
            _ => {}
        }
        deepest = deepest.max(depth);
        most_reserved = most_reserved.max(reserved);
        let sets_fp = ins.mnemonic() == Mnemonic::Mov
            && ins.op0_kind() == OpKind::Register
            && ins.op0_register() == Register::RBP
            && ins.op1_kind() == OpKind::Register
            && ins.op1_register() == Register::RSP;
        if sets_fp && frame.fp_depth.is_none() {
            frame.fp_depth = Some(depth);
        }
        if matches!(ins.flow_control(), FlowControl::Call | FlowControl::IndirectCall) && frame_depth.is_none() {
            frame_depth = Some((depth, reserved));
        }
        match ins.flow_control() {
            FlowControl::Call if is_hook(ins) => frame.call_sites.push((ins.next_ip(), depth, None)),
            FlowControl::Call | FlowControl::IndirectCall => {
                let callee = match ins.flow_control() {
                    FlowControl::Call => Callee::Direct(ins.near_branch_target()),
                    _ if rip_relative(ins) => Callee::Slot(ins.ip_rel_memory_address()),
                    _ => Callee::Indirect,
                };
                frame.calls.push((depth, callee));
                frame.call_sites.push((ins.next_ip(), depth, Some(callee)));
            }
            FlowControl::UnconditionalBranch => {
                let target = ins.near_branch_target();
                if !(addr..end).contains(&target) {
                    frame.tail_calls.push(target);
                }
                (depth, reserved) = frame_depth.unwrap_or((deepest, most_reserved));
            }
            FlowControl::IndirectBranch if depth == 0 => {
                // A jump table jumps inside a function whose frame is set
                // up (with frame pointers, at least `push rbp`); at depth 0
                // the frame is gone: a tail call through a pointer.
                if rip_relative(ins) {
                    frame.tail_slots.push(ins.ip_rel_memory_address());
                } else {
                    frame.indirect_tail_call = true;
                }
                (depth, reserved) = frame_depth.unwrap_or((deepest, most_reserved))
            }
            FlowControl::Return | FlowControl::IndirectBranch | FlowControl::Interrupt => {
                (depth, reserved) = frame_depth.unwrap_or((deepest, most_reserved))
            }
            _ => {}
        }
    }
    frame.size = most_reserved;
    frame.peak = deepest;
    frame
}

/// Indexes of the instructions that make room for a call's stack
/// arguments, and of the `add rsp` instructions that drop them. Walking
/// back from a `call` over instructions that do not touch RSP: when
/// `add rsp, N` follows the call, pushes (and one aligning
/// `sub rsp, imm` before them) adding up to exactly N bytes; when nothing
/// follows (a call that does not return: `int3` padding or the function's
/// end), the pushes just before it.
fn argument_pushes(all: &[Instruction], is_hook: &impl Fn(&Instruction) -> bool) -> (Vec<usize>, Vec<usize>) {
    let (mut args, mut pops) = (Vec::new(), Vec::new());
    for (i, call) in all.iter().enumerate() {
        // The hook takes no arguments.
        if !matches!(call.flow_control(), FlowControl::Call | FlowControl::IndirectCall) || is_hook(call) {
            continue;
        }
        // The first instruction after the call that is not a plain one.
        let after = (i + 1..all.len()).find(|&k| all[k].flow_control() != FlowControl::Next || uses_rsp(&all[k]));
        let wanted = match after.map(|k| (k, &all[k])) {
            Some((k, add)) if add.mnemonic() == Mnemonic::Add && moves_rsp_by_imm(add) => {
                pops.push(k);
                Some(add.immediate(1))
            }
            None => None,
            Some((_, next)) if next.mnemonic() == Mnemonic::Int3 || next.mnemonic() == Mnemonic::Ud2 => None,
            Some(_) => continue,
        };
        let (mut block, mut bytes, mut stop) = (Vec::new(), 0u64, None);
        for j in (0..i).rev() {
            if wanted == Some(bytes) {
                break;
            }
            let ins = &all[j];
            match ins.mnemonic() {
                Mnemonic::Push => {
                    block.push(j);
                    bytes += 8;
                }
                // Not the prologue's own `sub` (right after its pushes or
                // `mov rbp, rsp`).
                Mnemonic::Sub
                    if moves_rsp_by_imm(ins)
                        && wanted == Some(bytes + ins.immediate(1))
                        && (!block.is_empty() || j.checked_sub(1).is_some_and(|p| !uses_rsp(&all[p]))) =>
                {
                    block.push(j);
                    bytes += ins.immediate(1);
                }
                // Arguments stored into the space a `sub` made.
                Mnemonic::Mov
                    if wanted.is_some() && ins.op0_kind() == OpKind::Memory && ins.memory_base() == Register::RSP => {}
                _ if ins.flow_control() == FlowControl::Next && !uses_rsp(ins) => {}
                _ => {
                    stop = Some(j);
                    break;
                }
            }
        }
        // Without an `add rsp` to go by (a call that does not return),
        // pushes right after `mov rbp, rsp` are the prologue, not arguments.
        let after_frame_setup = stop.is_some_and(|j| {
            let i = &all[j];
            i.mnemonic() == Mnemonic::Mov
                && i.op0_kind() == OpKind::Register
                && i.op0_register() == Register::RBP
                && i.op1_kind() == OpKind::Register
                && i.op1_register() == Register::RSP
        });
        if wanted.is_none() && after_frame_setup {
            continue;
        }
        if wanted.is_none_or(|n| n == bytes) {
            args.extend(block);
        } else if wanted.is_some() {
            pops.pop();
        }
    }
    (args, pops)
}

/// RSP as an operand or as a memory base (a push/pop/sub/`mov rbp, rsp`).
fn uses_rsp(ins: &Instruction) -> bool {
    matches!(
        ins.mnemonic(),
        Mnemonic::Push | Mnemonic::Pop | Mnemonic::Pushfq | Mnemonic::Popfq | Mnemonic::Enter | Mnemonic::Leave
    ) || (0..ins.op_count()).any(|op| match ins.op_kind(op) {
        OpKind::Register => ins.op_register(op) == Register::RSP,
        OpKind::Memory => ins.memory_base() == Register::RSP,
        _ => false,
    })
}

fn moves_rsp_by_imm(ins: &Instruction) -> bool {
    ins.op_count() == 2
        && ins.op0_kind() == OpKind::Register
        && ins.op0_register() == Register::RSP
        && is_imm(ins.op1_kind())
}

fn is_imm(kind: OpKind) -> bool {
    matches!(kind, OpKind::Immediate8to64 | OpKind::Immediate32to64 | OpKind::Immediate8 | OpKind::Immediate32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: u64 = 0x1000;

    #[test]
    fn pushes_and_a_large_sub_add_up() {
        // push rbp; mov rbp,rsp; push rbx; sub rsp,0x1000; call +0; add rsp,0x1000; pop rbx; pop rbp; ret
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x53, 0x48, 0x81, 0xec, 0x00, 0x10, 0x00, 0x00, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x48,
            0x81, 0xc4, 0x00, 0x10, 0x00, 0x00, 0x5b, 0x5d, 0xc3,
        ];
        let f = analyze(&code, AT);
        assert_eq!((f.size, f.peak), (16 + 0x1000, 16 + 0x1000));
        assert_eq!(f.calls, vec![(16 + 0x1000, Callee::Direct(AT + 17))]);
        assert!(!f.dynamic);
    }

    #[test]
    fn a_jump_through_a_pointer_after_the_epilogue_is_a_tail_call_and_a_jump_table_is_not() {
        // push rbp; mov rbp,rsp; pop rbp; jmp [rcx+0x18]
        let f = analyze(&[0x55, 0x48, 0x89, 0xe5, 0x5d, 0xff, 0x61, 0x18], AT);
        assert!(f.indirect_tail_call);
        // push rbp; mov rbp,rsp; jmp rax (a jump table, frame still up)
        let f = analyze(&[0x55, 0x48, 0x89, 0xe5, 0xff, 0xe0], AT);
        assert!(!f.indirect_tail_call);
        // push rbp; call [rip+0x100]; pop rbp; jmp [rip+0x200]: pointers at
        // fixed addresses, left for Kernel::read to look up.
        let code = [0x55, 0xff, 0x15, 0x00, 0x01, 0x00, 0x00, 0x5d, 0xff, 0x25, 0x00, 0x02, 0x00, 0x00];
        let f = analyze(&code, AT);
        assert_eq!(f.calls, vec![(8, Callee::Slot(AT + 7 + 0x100))]);
        assert_eq!(f.tail_slots, vec![AT + 14 + 0x200]);
        assert!(!f.indirect_tail_call);
    }

    #[test]
    fn a_push_only_frame() {
        // push r15; push r14; push rbx; call [rax]; pop rbx; pop r14; pop r15; ret
        let code = [0x41, 0x57, 0x41, 0x56, 0x53, 0xff, 0x10, 0x5b, 0x41, 0x5e, 0x41, 0x5f, 0xc3];
        let f = analyze(&code, AT);
        assert_eq!(f.size, 24);
        assert_eq!(f.calls, vec![(24, Callee::Indirect)]);
    }

    #[test]
    fn enter_reserves_its_operand_and_the_frame_pointer() {
        // enter 0x40, 0; leave; ret
        let f = analyze(&[0xc8, 0x40, 0x00, 0x00, 0xc9, 0xc3], AT);
        assert_eq!(f.size, 8 + 0x40);
    }

    #[test]
    fn transient_pushes_count_in_the_peak_only() {
        // push rbx; pushfq; pop rax; push rdi; push rsi (two arguments); call +0; add rsp,16; pop rbx; ret
        let code = [0x53, 0x9c, 0x58, 0x57, 0x56, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc4, 0x10, 0x5b, 0xc3];
        let f = analyze(&code, AT);
        assert_eq!((f.size, f.peak), (8, 24));
        assert_eq!(f.calls, vec![(24, Callee::Direct(AT + 10))]);
    }

    #[test]
    fn stack_arguments_stored_with_mov_are_not_frame() {
        // push rbp; mov rbp,rsp; sub rsp,16 (frame); mov eax,1; sub rsp,16 (args);
        // mov [rsp+8],rbx; call +0; add rsp,16; add rsp,16; pop rbp; ret
        let code = [
            0x55, 0x48, 0x89, 0xe5, 0x48, 0x83, 0xec, 0x10, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x48, 0x83, 0xec, 0x10, 0x48,
            0x89, 0x5c, 0x24, 0x08, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc4, 0x10, 0x48, 0x83, 0xc4, 0x10, 0x5d,
            0xc3,
        ];
        let f = analyze(&code, AT);
        assert_eq!((f.size, f.peak), (24, 40));
    }

    #[test]
    fn calls_to_the_tracer_hook_are_left_out() {
        // push rbp; mov rbp,rsp; push rax; call mcount(AT+0x100); add rsp,8; pop rbp; ret
        let code = [0x55, 0x48, 0x89, 0xe5, 0x50, 0xe8, 0xf6, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc4, 0x08, 0x5d, 0xc3];
        let f = analyze_with(&code, AT, Some(AT + 0x100));
        assert_eq!((f.size, f.calls.len()), (16, 0));
        // Seen as a call, the epilogue's `add rsp, 8` looks like argument space.
        assert_eq!(analyze(&code, AT).size, 8);
    }

    #[test]
    fn no_frame_at_all() {
        // mov eax, 1; ret
        let f = analyze(&[0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3], AT);
        assert_eq!(f, Frame::default());
    }

    #[test]
    fn every_exit_block_keeps_the_whole_frame() {
        // push rbx; sub rsp,8 (imm8); test edi,edi; je L; add rsp,8; pop rbx; ret;
        // L: call +0 (depth must again be 16); add rsp,8; pop rbx; ret
        let code = [
            0x53, 0x48, 0x83, 0xec, 0x08, 0x85, 0xff, 0x74, 0x06, 0x48, 0x83, 0xc4, 0x08, 0x5b, 0xc3, 0xe8, 0x00, 0x00,
            0x00, 0x00, 0x48, 0x83, 0xc4, 0x08, 0x5b, 0xc3,
        ];
        let f = analyze(&code, AT);
        assert_eq!(f.size, 16);
        assert_eq!(f.calls, vec![(16, Callee::Direct(AT + 20))]);
    }

    #[test]
    fn alloca_and_realignment_are_dynamic_and_a_far_jmp_is_a_tail_call() {
        // sub rsp, rax; and rsp, -16; jmp 0x2000
        let code = [0x48, 0x29, 0xc4, 0x48, 0x83, 0xe4, 0xf0, 0xe9, 0xf4, 0x0f, 0x00, 0x00];
        let f = analyze(&code, AT);
        assert!(f.dynamic);
        assert_eq!(f.tail_calls, vec![0x2000]);
    }
}
