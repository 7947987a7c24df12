//! The kernel's own symbol table: `name+0xoff/0xlen` for any text address
//! (Linux `%pS` via kallsyms).
//!
//! The bootloader leaves the whole kernel ELF in memory; its `.symtab` is
//! parsed with the `object` crate, Rust names demangled with `rustc-demangle`
//! and function symbols sorted — all once, at boot. Demangling is deep
//! recursion: it must not happen in the oops path, which may run on an
//! 8 KiB exception stack (it overflowed the #DF stack when it did). Lookup
//! is a binary search. Pure: the host tests it on the real kernel ELF.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use object::{Object, ObjectSymbol, SymbolKind};

/// One function: `[addr, addr + size)`, its demangled name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    pub addr: u64,
    pub size: u64,
    pub name: String,
}

impl Symbol {
    /// A symbol from the ELF's (mangled) name; `{:#}` drops the `::h<hash>`
    /// suffix of legacy mangling.
    pub fn new(addr: u64, size: u64, mangled: &str) -> Self {
        Symbol { addr, size, name: alloc::format!("{:#}", rustc_demangle::demangle(mangled)) }
    }
}

pub struct SymbolTable {
    /// Sorted by address.
    syms: Vec<Symbol>,
}

/// An address resolved against the table: prints as `name+0xoff/0xlen`.
#[derive(Clone, Copy, Debug)]
pub struct Resolved<'a> {
    pub symbol: &'a Symbol,
    pub offset: u64,
}

impl fmt::Display for Resolved<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}+{:#x}/{:#x}", self.symbol.name, self.offset, self.symbol.size)
    }
}

impl SymbolTable {
    /// Read the function symbols of an ELF image. Err for a file that is not
    /// ELF or has no symbols (stripped).
    pub fn parse(elf: &[u8]) -> Result<Self, &'static str> {
        let file = object::File::parse(elf).map_err(|_| "not an ELF file the object crate can read")?;
        let mut syms: Vec<Symbol> = file
            .symbols()
            // A function must end inside the address space (a malformed
            // image's `addr + size` past 2^64 broke lookups: found by the
            // `symbols` fuzzer).
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0 && s.address().checked_add(s.size()).is_some())
            .filter_map(|s| Some(Symbol::new(s.address(), s.size(), s.name().ok()?)))
            .collect();
        if syms.is_empty() {
            return Err("no function symbols (stripped?)");
        }
        syms.sort_unstable_by_key(|s| s.addr);
        syms.dedup_by_key(|s| s.addr);
        Ok(SymbolTable { syms })
    }

    pub fn len(&self) -> usize {
        self.syms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.syms.is_empty()
    }

    /// The function containing `addr`.
    pub fn lookup(&self, addr: u64) -> Option<Resolved<'_>> {
        let i = self.syms.partition_point(|s| s.addr <= addr).checked_sub(1)?;
        let s = &self.syms[i];
        (addr < s.addr + s.size).then_some(Resolved { symbol: s, offset: addr - s.addr })
    }

    /// From the first function's start to the last one's end.
    pub fn text_range(&self) -> Option<(u64, u64)> {
        let (first, last) = (self.syms.first()?, self.syms.last()?);
        Some((first.addr, last.addr + last.size))
    }

    /// The function named `name` (demangled, without hash).
    pub fn find(&self, name: &str) -> Option<&Symbol> {
        self.syms.iter().find(|s| s.name == name)
    }
}

#[cfg(target_os = "none")]
mod kernel {
    use spin::Once;

    use super::{Resolved, SymbolTable};

    static TABLE: Once<Result<SymbolTable, &'static str>> = Once::new();

    /// Parse the kernel's own ELF (the bytes the bootloader left in memory).
    pub fn init(elf: &[u8]) -> Result<usize, &'static str> {
        TABLE.call_once(|| SymbolTable::parse(elf)).as_ref().map(|t| t.len()).map_err(|e| *e)
    }

    /// `addr` as `name+0xoff/0xlen`, if it is in a known function.
    pub fn resolve(addr: u64) -> Option<Resolved<'static>> {
        TABLE.get()?.as_ref().ok()?.lookup(addr)
    }

    /// The kernel's code, from its first function to the end of its last.
    pub fn text_range() -> Option<(u64, u64)> {
        TABLE.get()?.as_ref().ok()?.text_range()
    }

    /// The code of the function named `name` (demangled, without hash).
    pub fn find(name: &str) -> Option<core::ops::Range<u64>> {
        let sym = TABLE.get()?.as_ref().ok()?.find(name)?;
        Some(sym.addr..sym.addr + sym.size)
    }

    /// Whether the symbol table was read.
    pub fn loaded() -> bool {
        TABLE.get().is_some_and(|t| t.is_ok())
    }

    /// Whether `addr` is inside a known kernel function, or just past the
    /// end of one (the return address of a call that ends a function, as a
    /// call to a never-returning function does).
    pub fn is_text(addr: u64) -> bool {
        resolve(addr).is_some() || resolve(addr.wrapping_sub(1)).is_some()
    }

    /// Linux `%pS`: the symbol, or the raw address when unknown.
    pub struct Ps(pub u64);

    impl core::fmt::Display for Ps {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match resolve(self.0) {
                Some(r) => write!(f, "{r}"),
                None => write!(f, "{:#x}", self.0),
            }
        }
    }

    /// Linux `%pB`, for return addresses: looked up at `addr - 1`, so a call
    /// that is the last instruction of a function (a call to a function
    /// that never returns) still names the caller; the offset is `addr`'s.
    pub struct Pb(pub u64);

    impl core::fmt::Display for Pb {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            match resolve(self.0.wrapping_sub(1)) {
                Some(mut r) => {
                    r.offset += 1;
                    write!(f, "{r}")
                }
                // The start of a function (a function pointer, or an
                // interrupted RIP at a breakpoint): name it as `%pS` would.
                None => write!(f, "{}", Ps(self.0)),
            }
        }
    }
}

#[cfg(target_os = "none")]
pub use kernel::{find, init, is_text, loaded, resolve, text_range, Pb, Ps};

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> SymbolTable {
        let syms = vec![
            Symbol::new(0x1000, 0x20, "_RNvCs1234_8tristack4boot"),
            Symbol::new(0x2000, 0x10, "_ZN8tristack5sched8schedule17h0123456789abcdefE"),
        ];
        SymbolTable { syms }
    }

    #[test]
    fn lookup_finds_the_containing_function_and_formats_like_linux() {
        let t = table();
        let r = t.lookup(0x1005).unwrap();
        assert_eq!(r.offset, 5);
        assert_eq!(alloc::format!("{r}"), "tristack::boot+0x5/0x20");
        assert_eq!(alloc::format!("{}", t.lookup(0x200f).unwrap()), "tristack::sched::schedule+0xf/0x10");
        assert!(t.lookup(0x1020).is_none(), "past the end of the function");
        assert!(t.lookup(0xfff).is_none() && t.lookup(0x2010).is_none());
        assert_eq!(t.find("tristack::sched::schedule").map(|s| s.addr), Some(0x2000));
    }

    /// Fuzz regression: a symbol ending past 2^64 is dropped, the others
    /// still resolve, and lookups near the top of the address space are safe.
    #[test]
    fn a_symbol_ending_past_u64_max_is_dropped() {
        let t = SymbolTable::parse(include_bytes!("testdata/symbol-end-past-u64-max.elf")).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t.lookup(0x400078).unwrap().symbol.name, "_start");
        assert!(t.lookup(u64::MAX).is_none() && t.lookup(0xffff_ffff_ffff_fff8).is_none());
        assert!(t.text_range().is_some());
    }

    #[test]
    fn garbage_is_not_an_elf() {
        assert!(SymbolTable::parse(b"not an elf at all").is_err());
        assert!(SymbolTable::parse(&[]).is_err());
    }
}
