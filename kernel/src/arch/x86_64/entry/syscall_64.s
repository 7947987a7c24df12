// The SYSCALL entry and its two exits, SYSRET and IRET.

.section .text.entry, "ax"

// `syscall` from user mode (Linux `entry_SYSCALL_64`). RSP: the user's on
// entry. swapgs; user RSP -> per-CPU scratch; RSP := the thread stack top
// (gs:top_of_stack). Then a full frame, as an interrupt from user mode
// would have left it: SS, RSP, RFLAGS (R11), CS, RIP (RCX), orig_ax (RAX,
// in the error-code slot), the SYSCALL_FRAME vector word, SAVE_REGS with
// RAX preset to -ENOSYS: 176 bytes, so &Regs = top - 176. A zero fake frame
// ends the frame chain; then RSP moves down by the random offset (Linux
// `add_random_kstack_offset`: `kstack_offset & 0x3ff`, 16-aligned) and
// `do_syscall_64(&Regs)` runs. Back: the used stack below the offset
// poisoned (STACKLEAK_ERASE); RSP := &Regs; SYSRET if `do_syscall_64` said
// it is safe, else IRET.
.global tristack_entry_SYSCALL_64
tristack_entry_SYSCALL_64:
    swapgs
    mov gs:[{user_rsp_scratch}], rsp
    mov rsp, gs:[{top_of_stack}]
// Up to here RSP was the user's (see `user_rsp_code`).
.global tristack_syscall_kernel_rsp
tristack_syscall_kernel_rsp:
    push {user_ds}
    push qword ptr gs:[{user_rsp_scratch}]
    push r11
    push {user_cs}
    push rcx
    push rax
    push {syscall_frame}
    SAVE_REGS
    mov qword ptr [rsp + {regs_rax}], -{enosys}
    cld
    mov r12, rsp
    push 0
    push 0
    mov rbp, rsp
    mov eax, dword ptr gs:[{kstack_offset}]
    and eax, {kstack_offset_mask}
    sub rsp, rax
    and rsp, -16
    mov r13, rsp                    // where the Rust frames begin (R12, R13 come back from the frame)
    mov rdi, r12
    call {do_syscall_64}
    mov rsp, r13
    mov r13, r12                    // &Regs
    movzx r12d, al                  // SYSRET allowed
    STACKLEAK_ERASE
    mov rsp, r13
    test r12b, r12b
    jz tristack_restore_and_iret_to_user
// SYSRET: RCX = RIP and R11 = RFLAGS were checked by do_syscall_64.
    RESTORE_REGS
    // RSP: vector, orig_ax, RIP, CS, RFLAGS, RSP, SS. From here to sysretq
    // the kernel runs on the user stack with the user GS base: an NMI or
    // #MC here is why their entries check MSR_GS_BASE.
    mov rsp, [rsp + 40]
// From here RSP is the user's again (see `user_rsp_code`).
.global tristack_sysret_user_rsp
tristack_sysret_user_rsp:
    swapgs
    sysretq
.global tristack_entry_SYSCALL_64_end
tristack_entry_SYSCALL_64_end:
.type tristack_entry_SYSCALL_64, @function
.size tristack_entry_SYSCALL_64, . - tristack_entry_SYSCALL_64
