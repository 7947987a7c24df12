//! Running a function on another stack and coming back (Linux
//! `call_on_stack` in `asm/irq_stack.h`; Keith Owens' 2007 RFC switched to
//! its extra stacks the same way). Used by the extra-stack pool
//! (`stacks/extra.rs`); the IRQ stack has its own switch in the entry code.

use core::arch::global_asm;

global_asm!(
    r#"
.section .text.call_on_stack, "ax"
.global tristack_call_on_stack
// rdi = argument, rsi = function, rdx = top of the new stack.
// Old stack: push rbp (RSP -= 8), a frame record the function's own
// prologue links to, so the frame-pointer chain runs on across the switch.
// Interrupts off only around each switch:
//   [top - 8] := old RSP (the backlink unwinders cross, as on the IRQ
//   stack), RSP := top - 8, then top - 16 for a 16-byte aligned call.
// Back: RSP := [top - 8], pop rbp, ret. RAX (the result) is untouched.
tristack_call_on_stack:
    push rbp
    mov rbp, rsp
    pushfq
    pop rcx
    cli
    mov [rdx - 8], rsp
    lea rsp, [rdx - 8]
    push rcx
    popfq
    sub rsp, 8
    call rsi
    add rsp, 8
    pushfq
    pop rcx
    cli
    mov rsp, [rsp]
    push rcx
    popfq
    pop rbp
    ret
.type tristack_call_on_stack, @function
.size tristack_call_on_stack, . - tristack_call_on_stack
.text
"#
);

unsafe extern "C" {
    fn tristack_call_on_stack(arg: *mut u8, f: extern "C" fn(*mut u8) -> i64, top: u64) -> i64;
}

/// Run `f` with RSP at `top` (minus the backlink word) and return its result.
///
/// # Safety
/// `[top - size, top)` must be a mapped stack that nothing else uses until
/// this returns, big enough for `f`; `top` 16-byte aligned.
pub unsafe fn call_on_stack<F: FnOnce() -> i64>(top: u64, f: F) -> i64 {
    extern "C" fn trampoline<F: FnOnce() -> i64>(arg: *mut u8) -> i64 {
        // SAFETY: `arg` is the `Option<F>` below, alive across the call.
        let f = unsafe { &mut *(arg as *mut Option<F>) };
        f.take().expect("called once")()
    }
    let mut f = Some(f);
    // SAFETY: the caller vouches for the stack; the stub restores RSP,
    // RBP and RFLAGS before returning.
    unsafe { tristack_call_on_stack(&mut f as *mut Option<F> as *mut u8, trampoline::<F>, top) }
}
