//! `run int3 [single-step|icebp]`: a debug trap in ring 3. `int3` enters
//! #BP's IST stack; the entry moves the frame to this thread's kernel stack
//! (Linux `sync_regs`) and the handler runs there, then returns here.
//! `single-step` sets RFLAGS.TF over a few instructions (a #DB after each);
//! `icebp` executes `int1` (opcode 0xf1), a #DB with no status bit in DR6
//! on a real CPU (QEMU's TCG, built without `WANT_ICEBP`, raises #UD).
//! The kernel names each #DB's cause from DR6.
#![no_std]
#![no_main]

use ulib::{println, Args};

fn main(args: Args) -> i64 {
    match args.word(0) {
        None => {
            println!("int3: executing int3 in user mode");
            // SAFETY: #BP from user mode is reported and resumed by the kernel.
            unsafe { core::arch::asm!("int3") };
        }
        Some("single-step") => {
            println!("int3: single-stepping in user mode");
            // SAFETY: TF on, then off again; each #DB is reported and resumed.
            unsafe {
                core::arch::asm!(
                    "pushfq",
                    "or qword ptr [rsp], 0x100",
                    "popfq",
                    "nop",
                    "pushfq",
                    "and qword ptr [rsp], ~0x100",
                    "popfq",
                )
            };
        }
        Some("icebp") => {
            println!("int3: executing int1 (ICEBP) in user mode");
            // SAFETY: ICEBP raises #DB, which the kernel reports and resumes.
            unsafe { core::arch::asm!(".byte 0xf1") };
        }
        Some(other) => {
            println!("int3: usage: int3 [single-step|icebp], not '{other}'");
            return 2;
        }
    }
    println!("int3: back in user mode after the breakpoint");
    0
}

ulib::entry!(main);
