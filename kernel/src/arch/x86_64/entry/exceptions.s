// Exceptions in kernel mode: the common stub, the IRET-less return into
// NMI context, the paranoid (NMI, #MC), #DF and #DB/#BP stubs.

.section .text.entry, "ax"

// Every exception but #DB/#BP and the paranoid ones (Linux `idtentry` +
// `error_entry`). From user mode: above. From kernel mode: RSP -= 120
// (registers) + 16 (fake frame); all restored before iretq (or, back into
// an NMI handler, before the IRET-less return below).
tristack_exception_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
    FENCE_SWAPGS
// Kernel mode, but the fault is the `iretq` to user mode itself (a
// non-canonical RIP): GS is already the user's. Linux `.Lerror_bad_iret`.
    lea rax, [rip + tristack_iret_to_user]
    cmp [rsp + {regs_rip}], rax
    je tristack_bad_iret
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
    RETURN_TO_KERNEL {kernel_return}, 0
.type tristack_exception_common, @function
.size tristack_exception_common, . - tristack_exception_common

// Returning into NMI context (an #MC or #DB inside an NMI, in its stubs or
// its handler: `stacks::nmi_return` decides): IRET would unblock NMIs while
// the NMI stack is still live, and a pending NMI would start over at its
// IST top, on the live frame. Linux avoids that with its nested-NMI
// protocol (`repeat_nmi`); tristack returns without IRET, which a
// same-privilege return allows: RIP, RFLAGS, RBX and RAX go just below the
// interrupted RSP (this kernel has no red zone), then RSP := that - 32;
// pop rax; pop rbx; popfq; ret — RSP ends where the exception found it.
// Frame here: [rsp] RIP, CS, RFLAGS, RSP, SS. GS is already the
// interrupted code's.
tristack_return_without_iret:
    push rbx
    push rax
    mov rax, [rsp + 16 + 24]        // the interrupted RSP
    mov rbx, [rsp + 16]             // RIP
    mov [rax - 8], rbx
    mov rbx, [rsp + 16 + 16]        // RFLAGS
    mov [rax - 16], rbx
    mov rbx, [rsp + 8]              // the caller's RBX
    mov [rax - 24], rbx
    mov rbx, [rsp]                  // the caller's RAX
    mov [rax - 32], rbx
    lea rsp, [rax - 32]
    pop rax
    pop rbx
    popfq
    ret
.type tristack_return_without_iret, @function
.size tristack_return_without_iret, . - tristack_return_without_iret

// NMI and #MC (Linux `asm_exc_nmi` / `idtentry_mce_db`), on their IST
// stacks. From user mode: moved to the thread stack (above). From kernel
// mode: the paranoid GS check, the handler on the IST stack, GS swapped
// back if it was the user's; into an NMI handler without IRET.
tristack_paranoid_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
// #DF enters here: kernel or user, it stays on its IST stack.
tristack_paranoid_kernel:
    PARANOID_GS
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
// Decided with the kernel GS base, then the interrupted one put back: an
// #MC can hit the NMI stub before its own PARANOID_GS swapped, and must
// not IRET there either.
    RETURN_TO_KERNEL {kernel_return}, 1
.type tristack_paranoid_common, @function
.size tristack_paranoid_common, . - tristack_paranoid_common

// #DF (Linux `idtentry_df`): always paranoid, never moved.
tristack_df_common:
    SAVE_REGS
    cld
    jmp tristack_paranoid_kernel
.type tristack_df_common, @function
.size tristack_df_common, . - tristack_df_common

// #DB and #BP (Linux `idtentry_mce_db` / `paranoid_entry` with shift_ist).
// From user mode: moved to the thread stack (above), no shift. From kernel
// mode: same frame as above; additionally TSS IST[DB] moves down one stack
// for the handler's lifetime, so a nested #DB lands on DB1 and a third on
// the unmapped DB2 hole.
tristack_debug_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
    PARANOID_GS
    sub qword ptr gs:[{tss_ist_db}], {db_stack_offset}
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
    add qword ptr gs:[{tss_ist_db}], {db_stack_offset}
// Into NMI context without IRET, like every paranoid exit; or onward into
// an event the #DB handler delivers at the interrupted instruction (the
// entry sweep).
    RETURN_TO_KERNEL {debug_return}, 1
.type tristack_debug_common, @function
.size tristack_debug_common, . - tristack_debug_common

// #PF (Linux `asm_exc_page_fault`, plus what dynamic thread stacks need).
// From user mode: as any exception. From kernel mode the gate may name
// IST[PF] (while dynamic stacks exist, `stacks::dynamic`): the frame is
// then on the #PF stack, and TSS IST[PF] moves down one stack for the
// first handler's lifetime (#DB's shift), so a #PF inside it lands on
// #PF1. The first handler, `pf_entry`, maps a growable page of the
// faulting stack and returns 0 (back through RSP = &Regs here), or
// returns where the fault is handled: the frame's copy below the
// interrupted RSP (RSP := it, as if the CPU had pushed it there), or the
// frame itself (no IST). Kernel GS is made sure of as paranoid entries do.
tristack_pf_common:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_exception_from_user
    PARANOID_GS
    sub qword ptr gs:[{tss_ist_pf}], {pf_stack_offset}
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {pf_entry}
    add rsp, 16
    add qword ptr gs:[{tss_ist_pf}], {pf_stack_offset}
    test rax, rax
    jz 1f
    mov rsp, rax
// Off the IST stack for good (an oops may switch threads): SS as a
// delivery without IST leaves it (IST deliveries load the null selector).
    mov eax, {kernel_ds}
    mov ss, eax
    LINK_FRAME
    lea rdi, [rsp + 16]
    call {dispatch}
    add rsp, 16
1:
    RETURN_TO_KERNEL {kernel_return}, 1
.type tristack_pf_common, @function
.size tristack_pf_common, . - tristack_pf_common

STUB 0, 0, tristack_exception_common
STUB 1, 0, tristack_debug_common
STUB 2, 0, tristack_paranoid_common
STUB 3, 0, tristack_debug_common
STUB 4, 0, tristack_exception_common
STUB 5, 0, tristack_exception_common
STUB 6, 0, tristack_exception_common
STUB 7, 0, tristack_exception_common
STUB 8, 1, tristack_df_common
STUB 9, 0, tristack_exception_common
STUB 10, 1, tristack_exception_common
STUB 11, 1, tristack_exception_common
STUB 12, 1, tristack_exception_common
STUB 13, 1, tristack_exception_common
STUB 14, 1, tristack_pf_common
STUB 15, 0, tristack_exception_common
STUB 16, 0, tristack_exception_common
STUB 17, 1, tristack_exception_common
STUB 18, 0, tristack_paranoid_common
STUB 19, 0, tristack_exception_common
STUB 20, 0, tristack_exception_common
STUB 21, 1, tristack_exception_common
STUB 22, 0, tristack_exception_common
STUB 23, 0, tristack_exception_common
STUB 24, 0, tristack_exception_common
STUB 25, 0, tristack_exception_common
STUB 26, 0, tristack_exception_common
STUB 27, 0, tristack_exception_common
STUB 28, 0, tristack_exception_common
STUB 29, 1, tristack_exception_common
STUB 30, 1, tristack_exception_common
STUB 31, 0, tristack_exception_common
