//! checkstack for tristack: reads the kernel ELF and reports, per function,
//! the stack frame its code reserves (Linux `scripts/checkstack.pl`),
//! cross-checks it against the compiler's own `.stack_sizes`, gates frame
//! sizes (`CONFIG_FRAME_WARN`), and adds up call chains to a worst case per
//! entry point against the size of the stack that entry runs on.

pub mod bound;
pub mod frame;
pub mod graph;
pub mod stack_sizes;
pub mod svg;

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// One function of the kernel ELF.
#[derive(Clone, Debug)]
pub struct Function {
    pub addr: u64,
    pub size: u64,
    /// Demangled, without the hash.
    pub name: String,
    /// The other names of the same code (`<u64 as Display>::fmt` and
    /// `<usize as Display>::fmt` are one function at one address).
    pub aliases: Vec<String>,
    pub frame: frame::Frame,
}

impl Function {
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.iter().any(|a| a == name)
    }
}

pub struct Kernel {
    /// Sorted by address.
    pub functions: Vec<Function>,
    /// The stack tracer's `mcount`, whose calls `functions` leave out.
    pub mcount: Option<u64>,
    /// The compiler's figures (address -> stack size), if the kernel was
    /// built with `-Z emit-stack-sizes`.
    pub stack_sizes: Option<HashMap<u64, u64>>,
}

impl Kernel {
    pub fn read(elf: &[u8]) -> Result<Kernel, String> {
        let file = object::File::parse(elf).map_err(|e| format!("not an ELF file: {e}"))?;
        let mut functions: Vec<Function> = Vec::new();
        let hook = file.symbols().find(|s| s.name() == Ok("mcount")).map(|s| s.address());
        for sym in file.symbols() {
            if sym.kind() != SymbolKind::Text || sym.size() == 0 {
                continue;
            }
            let Some(section) = sym.section_index().and_then(|i| file.section_by_index(i).ok()) else { continue };
            let Ok(Some(code)) = section.data_range(sym.address(), sym.size()) else { continue };
            let name = format!("{:#}", rustc_demangle::demangle(sym.name().unwrap_or("?")));
            let frame = frame::analyze_with(code, sym.address(), hook);
            functions.push(Function { addr: sym.address(), size: sym.size(), name, aliases: vec![], frame });
        }
        if functions.is_empty() {
            return Err("no function symbols (stripped?)".into());
        }
        functions.sort_by(|a, b| a.addr.cmp(&b.addr).then_with(|| a.name.cmp(&b.name)));
        functions.dedup_by(|dup, kept| {
            let same = dup.addr == kept.addr;
            if same && dup.name != kept.name && !kept.aliases.contains(&dup.name) {
                kept.aliases.push(std::mem::take(&mut dup.name));
            }
            same
        });
        // Calls and tail calls through a pointer at a fixed address (the
        // GOT of this statically linked kernel, filled in by the linker):
        // the pointer is in the ELF, so the callee is known.
        let pointer_at = |at: u64| -> Option<u64> {
            let section = file.sections().find(|s| (s.address()..s.address() + s.size()).contains(&at))?;
            let bytes = section.data_range(at, 8).ok()??;
            Some(u64::from_le_bytes(bytes.try_into().ok()?))
        };
        let starts: std::collections::HashSet<u64> = functions.iter().map(|f| f.addr).collect();
        let function_at_slot = |slot: u64| pointer_at(slot).filter(|t| starts.contains(t));
        for f in &mut functions {
            let frame = &mut f.frame;
            let resolve = |c: frame::Callee| match c {
                frame::Callee::Slot(slot) => {
                    function_at_slot(slot).map_or(frame::Callee::Indirect, frame::Callee::Direct)
                }
                c => c,
            };
            for call in &mut frame.calls {
                call.1 = resolve(call.1);
            }
            for site in &mut frame.call_sites {
                site.2 = site.2.map(resolve);
            }
            for slot in std::mem::take(&mut frame.tail_slots) {
                match function_at_slot(slot) {
                    Some(t) => frame.tail_calls.push(t),
                    None => frame.indirect_tail_call = true,
                }
            }
        }
        let stack_sizes = match file.section_by_name(".stack_sizes") {
            None => None,
            Some(s) => {
                let data = s.data().map_err(|e| format!(".stack_sizes: {e}"))?;
                Some(stack_sizes::parse(data).map_err(|e| format!(".stack_sizes: {e}"))?.into_iter().collect())
            }
        };
        Ok(Kernel { functions, mcount: hook, stack_sizes })
    }

    pub fn by_name(&self, name: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.is_named(name))
    }

    pub fn name_of(&self, addr: u64) -> String {
        match self.functions.binary_search_by_key(&addr, |f| f.addr) {
            Ok(i) => self.functions[i].name.clone(),
            Err(_) => format!("{addr:#x}"),
        }
    }

    /// The function holding `addr` (a return address may be one past a
    /// function whose last instruction is a call: looked up at `addr - 1`).
    pub fn function_at(&self, addr: u64) -> Option<&Function> {
        let i = self.functions.partition_point(|f| f.addr < addr).checked_sub(1)?;
        let f = &self.functions[i];
        (addr <= f.addr + f.size).then_some(f)
    }

    /// Check one row of the stack tracer's table against the code. The
    /// tracer measures a frame between frame pointers: from where the
    /// function set RBP (`fp_depth` below its entry RSP) down to the
    /// callee's saved RBP. Row 0's location is the return address of the
    /// entered function's call to the hook, its size the depth at that call
    /// minus `fp_depth - 8`; every other row's location is a return address
    /// into its function, its size the depth at that call minus
    /// `fp_depth - 16` (the return address and the callee's saved RBP).
    /// None: the address is no call's return address (an interrupted RIP
    /// the entry code links into the chain), or the function never sets a
    /// frame pointer.
    pub fn expected_trace_size(&self, row: usize, location: u64) -> Option<(&Function, u64)> {
        let f = self.function_at(location)?;
        let &(_, depth, _) = f.frame.call_sites.iter().find(|&&(ret, _, _)| ret == location)?;
        let fp = f.frame.fp_depth?;
        let below = if row == 0 { 8 } else { 16 };
        Some((f, (depth + below).checked_sub(fp)?))
    }

    /// A `stack-trace` table's rows against the code (see `bound`): each
    /// location is the return address of a call (into the function of the
    /// row below it), or, where an interrupt entered, the interrupted RIP.
    pub fn resolve(&self, table: &svg::Table) -> Vec<bound::Resolved> {
        table
            .rows
            .iter()
            .map(|(depth, _, location)| {
                let Some(addr) = self.address_of(location) else {
                    return bound::Resolved { depth: *depth, func: None, call: None };
                };
                let call = self.function_at(addr).and_then(|f| {
                    let &(_, at, callee) = f.frame.call_sites.iter().find(|s| s.0 == addr)?;
                    Some((f.addr, at, callee))
                });
                match call {
                    Some((func, at, callee)) => {
                        bound::Resolved { depth: *depth, func: Some(func), call: Some((at, callee)) }
                    }
                    None => {
                        let i = self.functions.partition_point(|f| f.addr <= addr).checked_sub(1);
                        let func = i.map(|i| &self.functions[i]).filter(|f| addr < f.addr + f.size).map(|f| f.addr);
                        bound::Resolved { depth: *depth, func, call: None }
                    }
                }
            })
            .collect()
    }

    /// `name+0xoff/0xlen` (as the kernel prints `%pS` / `%pB`) back to an
    /// address; None when the name is not one function's.
    pub fn address_of(&self, location: &str) -> Option<u64> {
        let (name, rest) = location.rsplit_once('+')?;
        let (off, len) = rest.split_once('/')?;
        let hex = |s: &str| u64::from_str_radix(s.strip_prefix("0x")?, 16).ok();
        let (off, len) = (hex(off)?, hex(len)?);
        // Generic functions instantiated twice demangle to one name (the
        // hash is dropped): the length tells most of them apart.
        let mut same = self.functions.iter().filter(|f| f.is_named(name) && f.size == len);
        let f = same.next()?;
        same.next().is_none().then_some(f.addr + off)
    }

    /// Where a panic enters the panic path: `core::panicking::panic_fmt`
    /// and `panic_nounwind_fmt` (every `panic!`, overflow, bounds and
    /// `unwrap` failure ends in one of them) and the `#[panic_handler]`.
    /// Worst cases stop there and count the panic path once, separately.
    pub fn panic_entries(&self) -> Vec<u64> {
        ["core::panicking::panic_fmt", "core::panicking::panic_nounwind_fmt", "__rustc::rust_begin_unwind"]
            .iter()
            .filter_map(|n| self.by_name(n).map(|f| f.addr))
            .collect()
    }

    pub fn frames(&self) -> HashMap<u64, frame::Frame> {
        self.functions.iter().map(|f| (f.addr, f.frame.clone())).collect()
    }

    /// Functions whose frame is at least `threshold` bytes, largest first.
    pub fn largest(&self, threshold: u64) -> Vec<&Function> {
        let mut big: Vec<&Function> = self.functions.iter().filter(|f| f.frame.size >= threshold).collect();
        big.sort_by(|a, b| b.frame.size.cmp(&a.frame.size).then(a.addr.cmp(&b.addr)));
        big
    }

    /// Functions where the disassembly and the compiler disagree:
    /// (function, ours, the compiler's).
    pub fn disagreements(&self) -> Vec<(&Function, u64, u64)> {
        let Some(sizes) = &self.stack_sizes else { return vec![] };
        self.functions
            .iter()
            .filter_map(|f| sizes.get(&f.addr).map(|&c| (f, f.frame.size, c)))
            .filter(|&(f, ours, theirs)| ours != theirs && !f.frame.dynamic)
            .collect()
    }
}

/// Linux `checkstack.pl`'s line: `0xADDR function [object]:<tabs>SIZE`,
/// the tabs padding the name to a multiple of 8 columns as it does.
pub fn checkstack_line(f: &Function, object: &str) -> String {
    let left = format!("0x{:x} {} [{object}]:", f.addr, f.name);
    let tabs = if left.len() >= 48 { 1 } else { (48 - left.len()).div_ceil(8) };
    format!("{left}{}{}", "\t".repeat(tabs), f.frame.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkstack_lines_look_like_linux() {
        let f = Function {
            addr: 0xffff_ffff_8000_1000,
            size: 10,
            name: "tristack::demos::threads::recurse".into(),
            aliases: vec![],
            frame: frame::Frame { size: 552, ..Default::default() },
        };
        assert_eq!(
            checkstack_line(&f, "kernel"),
            "0xffffffff80001000 tristack::demos::threads::recurse [kernel]:\t552"
        );
    }
}
