//! Printing backtraces in the kernel: the unwinder's view of kernel memory
//! (`KernelWalker`) and `print_trace`, used by the oops, the panic path and
//! the `bt` commands. The walk itself is `debug/unwind.rs`.

/// The kernel's view of memory for the unwinder: stacks from `stack_info`,
/// words read directly (only ever inside those stacks), text from the
/// symbol table (or, without symbols, the kernel image's range).
struct KernelWalker {
    /// The top of the last task stack the walk visited: where a frame from
    /// user mode would be.
    task_top: core::cell::Cell<Option<u64>>,
}

impl super::unwind::Walker for KernelWalker {
    fn stack_of(&self, addr: u64) -> Option<super::unwind::Stack> {
        use super::unwind::{Link, Stack};
        use crate::stacks::info::StackKind;
        let s = crate::stacks::info::stack_of(addr)?;
        if s.kind == StackKind::Task {
            self.task_top.set(Some(s.top));
        }
        let link = match s.kind {
            StackKind::Task => Link::None,
            StackKind::Irq | StackKind::Extra => Link::TopWord,
            StackKind::Exception(_) => Link::HardwareFrame,
        };
        // A dynamic thread stack is backed only from some page up (its RSP
        // may even be below that, the fault that would have grown it
        // pending): the walk reads only the backed part.
        let bottom = match s.kind {
            StackKind::Task => crate::stacks::dynamic::resident_bottom(s.bottom, s.top),
            _ => s.bottom,
        };
        Some(Stack { name: s.name(), bottom, top: s.top, link })
    }

    fn read(&self, addr: u64) -> u64 {
        // SAFETY: the unwinder only reads aligned words inside stacks that
        // `stack_of` returned, and every known stack is mapped.
        unsafe { (addr as *const u64).read_volatile() }
    }

    fn is_interrupted_ip(&self, slot: u64) -> bool {
        use crate::arch::gdt::KERNEL_CS;
        use crate::arch::regs::REGS_RIP;
        let Some(stack) = crate::stacks::info::stack_of(slot) else { return false };
        let readable = |a: u64| a.is_multiple_of(8) && a >= stack.bottom && a + 8 <= stack.top;
        // A hardware frame: RIP, then CS = __KERNEL_CS, then RFLAGS (bit 1
        // always set, nothing above bit 21).
        let hw_frame = |rip_slot: u64| {
            readable(rip_slot + 16)
                && self.read(rip_slot + 8) == u64::from(KERNEL_CS)
                && self.read(rip_slot + 16) & !0x3f_ffff == 0
                && self.read(rip_slot + 16) & 2 != 0
        };
        // The entry code's fake frame {RBP, RIP} sits right below the
        // `Regs` frame, whose RIP slot holds the same value.
        let regs_rip = slot + 8 + REGS_RIP as u64;
        let fake_frame = readable(regs_rip) && self.read(regs_rip) == self.read(slot) && hw_frame(regs_rip);
        hw_frame(slot) || fake_frame
    }

    fn is_text(&self, addr: u64) -> bool {
        if super::symbols::loaded() {
            super::symbols::is_text(addr)
        } else {
            // A stripped kernel: anything in the image's range, printed raw.
            crate::layout::region_of(addr).is_some_and(|r| r.name == "kernel image")
        }
    }
}

/// `Call Trace:` from (`rsp`, `rbp`) across every stack: ` <IRQ>` ...
/// ` </IRQ>` markers, `? ` before addresses the frame-pointer chain does
/// not prove, each address as `name+0xoff/0xlen`.
pub fn print_trace(rsp: u64, rbp: u64) {
    use super::unwind::{unwind, Line};
    use crate::println;
    println!("Call Trace:");
    // An overflowed stack's RSP is in its guard page: start at its bottom.
    let rsp = match (crate::stacks::info::stack_of(rsp), crate::stacks::info::guard_hit(rsp)) {
        (None, Some(s)) => s.bottom,
        _ => rsp,
    };
    if crate::stacks::info::stack_of(rsp).is_none() {
        println!(" (RSP {rsp:#x} is on no known stack; no trace)");
        return;
    }
    let walker = KernelWalker { task_top: core::cell::Cell::new(None) };
    unwind(&walker, rsp, rbp, |line| match line {
        Line::Enter(name) => println!(" <{name}>"),
        Line::Leave(name) => println!(" </{name}>"),
        Line::Ip { addr, reliable } => {
            println!(" {}{}", if reliable { "" } else { "? " }, super::symbols::Ps(addr))
        }
        Line::Addr { addr, reliable } => {
            println!(" {}{}", if reliable { "" } else { "? " }, super::symbols::Pb(addr))
        }
    });
    // The walk ended on a task stack that an entry from user mode tops:
    // the user registers close the trace, as in Linux.
    if let Some(top) = walker.task_top.get() {
        let frame = crate::arch::regs::user_frame_at(top);
        if let Some(regs) = frame {
            crate::arch::regs::show_user_regs(&regs, &mut |line| println!("{line}"));
        }
    }
}
