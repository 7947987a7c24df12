//! `mcount`: the hook rustc's `-Z instrument-mcount` calls at the entry of
//! every kernel function, just after its prologue (Linux's `mcount` /
//! `ftrace_caller` in `arch/x86/kernel/ftrace_64.S`, without the
//! run-time patching of dynamic ftrace: see docs/stack-tools.md for the
//! cost of the call while the tracer is off).
//!
//! Assembly because Rust code is instrumented too: a Rust `mcount` would
//! call itself. It is a normal System V call (LLVM inserts an ordinary
//! `call`), so it may clobber the caller-saved registers.

use core::arch::global_asm;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use super::percpu::TRACER_BUSY_OFFSET;

/// Read by `mcount` before anything else (one byte, RIP-relative: valid
/// before GS is set up).
static ON: AtomicBool = AtomicBool::new(false);
/// What `mcount` calls while on (the stack tracer's hook, registered from
/// above): `hook(frame pointer, RSP at the call, return address)`.
static HOOK: AtomicUsize = AtomicUsize::new(0);

pub type McountHook = extern "C" fn(fp: u64, sp: u64, ip: u64);

/// Turn tracing on with `hook`, or off (`None`).
pub fn set(hook: Option<McountHook>) {
    match hook {
        Some(hook) => {
            HOOK.store(hook as usize, Ordering::SeqCst);
            ON.store(true, Ordering::SeqCst);
        }
        None => ON.store(false, Ordering::SeqCst),
    }
}

/// Whether `mcount` calls the hook.
pub fn is_on() -> bool {
    ON.load(Ordering::SeqCst)
}

// RSP: entered at 8 mod 16 (the call pushed the return address); one push
// realigns it for the Rust hook, popped before `ret`. Off: three
// instructions (`cmp`, `jne` not taken, `ret`). On: GS is this CPU's (the
// flag is read only once the tracer is on, long after every CPU set GS;
// every entry stub fixes GS before calling Rust), and `tracer_busy` keeps
// the hook, and what it calls, from re-entering on this CPU — in an NMI
// that interrupted it too.
global_asm!(
    ".globl mcount",
    ".type mcount, @function",
    "mcount:",
    "    cmp byte ptr [rip + {on}], 0",
    "    jne 1f",
    "    ret",
    "1:",
    "    cmp byte ptr gs:[{busy}], 0",
    "    jne 2f",
    "    mov byte ptr gs:[{busy}], 1",
    "    push rbp",
    "    mov rdi, rbp",          // the entered function's frame pointer
    "    lea rsi, [rsp + 16]",   // its RSP at the `call mcount`
    "    mov rdx, [rsp + 8]",    // the return address: inside it
    "    call qword ptr [rip + {hook}]",
    "    pop rbp",
    "    mov byte ptr gs:[{busy}], 0",
    "2:",
    "    ret",
    ".size mcount, . - mcount",
    on = sym ON,
    busy = const TRACER_BUSY_OFFSET,
    hook = sym HOOK,
);
