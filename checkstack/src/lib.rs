//! checkstack for tristack: reads the kernel ELF and reports, per function,
//! the stack frame its code reserves (Linux `scripts/checkstack.pl`),
//! cross-checks it against the compiler's own `.stack_sizes`, gates frame
//! sizes (`CONFIG_FRAME_WARN`), and adds up call chains to a worst case per
//! entry point against the size of the stack that entry runs on.

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
    pub frame: frame::Frame,
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
            functions.push(Function { addr: sym.address(), size: sym.size(), name, frame });
        }
        if functions.is_empty() {
            return Err("no function symbols (stripped?)".into());
        }
        functions.sort_by_key(|f| f.addr);
        functions.dedup_by_key(|f| f.addr);
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
        self.functions.iter().find(|f| f.name == name)
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
        let &(_, depth) = f.frame.call_sites.iter().find(|&&(ret, _)| ret == location)?;
        let fp = f.frame.fp_depth?;
        let below = if row == 0 { 8 } else { 16 };
        Some((f, (depth + below).checked_sub(fp)?))
    }

    /// `name+0xoff/0xlen` (as the kernel prints `%pS` / `%pB`) back to an
    /// address; None when the name is not one function's.
    pub fn address_of(&self, location: &str) -> Option<u64> {
        let (name, rest) = location.rsplit_once('+')?;
        let off = u64::from_str_radix(rest.split('/').next()?.strip_prefix("0x")?, 16).ok()?;
        let mut same = self.functions.iter().filter(|f| f.name == name);
        let f = same.next()?;
        same.next().is_none().then_some(f.addr + off)
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
            frame: frame::Frame { size: 552, ..Default::default() },
        };
        assert_eq!(
            checkstack_line(&f, "kernel"),
            "0xffffffff80001000 tristack::demos::threads::recurse [kernel]:\t552"
        );
    }
}
