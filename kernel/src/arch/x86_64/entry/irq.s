// External interrupts: the IRQ stub with and without the IRQ-stack
// switch, the per-vector stubs, the table of exception stubs.

.section .text.entry, "ax"

// External interrupts (Linux `common_interrupt` + `call_on_irqstack`,
// `irq_64.c`). The frame is saved on the interrupted stack as above; then:
//   1. `incl irq_count`; if it became 0 this CPU was not in an interrupt:
//      RSP := top of the IRQ stack, and the interrupted RSP (= &Regs) goes
//      into its top word, where unwinders find the way back.
//      Nested (count now > 0): stay on the current (IRQ) stack, and push a
//      dummy word instead so RSP stays 16-byte aligned.
//   2. push the interrupted RSP again: the backlink this code returns by.
//   3. fake frame into the interrupted code (as LINK_FRAME), call Rust.
//   4. `pop rsp` (back via the backlink), `decl irq_count`; if it is -1
//      again we are back on a thread's stack: the place to preempt.
// From user mode the CPU already switched to the thread stack (RSP0), and
// `swapgs` comes first (before any gs: access) and last; the way out is
// `tristack_return_to_user`. The handler still runs on the IRQ stack.
// First level: RSP = irq top -> top-8 (saved RSP) -> top-16 (backlink)
// -> top-32 (fake frame). Nested: RSP = &Regs - 32.
.macro IRQ_COMMON name, switch
\name:
    SAVE_REGS
    cld
    test byte ptr [rsp + {regs_cs}], 3
    jz 8f
    swapgs
8:
    FENCE_SWAPGS
    mov rsi, rsp
    inc qword ptr gs:[{irq_count}]
.if \switch
    jnz 1f
    mov rsp, qword ptr gs:[{irq_stack_top}]
1:
.endif
    push rsi
    push rsi
    push qword ptr [rsi + {regs_rip}]
    push qword ptr [rsi + {regs_rbp}]
    mov rbp, rsp
    mov rdi, rsi
    call {irq_dispatch}
    add rsp, 16
    pop rsp
    dec qword ptr gs:[{irq_count}]
    jns 2f
    mov rdi, rsp
    call {irq_exit_to_thread}
    test byte ptr [rsp + {regs_cs}], 3
    jnz tristack_return_to_user
2:
    RESTORE_REGS
    add rsp, 16
    iretq
.type \name, @function
.size \name, . - \name
.endm

IRQ_COMMON tristack_irq_common, 1

// `bench irq` only: the same path minus the stack switch (irq_count is still
// counted), so the difference between the two is what the switch costs.
// RSP: as tristack_irq_common nested — everything stays on the
// interrupted stack (&Regs - 32 at the call). No Linux counterpart.
IRQ_COMMON tristack_irq_noswitch_common, 0
.global tristack_irq_noswitch_stub
// BENCH_NOSWITCH_VECTOR's gate. RSP -= 16: dummy error code, vector.
tristack_irq_noswitch_stub:
    push 0
    push {bench_noswitch_vector}
    jmp tristack_irq_noswitch_common

// External interrupts while dynamic thread stacks exist (no Linux
// counterpart: Linux's stacks never lack a page). A frame the CPU pushes
// onto a page that is not backed yet faults *during delivery*, and the
// interrupt, already acknowledged, is lost (`grow --irq-at-edge` shows
// it). So once armed the gates name IST[ENTRY]: the CPU pushes on this
// CPU's entry stack, where nothing can fault, and this stub replays the
// delivery in software onto the stack the CPU would have used — RSP0 from
// user mode, the interrupted RSP aligned down to 16 from kernel mode. A
// push there that touches a growable page is an ordinary #PF (on the #PF
// stack) that grows it, with the interrupt safely in hand. Interrupts are
// off throughout (interrupt gate), so the entry stack is free again at
// the jump. An IST delivery loads SS with the null selector; the handler
// may switch threads (preemption at its exit), so SS gets __KERNEL_DS back
// here, as the delivery the CPU did not make would have left it.
// RSP: entry top - 56 (vector, error code, the hardware frame) -> -72
// (RAX, RCX saved) -> target - 56, the same seven words, then as
// tristack_irq_common.
tristack_irq_replay:
    push rax
    push rcx
    mov rcx, rsp
    test byte ptr [rcx + 40], 3
    jz 1f
    swapgs
    FENCE_SWAPGS
    mov rsp, gs:[{top_of_stack}]
    swapgs
    jmp 2f
1:
    FENCE_SWAPGS
    mov rsp, [rcx + 56]
    and rsp, -16
2:
    push qword ptr [rcx + 64]       // SS
    push qword ptr [rcx + 56]       // RSP
    push qword ptr [rcx + 48]       // RFLAGS
    push qword ptr [rcx + 40]       // CS
    push qword ptr [rcx + 32]       // RIP
    push qword ptr [rcx + 24]       // error code
    push qword ptr [rcx + 16]       // vector
    mov eax, {kernel_ds}
    mov ss, eax
    mov rax, [rcx + 8]
    mov rcx, [rcx]
    jmp tristack_irq_common
.type tristack_irq_replay, @function
.size tristack_irq_replay, . - tristack_irq_replay

// Vectors 32..255: one 16-byte stub each, so stub address =
// tristack_irq_stubs + (vector - 32) * 16. RSP -= 16: dummy error code,
// vector. The replaying stubs (what the gates name once dynamic stacks are
// armed) follow at tristack_irq_replay_stubs, the same way; both tables in
// one 8 KiB-aligned block, so a gate moves from one to the other by its
// low 16 address bits and its IST byte, one 8-byte store (`idt::retarget_gate`).
.balign 8192
.global tristack_irq_stubs
tristack_irq_stubs:
.set tristack_vector, 32
.rept 224
.balign 16
    push 0
    push tristack_vector
    jmp tristack_irq_common
.set tristack_vector, tristack_vector + 1
.endr
.balign 16
.global tristack_irq_replay_stubs
tristack_irq_replay_stubs:
.set tristack_vector, 32
.rept 224
.balign 16
    push 0
    push tristack_vector
    jmp tristack_irq_replay
.set tristack_vector, tristack_vector + 1
.endr

.section .rodata
.balign 8
.global tristack_exception_stubs
tristack_exception_stubs:
.irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad tristack_exc_\v
.endr
.text
