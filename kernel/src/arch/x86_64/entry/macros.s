// Entry macros shared by every stub (assembled with the other files of
// this directory in one global_asm!, see mod.rs).

// Linux `STACKLEAK_ERASE`: RSP = where this entry's Rust frames began
// (&Regs, the user frame at the stack top; for a syscall, below it by the
// random offset: that gap is never written); fill
// [stackleak::erase_start(RSP), RSP) with STACKLEAK_POISON. erase_start's
// own frame is below RSP, so it is erased too. Clobbers RAX, RCX, RDI
// (restored from the frame right after).
.macro STACKLEAK_ERASE
    // Erasing off (`hardening stackleak off`): not even the call.
    cmp byte ptr [rip + {stackleak_on}], 0
    je 9f
    mov rdi, rsp
    call {stackleak_erase_start}
    mov rdi, rax
    mov rcx, rsp
    sub rcx, rdi
    shr rcx, 3
    mov rax, {poison}
    rep stosq
9:
.endm

// RSP -= 120: the 15 general registers, RAX pushed first (highest), R15
// last (lowest), so RSP then points at a `Regs` (Linux `PUSH_REGS`).
.macro SAVE_REGS
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
.endm

// RSP += 120: the reverse of SAVE_REGS (Linux `POP_REGS`); RSP then points
// at the vector word the stub pushed.
.macro RESTORE_REGS
    pop r15
    pop r14
    pop r13
    pop r12
    pop r11
    pop r10
    pop r9
    pop r8
    pop rbp
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rbx
    pop rax
.endm

// RSP -= 16: fake frame so the handler's frame chain continues into the
// interrupted code. RSP stays 16-byte aligned.
.macro LINK_FRAME
    push qword ptr [rsp + {regs_rip}]
    push qword ptr [rsp + 8 + {regs_rbp}]
    mov rbp, rsp
.endm

// The way back into kernel mode from every exception that can land in NMI
// context. RSP = &Regs (the fake frame popped), GS the kernel's. Rust
// decides (`decide`: 0 = IRET, 1 = return without IRET, else an address to
// return through, see `debug_return`); the decision waits in the frame's
// error-code slot while the registers are restored (and, with \swap, the
// user GS base put back: EBX says whether PARANOID_GS swapped). RSP += 120
// + 16: at the hardware frame; then one of the three returns.
.macro RETURN_TO_KERNEL decide, swap
    mov rdi, rsp
    call \decide
    mov [rsp + {regs_error_code}], rax
.if \swap
    test ebx, ebx
    jz 1f
    swapgs
1:
.endif
    RESTORE_REGS
    add rsp, 8                      // vector; [rsp] = the decision
    cmp qword ptr [rsp], 1
    lea rsp, [rsp + 8]              // (lea keeps the flags of the cmp)
    je tristack_return_without_iret
    ja 2f
    iretq
// Deliver an event here: [decision] = a stack holding the stub's address
// above the event's hardware frame. RSP := it; `ret` enters the stub with
// RSP at the frame, as the CPU would have.
2:
    mov rsp, [rsp - 8]
    ret
.endm

// One stub per vector. RSP -= 8 or 16: optional dummy error code, vector.
.macro STUB vector, has_error_code, common
.global tristack_exc_\vector
tristack_exc_\vector:
.if \has_error_code == 0
    push 0
.endif
    push \vector
    jmp \common
.type tristack_exc_\vector, @function
.size tristack_exc_\vector, . - tristack_exc_\vector
.endm

// Linux `FENCE_SWAPGS_USER_ENTRY` / `FENCE_SWAPGS_KERNEL_ENTRY` (the SWAPGS
// variant of Spectre v1, CVE-2019-1125): where a conditional branch decides
// whether to `swapgs`, the CPU may speculate down the wrong side and load
// through the wrong GS base. On both sides, before the first GS-relative
// access, stop speculation. (demos/entry_sweep/fences.rs checks every site.)
.macro FENCE_SWAPGS
    lfence
.endm

// Linux `paranoid_entry`'s GS decision: a kernel GS base is negative (a
// kernel address); anything else is the user's, so swap, and remember in
// EBX (callee-saved: it survives the handler) to swap back on exit.
.macro PARANOID_GS
    mov ecx, {msr_gs_base}
    rdmsr
    xor ebx, ebx
    test edx, edx
    js 7f
    swapgs
    mov ebx, 1
7:
    FENCE_SWAPGS
.endm
