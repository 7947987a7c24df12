//! The context switch (Linux `__switch_to_asm` + `ret_from_fork`).
//!
//! `switch_to(prev, next)`: push the callee-saved registers on the current
//! (prev's) stack, store RSP in `*prev`, load next's saved RSP, pop its
//! callee-saved registers and `ret` into wherever next stopped — inside its
//! own `switch_to` call, or, for a new thread, `tristack_thread_start`.
//! Everything else (RIP, caller-saved registers, RFLAGS) was saved by the
//! ordinary call into `schedule()` or by the interrupt entry below it.
//! What arrives on the other side is the task the CPU came from, in RAX
//! (Linux `switch_to(prev, next, last)`: `__switch_to` returns `prev_p`),
//! so the task switched in can finish the switch without a per-CPU note.
//!
//! Saved frame at a task's `saved_rsp` (lowest address first):
//! `r15 r14 r13 r12 rbx rbp <return address>`.

use core::arch::global_asm;

/// Words `switch_to` pushes below the return address.
pub const SWITCH_FRAME_WORDS: usize = 6;

global_asm!(
    r#"
.section .text.switch, "ax"
.global tristack_switch_to
// rdi = &prev.saved_rsp, rsi = next.saved_rsp, rdx = prev (the task).
// RSP -= 48 on prev's stack; then RSP := next's, += 48 + 8 (ret).
tristack_switch_to:
    push rbp
    push rbx
    push r12
    push r13
    push r14
    push r15
    mov [rdi], rsp
    mov rdi, rsi
    mov rsi, rdx
    // fall through: resume next exactly as switch_to_abandon does

.global tristack_switch_to_abandon
// rdi = next.saved_rsp, rsi = the task left (0: none). The current stack
// is never used again (a thread killed by an oops, the bootloader's stack
// at boot). RSP := next's saved RSP, += 48 (pops) + 8 (ret); nothing is
// saved for the stack left behind; next gets the task left in RAX.
// Linux: the tail of `__switch_to_asm`; `do_task_dead` never returns either.
tristack_switch_to_abandon:
    mov rsp, rdi
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbx
    pop rbp
    mov rax, rsi
    ret

.global tristack_thread_start
// A new thread's first "return" from switch_to lands here with
// r12 = entry, r13 = argument, r14 = its own task (from the initial frame),
// RAX = the task left, RBP = 0 (so a frame-pointer walk ends here) and RSP
// 16-byte aligned; it calls the thread main the scheduler handed down
// (`set_thread_main`) with all four, and with r12-r14 cleared: thread main
// saves the callee-saved registers it uses in its frame, where an entry
// address would show up in every trace of the thread as a stale `? ` line.
tristack_thread_start:
    mov rdi, r12
    mov rsi, r13
    mov rdx, r14
    mov rcx, rax
    xor r12d, r12d
    xor r13d, r13d
    xor r14d, r14d
    call qword ptr [rip + {thread_main}]
    ud2
// Sizes make the assembly show up by name in traces.
.type tristack_switch_to, @function
.size tristack_switch_to, tristack_switch_to_abandon - tristack_switch_to
.type tristack_switch_to_abandon, @function
.size tristack_switch_to_abandon, tristack_thread_start - tristack_switch_to_abandon
.type tristack_thread_start, @function
.size tristack_thread_start, . - tristack_thread_start
.text
"#,
    thread_main = sym THREAD_MAIN,
);

unsafe extern "C" {
    fn tristack_switch_to(prev_rsp: *mut u64, next_rsp: u64, prev: u64) -> u64;
    fn tristack_switch_to_abandon(next_rsp: u64, prev: u64) -> !;
    fn tristack_thread_start();
}

/// Save the current context into `*prev_rsp`, resume the one saved at
/// `next_rsp`. `prev` (the task switched away from, as an address) is
/// handed to whatever resumes there; returns, once this context is resumed
/// in turn, the task the CPU came from then.
///
/// # Safety
/// Interrupts off; `next_rsp` is a frame saved by `switch_to` or built by
/// `initial_frame`, on a stack that stays mapped while that task lives.
// Not traced (Linux `notrace`): on every context switch; see docs/performance.md.
#[instrument_fn = "off"]
#[inline(always)]
pub unsafe fn switch_to(prev_rsp: *mut u64, next_rsp: u64, prev: u64) -> u64 {
    // SAFETY: per the contract.
    unsafe { tristack_switch_to(prev_rsp, next_rsp, prev) }
}

/// Resume the context at `next_rsp` (handing it `prev`, 0 for none) and
/// never come back to this stack.
///
/// # Safety
/// As `switch_to`; nothing may refer to the current stack afterwards.
pub unsafe fn switch_to_abandon(next_rsp: u64, prev: u64) -> ! {
    // SAFETY: per the contract.
    unsafe { tristack_switch_to_abandon(next_rsp, prev) }
}

/// What every new thread runs first: `main(entry, arg, itself, the task
/// left)` (addresses of tasks, as the scheduler gave them).
pub type ThreadMain = extern "C" fn(entry: u64, arg: u64, me: u64, prev: u64) -> !;

/// The scheduler's thread main, as `tristack_thread_start` calls it.
static THREAD_MAIN: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Hand down what new threads run first (the scheduler, before its first
/// thread: this layer names nothing above it).
pub fn set_thread_main(main: ThreadMain) {
    THREAD_MAIN.store(main as usize, core::sync::atomic::Ordering::SeqCst);
}

/// Build a new thread's first switch frame under `top`; returns its saved RSP.
/// `switch_to` will "return" into `tristack_thread_start`, which calls the
/// thread main (`set_thread_main`) with `entry`, `arg` and `me` (the new
/// task, which the scheduler makes `current` there).
///
/// # Safety
/// `[top - 128, top)` is mapped, writable and owned by the new thread.
pub unsafe fn initial_frame(top: u64, entry: u64, arg: u64, me: u64) -> u64 {
    assert!(THREAD_MAIN.load(core::sync::atomic::Ordering::Relaxed) != 0, "set_thread_main first");
    // top - 16: a zero return address ends any unwind, and after `ret` pops
    // the frame RSP = top - 16, 16-byte aligned for the `call` above.
    let frame: [u64; SWITCH_FRAME_WORDS + 2] = [
        0,     // r15
        me,    // r14
        arg,   // r13
        entry, // r12
        0,     // rbx
        0,     // rbp: the outermost frame
        tristack_thread_start as *const () as u64,
        0, // fake return address of thread_main's caller
    ];
    let saved_rsp = top - 16 - 8 * (SWITCH_FRAME_WORDS as u64 + 1);
    // SAFETY: per the contract, inside the new, unused stack.
    unsafe { core::ptr::copy_nonoverlapping(frame.as_ptr(), saved_rsp as *mut u64, frame.len()) };
    saved_rsp
}

/// The return address a sleeping task will resume at (for `ps`).
///
/// # Safety
/// `saved_rsp` is a switch frame of a task that is not running.
pub unsafe fn saved_pc(saved_rsp: u64) -> u64 {
    // SAFETY: per the contract, the frame is mapped and stable.
    unsafe { ((saved_rsp + 8 * SWITCH_FRAME_WORDS as u64) as *const u64).read() }
}
