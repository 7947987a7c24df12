// Exceptions from user mode and the way back to user mode.

.section .text.entry, "ax"

// Every exception from user mode, whatever its stub (Linux `error_entry`
// user branch + `sync_regs`). RSP = &Regs, on the thread stack (the CPU
// loaded RSP0) or on an IST stack. swapgs; RSP := the frame's copy at the
// thread stack top (a no-op move if it is there already); a zero fake frame
// ends the frame chain (user RBP/RIP are not kernel frames); the handler;
// then the way back to user mode.
tristack_exception_from_user:
    swapgs
    FENCE_SWAPGS
    mov rdi, rsp
    call {sync_regs}
    mov rsp, rax
// RSP = &Regs at the thread stack top, GS the kernel's: run the handler.
tristack_exception_user_body:
    push 0
    push 0
    mov rbp, rsp
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
    jmp tristack_return_to_user
.type tristack_exception_from_user, @function
.size tristack_exception_from_user, . - tristack_exception_from_user

// The `iretq` to user mode faulted (#GP: a non-canonical RIP in the IRET
// frame). RSP = &Regs of the #GP, taken in kernel mode on the thread stack
// just below the IRET frame, with the user's GS base. swapgs; then
// `fixup_bad_iret` builds the user's frame at the stack top (the IRET
// frame + these registers) and the fault is handled as one from user mode
// (Linux `.Lerror_bad_iret` + `fixup_bad_iret`).
tristack_bad_iret:
    swapgs
    FENCE_SWAPGS
    mov rdi, rsp
    call {fixup_bad_iret}
    mov rsp, rax
    jmp tristack_exception_user_body
.type tristack_bad_iret, @function
.size tristack_bad_iret, . - tristack_bad_iret

// The way back to user mode from an exception or interrupt (Linux
// `irqentry_exit_to_user_mode` + `swapgs_restore_regs_and_return_to_usermode`).
// RSP = &Regs at the top of the thread stack; exit work and checks in
// Rust, then RSP += 120 + 16 and iretq pops the last 40 bytes: the thread
// stack is empty again.
.global tristack_return_to_user
tristack_return_to_user:
    mov rdi, rsp
    call {exit_to_user_mode}
    STACKLEAK_ERASE
.global tristack_restore_and_iret_to_user
tristack_restore_and_iret_to_user:
    RESTORE_REGS
    add rsp, 16
    swapgs
.global tristack_iret_to_user
tristack_iret_to_user:
    iretq
.type tristack_return_to_user, @function
.size tristack_return_to_user, . - tristack_return_to_user
